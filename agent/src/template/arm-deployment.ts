/**
 * Resolves an ARM deployment template (`$schema`, `parameters`, `variables`, `resources[]`): picks the
 * image template resource, supplies parameter values and evaluates every expression in it, collecting
 * each failure with its JSON path instead of stopping at the first.
 */
import { formatPath, type Problem } from '../errors.js';
import { MIN_SECRET_LENGTH, isMaskable } from '../mask-secrets.js';
import {
  ExpressionError,
  evaluateString,
  isExpression,
  isTainted,
  taintedLeaves,
  untainted,
  type ArmValue,
  type Evaluated,
  type ExpressionScope,
  type Taint,
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
  /**
   * Values of securestring / secureObject parameters and every value computed from them: secrets that
   * must never be printed. Values too short to mask are left out (see MIN_SECRET_LENGTH).
   */
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
  const resolvedParameters = new Map<string, Evaluated>();
  const resolvedVariables = new Map<string, Evaluated>();
  const inProgress = new Set<string>();
  const failedParameters = new Set<string>();
  const secureValues = new Set<string>();
  const unresolved = new Set<string>();
  const registerSecret = (value: Evaluated): void => {
    for (const leaf of taintedLeaves(value)) if (isMaskable(leaf)) secureValues.add(leaf);
  };

  const scope: ExpressionScope = {
    parameter(name) {
      const key = name.toLowerCase();
      const known = resolvedParameters.get(key);
      if (known) return known;
      const declared = declarations.get(key);
      if (!declared) {
        throw new ExpressionError(
          `parameters('${name}') refers to a parameter the template does not declare` +
            listNames(declarations),
        );
      }
      if (failedParameters.has(key))
        throw new AlreadyReported(`parameter ${declared.name} has no usable value`);
      let resolved: Evaluated;
      try {
        resolved = guard(`parameters('${name}')`, () => resolveParameter(declared, context, scope));
        if (SECURE_TYPES.has(declared.type)) {
          checkMaskable(declared, resolved.value, problems);
          resolved = { value: resolved.value, taint: true };
        }
      } catch (error) {
        failedParameters.add(key);
        throw error;
      }
      resolvedParameters.set(key, resolved);
      registerSecret(resolved);
      return resolved;
    },
    variable(name) {
      const key = name.toLowerCase();
      const known = resolvedVariables.get(key);
      if (known) return known;
      const entry = Object.entries(variables).find(([k]) => k.toLowerCase() === key);
      if (!entry)
        throw new ExpressionError(`variables('${name}') refers to a variable the template does not declare`);
      const resolved = guard(`variables('${name}')`, () => evaluateTree(entry[1], scope));
      resolvedVariables.set(key, resolved);
      return resolved;
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
    // A value computed from a secret (toUpper, concat, substring, base64 …) is as secret as the secret.
    tainted: registerSecret,
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
  const { value } = evaluateTree(resource ?? {}, scope, [...resourcePath], (path, error) => {
    unresolved.add(formatPath(path));
    if (error instanceof AlreadyReported) return;
    problems.push({ severity: 'error', path: formatPath(path), message: `${messageOf(error)}.` });
  });
  return { value: value as JsonObject, unresolved, secureValues: [...secureValues] };
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
): Evaluated {
  const cli = findCaseInsensitive(context.cliParameters, declared.name);
  const file = findCaseInsensitive(context.fileParameters, declared.name);
  let resolved: Evaluated;
  if (cli !== undefined) resolved = untainted(convertCliValue(declared, cli));
  else if (file !== undefined) resolved = untainted(file);
  // A default may be computed from a secure parameter, which makes this parameter secret too.
  else if (declared.declaration.defaultValue !== undefined)
    resolved = evaluateTree(declared.declaration.defaultValue, scope);
  else {
    throw new ExpressionError(
      `the parameter "${declared.name}" (${declared.type}) has no value and no defaultValue; ` +
        `pass --param ${declared.name}=<value> or put it in a --param-file`,
    );
  }
  checkParameterValue(declared, resolved.value);
  return resolved;
}

/**
 * A secret shorter than MIN_SECRET_LENGTH cannot be masked: hiding it would hide those characters in
 * all text, showing it reveals it. A securestring that short is refused; in a secureObject, which often
 * carries a user name or a port next to its secret, a short value is accepted with a warning.
 */
function checkMaskable(declared: ParameterDeclaration, value: ArmValue, problems: Problem[]): void {
  const tooShort = `shorter than ${MIN_SECRET_LENGTH} characters, too short to mask`;
  if (declared.type === 'securestring') {
    if (typeof value === 'string' && value !== '' && !isMaskable(value)) {
      throw new ExpressionError(
        `the securestring parameter "${declared.name}" has a value ${tooShort} (hiding it would hide ` +
          `those characters in every log line); use a value of at least ${MIN_SECRET_LENGTH} characters`,
      );
    }
    return;
  }
  const visit = (node: ArmValue, path: (string | number)[]): void => {
    if (Array.isArray(node)) node.forEach((item, i) => visit(item, [...path, i]));
    else if (node !== null && typeof node === 'object')
      for (const key of Object.keys(node)) visit(node[key] ?? null, [...path, key]);
    else if ((typeof node === 'string' && node !== '') || typeof node === 'number') {
      if (!isMaskable(String(node))) {
        problems.push({
          severity: 'warning',
          path: formatPath(['parameters', declared.name, ...path]),
          message: `this secureObject value is ${tooShort}: it is not hidden in logs, status or rendered files. Make it at least ${MIN_SECRET_LENGTH} characters long if it is a secret, or move it out of the secureObject.`,
        });
      }
    }
  };
  visit(value, []);
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

/** Evaluates every string in a JSON tree, with its taint. Without a sink, the first failure throws. */
function evaluateTree(
  node: JsonValue,
  scope: ExpressionScope,
  path: (string | number)[] = [],
  onFailure?: FailureSink,
): Evaluated {
  if (typeof node === 'string') {
    if (!onFailure) return evaluateString(node, scope);
    try {
      return evaluateString(node, scope);
    } catch (error) {
      onFailure(path, error);
      return untainted(node);
    }
  }
  if (Array.isArray(node)) {
    const items = node.map((item, i) => evaluateTree(item, scope, [...path, i], onFailure));
    return {
      value: items.map((item) => item.value),
      taint: partsTaint(items.map((item, i) => [i, item.taint])),
    };
  }
  if (isObject(node)) {
    const out: { [key: string]: ArmValue } = {};
    const taints: [string, Taint][] = [];
    for (const [rawKey, child] of Object.entries(node)) {
      // ARM evaluates property names too, e.g. { "[parameters('identityId')]": {} } in userAssignedIdentities.
      const key = evaluateKey(rawKey, scope, [...path, rawKey], onFailure);
      const evaluated = evaluateTree(child, scope, [...path, key], onFailure);
      Object.defineProperty(out, key, {
        value: evaluated.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      taints.push([key, evaluated.taint]);
    }
    return { value: out, taint: partsTaint(taints) };
  }
  return untainted(node);
}

/** The taint of an object or array from its parts' taints: false when none is tainted. */
function partsTaint(parts: [string | number, Taint][]): Taint {
  return parts.some(([, taint]) => isTainted(taint)) ? new Map(parts) : false;
}

function evaluateKey(
  key: string,
  scope: ExpressionScope,
  path: (string | number)[],
  onFailure?: FailureSink,
): string {
  if (!isExpression(key) && !key.startsWith('[[')) return key;
  const { value } = onFailure ? evaluateTree(key, scope, path, onFailure) : evaluateString(key, scope);
  if (typeof value === 'string') return value;
  const error = new ExpressionError(
    `a property name must evaluate to a string, not ${value === null ? 'null' : typeof value}`,
  );
  if (!onFailure) throw error;
  onFailure(path, error);
  return key;
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
