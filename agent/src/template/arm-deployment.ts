/**
 * Resolves an ARM deployment template (`$schema`, `parameters`, `variables`, `resources[]`): picks the
 * image template resource, supplies parameter values and evaluates every expression in it, collecting
 * each failure with its JSON path instead of stopping at the first.
 */
import { formatPath, type Problem } from '../errors.js';
import {
  ExpressionError,
  evaluateString,
  isExpression,
  type ArmValue,
  type ExpressionScope,
} from './arm-expressions.js';
import type { JsonObject, JsonValue } from './json-source.js';

export interface DeploymentContext {
  /** Values from --param name=value, as typed on the command line. */
  readonly cliParameters: ReadonlyMap<string, string>;
  /** Values from an ARM parameters file (`parameters.<name>.value`). */
  readonly fileParameters: ReadonlyMap<string, JsonValue>;
  readonly subscriptionId?: string;
  readonly resourceGroup?: string;
  readonly location?: string;
}

export interface EvaluatedResource {
  readonly value: JsonObject;
  /** Formatted paths whose expression failed; validation skips them to avoid follow-on noise. */
  readonly unresolved: ReadonlySet<string>;
  /** Values of securestring / secureObject parameters: secrets that must never be printed. */
  readonly secureValues: readonly string[];
}

/** How deep variables() and parameters() may refer to each other. */
const MAX_REFERENCE_DEPTH = 64;

/** A failure already reported where it originates (a parameter without a value); uses stay quiet. */
class AlreadyReported extends ExpressionError {}

const SECURE_TYPES = new Set(['securestring', 'secureobject']);
const PARAMETER_TYPES = new Set(['string', 'securestring', 'int', 'bool', 'object', 'secureobject', 'array']);

interface ParameterDeclaration {
  readonly name: string;
  readonly type: string;
  readonly declaration: JsonObject;
}

/** Evaluates one resource of a deployment template. `resourcePath` is its path, e.g. ['resources', 0]. */
export function evaluateDeploymentResource(
  deployment: JsonObject,
  resourcePath: readonly (string | number)[],
  context: DeploymentContext,
  problems: Problem[],
): EvaluatedResource {
  const declarations = readParameterDeclarations(deployment, problems);
  const variables = isObject(deployment.variables) ? deployment.variables : {};
  const resolvedParameters = new Map<string, ArmValue>();
  const resolvedVariables = new Map<string, ArmValue>();
  const inProgress = new Set<string>();
  const failedParameters = new Set<string>();
  const secureValues: string[] = [];
  const unresolved = new Set<string>();

  const scope: ExpressionScope = {
    parameter(name) {
      const key = name.toLowerCase();
      if (resolvedParameters.has(key)) return resolvedParameters.get(key) ?? null;
      const declared = declarations.get(key);
      if (!declared) {
        throw new ExpressionError(
          `parameters('${name}') refers to a parameter the template does not declare` +
            listNames(declarations),
        );
      }
      if (failedParameters.has(key))
        throw new AlreadyReported(`parameter ${declared.name} has no usable value`);
      let value: ArmValue;
      try {
        value = guard(`parameters('${name}')`, () => resolveParameter(declared, context, scope));
      } catch (error) {
        failedParameters.add(key);
        throw error;
      }
      resolvedParameters.set(key, value);
      if (SECURE_TYPES.has(declared.type)) collectStrings(value, secureValues);
      return value;
    },
    variable(name) {
      const key = name.toLowerCase();
      if (resolvedVariables.has(key)) return resolvedVariables.get(key) ?? null;
      const entry = Object.entries(variables).find(([k]) => k.toLowerCase() === key);
      if (!entry)
        throw new ExpressionError(`variables('${name}') refers to a variable the template does not declare`);
      const value = guard(`variables('${name}')`, () => evaluateTree(entry[1], scope));
      resolvedVariables.set(key, value);
      return value;
    },
    subscriptionId() {
      if (!context.subscriptionId) {
        throw new ExpressionError(
          'subscription().subscriptionId needs a value: pass --subscription-id <guid>',
        );
      }
      return context.subscriptionId;
    },
    resourceGroupName() {
      if (!context.resourceGroup) {
        throw new ExpressionError('resourceGroup().name needs a value: pass --resource-group <name>');
      }
      return context.resourceGroup;
    },
    resourceGroupLocation() {
      if (!context.location)
        throw new ExpressionError('resourceGroup().location needs a value: pass --location <region>');
      return context.location;
    },
    derived(args, result) {
      // A value computed from a secret (toUpper, concat, format …) is as secret as the secret itself.
      const inputs: string[] = [];
      collectStrings([...args], inputs);
      if (
        secureValues.length > 0 &&
        inputs.some((text) => secureValues.some((secret) => secret !== '' && text.includes(secret)))
      ) {
        collectStrings(result, secureValues);
      }
    },
  };

  function guard<T>(label: string, run: () => T): T {
    if (inProgress.has(label)) throw new ExpressionError(`${label} refers to itself (a cycle)`);
    if (inProgress.size >= MAX_REFERENCE_DEPTH) {
      throw new ExpressionError(
        `${label} is reached through more than ${MAX_REFERENCE_DEPTH} nested variables or parameters`,
      );
    }
    inProgress.add(label);
    try {
      return run();
    } finally {
      inProgress.delete(label);
    }
  }

  // ARM requires a value for every declared parameter, used or not.
  for (const declared of declarations.values()) {
    try {
      scope.parameter(declared.name);
    } catch (error) {
      problems.push({
        severity: 'error',
        path: formatPath(['parameters', declared.name]),
        message: messageOf(error),
      });
    }
  }
  // Like ARM, a value for a parameter the template does not declare is an error, not a silent no-op.
  const undeclared = (source: string, name: string): Problem => ({
    severity: 'error',
    path: formatPath(['parameters']),
    message: `${source} ${name}: the template declares no parameter named "${name}"${listNames(declarations)}.`,
  });
  for (const name of context.cliParameters.keys()) {
    if (!declarations.has(name.toLowerCase())) problems.push(undeclared('--param', name));
  }
  for (const name of context.fileParameters.keys()) {
    if (!declarations.has(name.toLowerCase())) problems.push(undeclared('the parameters file sets', name));
  }

  const resource = resourcePath.reduce<JsonValue | undefined>(
    (node, key) => (node as Record<string | number, JsonValue> | undefined)?.[key],
    deployment,
  );
  const value = evaluateTree(resource ?? {}, scope, [...resourcePath], (path, error) => {
    unresolved.add(formatPath(path));
    if (error instanceof AlreadyReported) return;
    problems.push({ severity: 'error', path: formatPath(path), message: `${messageOf(error)}.` });
  });
  return { value: value as JsonObject, unresolved, secureValues };
}

function readParameterDeclarations(
  deployment: JsonObject,
  problems: Problem[],
): Map<string, ParameterDeclaration> {
  const declarations = new Map<string, ParameterDeclaration>();
  const section = deployment.parameters;
  if (section === undefined) return declarations;
  if (!isObject(section)) {
    problems.push({ severity: 'error', path: 'parameters', message: 'parameters must be an object.' });
    return declarations;
  }
  for (const [name, declaration] of Object.entries(section)) {
    if (!isObject(declaration) || typeof declaration.type !== 'string') {
      problems.push({
        severity: 'error',
        path: formatPath(['parameters', name]),
        message: 'a parameter declaration must be an object with a "type" such as "string".',
      });
      continue;
    }
    const type = declaration.type.toLowerCase();
    if (!PARAMETER_TYPES.has(type)) {
      problems.push({
        severity: 'error',
        path: formatPath(['parameters', name, 'type']),
        message: `"${declaration.type}" is not an ARM parameter type; use one of string, securestring, int, bool, object, secureObject or array.`,
      });
      continue;
    }
    declarations.set(name.toLowerCase(), { name, type, declaration });
  }
  return declarations;
}

function resolveParameter(
  declared: ParameterDeclaration,
  context: DeploymentContext,
  scope: ExpressionScope,
): ArmValue {
  const cli = findCaseInsensitive(context.cliParameters, declared.name);
  const file = findCaseInsensitive(context.fileParameters, declared.name);
  let value: ArmValue;
  if (cli !== undefined) value = convertCliValue(declared, cli);
  else if (file !== undefined) value = file;
  else if (declared.declaration.defaultValue !== undefined)
    value = evaluateTree(declared.declaration.defaultValue, scope);
  else {
    throw new ExpressionError(
      `the parameter "${declared.name}" (${declared.type}) has no value and no defaultValue; ` +
        `pass --param ${declared.name}=<value> or put it in a --param-file`,
    );
  }
  checkParameterValue(declared, value);
  return value;
}

function convertCliValue(declared: ParameterDeclaration, raw: string): ArmValue {
  switch (declared.type) {
    case 'int': {
      if (!/^-?\d+$/.test(raw))
        throw new ExpressionError(`--param ${declared.name} must be an integer, got "${raw}"`);
      return Number(raw);
    }
    case 'bool':
      if (raw !== 'true' && raw !== 'false') {
        throw new ExpressionError(`--param ${declared.name} must be true or false, got "${raw}"`);
      }
      return raw === 'true';
    case 'object':
    case 'secureobject':
    case 'array':
      try {
        return JSON.parse(raw) as ArmValue;
      } catch {
        throw new ExpressionError(`--param ${declared.name} is an ${declared.type}: give its value as JSON`);
      }
    default:
      return raw;
  }
}

function checkParameterValue(declared: ParameterDeclaration, value: ArmValue): void {
  const expected: Record<string, string> = {
    string: 'string',
    securestring: 'string',
    int: 'number',
    bool: 'boolean',
  };
  const want = expected[declared.type];
  if ((want && typeof value !== want) || (declared.type === 'int' && !Number.isInteger(value))) {
    throw new ExpressionError(
      `the parameter "${declared.name}" is declared ${declared.type} but its value is not`,
    );
  }
  const allowed = declared.declaration.allowedValues;
  if (
    Array.isArray(allowed) &&
    !allowed.some((candidate) => JSON.stringify(candidate) === JSON.stringify(value))
  ) {
    const shown = SECURE_TYPES.has(declared.type) ? 'the given value' : JSON.stringify(value);
    throw new ExpressionError(
      `the parameter "${declared.name}" must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}; ${shown} is not`,
    );
  }
}

type FailureSink = (path: (string | number)[], error: unknown) => void;

/** Evaluates every string in a JSON tree. Without a sink, the first failure throws. */
function evaluateTree(
  node: JsonValue,
  scope: ExpressionScope,
  path: (string | number)[] = [],
  onFailure?: FailureSink,
): ArmValue {
  if (typeof node === 'string') {
    if (!onFailure) return evaluateString(node, scope);
    try {
      return evaluateString(node, scope);
    } catch (error) {
      onFailure(path, error);
      return node;
    }
  }
  if (Array.isArray(node)) return node.map((item, i) => evaluateTree(item, scope, [...path, i], onFailure));
  if (isObject(node)) {
    const out: { [key: string]: ArmValue } = {};
    for (const [rawKey, child] of Object.entries(node)) {
      // ARM evaluates property names too, e.g. { "[parameters('identityId')]": {} } in userAssignedIdentities.
      const key = evaluateKey(rawKey, scope, [...path, rawKey], onFailure);
      Object.defineProperty(out, key, {
        value: evaluateTree(child, scope, [...path, key], onFailure),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return node;
}

function evaluateKey(
  key: string,
  scope: ExpressionScope,
  path: (string | number)[],
  onFailure?: FailureSink,
): string {
  if (!isExpression(key) && !key.startsWith('[[')) return key;
  const value = onFailure ? evaluateTree(key, scope, path, onFailure) : evaluateString(key, scope);
  if (typeof value === 'string') return value;
  const error = new ExpressionError(
    `a property name must evaluate to a string, not ${value === null ? 'null' : typeof value}`,
  );
  if (!onFailure) throw error;
  onFailure(path, error);
  return key;
}

function collectStrings(value: ArmValue, into: string[]): void {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) value.forEach((item) => collectStrings(item, into));
  else if (value !== null && typeof value === 'object')
    Object.values(value).forEach((v) => collectStrings(v, into));
}

function findCaseInsensitive<T>(map: ReadonlyMap<string, T>, name: string): T | undefined {
  for (const [key, value] of map) if (key.toLowerCase() === name.toLowerCase()) return value;
  return undefined;
}

function listNames(declarations: Map<string, ParameterDeclaration>): string {
  const names = [...declarations.values()].map((d) => d.name);
  return names.length > 0 ? ` (it declares: ${names.join(', ')})` : ' (it declares none)';
}

function messageOf(error: unknown): string {
  if (error instanceof ExpressionError) return error.message;
  throw error;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
