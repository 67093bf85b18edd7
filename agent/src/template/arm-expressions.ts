/**
 * Evaluates the subset of ARM template expressions that real image templates use:
 * `[concat(parameters('x'), '-', variables('y'))]` and friends. Anything else is reported by name,
 * so a user learns exactly which function to replace rather than getting a half-evaluated template.
 *
 * Every value carries its taint: whether it was computed from a secure parameter. Any function of a
 * tainted argument is tainted, however deeply nested, so whatever a template derives from a secret can
 * be masked like the secret itself.
 */

export type ArmValue = null | boolean | number | string | ArmValue[] | { [key: string]: ArmValue };

/**
 * Which parts of a value come from a secure input: all of it (true), none of it (false), or, for an
 * object or array that mixes both, each property or element on its own.
 */
export type Taint = boolean | ReadonlyMap<string | number, Taint>;

/** A value and its taint. */
export interface Evaluated {
  readonly value: ArmValue;
  readonly taint: Taint;
}

export class ExpressionError extends Error {}

export interface ExpressionScope {
  /** Resolves parameters('name'); throws ExpressionError when the parameter is unknown or has no value. */
  parameter(name: string): Evaluated;
  /** Resolves variables('name'); throws ExpressionError when the variable is unknown. */
  variable(name: string): Evaluated;
  subscriptionId(): string;
  resourceGroupName(): string;
  resourceGroupLocation(): string;
  /** Told about every value computed from a secure input, intermediate results included. */
  tainted?(value: Evaluated): void;
}

export const untainted = (value: ArmValue): Evaluated => ({ value, taint: false });

/** True when any part of a value comes from a secure input. */
export function isTainted(taint: Taint): boolean {
  if (typeof taint === 'boolean') return taint;
  for (const part of taint.values()) if (isTainted(part)) return true;
  return false;
}

/** The taint of one property or element. */
function taintOf(taint: Taint, key: string | number): Taint {
  return typeof taint === 'boolean' ? taint : (taint.get(key) ?? false);
}

/**
 * The strings and numbers of a value that come from a secure input: what a masker must hide. Booleans
 * and null carry no secret worth masking.
 */
export function taintedLeaves({ value, taint }: Evaluated): string[] {
  if (taint === false) return [];
  if (typeof value === 'string') return [value];
  if (typeof value === 'number') return [String(value)];
  if (Array.isArray(value))
    return value.flatMap((item, i) => taintedLeaves({ value: item, taint: taintOf(taint, i) }));
  if (value !== null && typeof value === 'object')
    return Object.keys(value).flatMap((key) =>
      taintedLeaves({ value: value[key] ?? null, taint: taintOf(taint, key) }),
    );
  return [];
}

/** Nesting limit for one expression: real templates nest a handful of calls. */
export const MAX_EXPRESSION_DEPTH = 64;

/** True when a JSON string is an ARM expression (`[...]`), not an escaped literal (`[[...`). */
export function isExpression(value: string): boolean {
  return value.length >= 2 && value.startsWith('[') && value.endsWith(']') && !value.startsWith('[[');
}

/** Evaluates one JSON string: an expression, an escaped literal `[[...]`, or a plain string. */
export function evaluateString(value: string, scope: ExpressionScope): Evaluated {
  if (value.startsWith('[[')) return untainted(value.slice(1));
  if (!isExpression(value)) return untainted(value);
  const parser = new ExpressionParser(value.slice(1, -1));
  const ast = parser.parseAll();
  const result = evaluate(ast, scope);
  // Objects from subscription()/resourceGroup() compute properties on access: settle them here, where a
  // missing --subscription-id is still an ExpressionError with a path, not a crash later.
  return { value: materialize(result.value), taint: result.taint };
}

function materialize(value: ArmValue): ArmValue {
  if (Array.isArray(value)) return value.map(materialize);
  if (value === null || typeof value !== 'object') return value;
  const out: { [key: string]: ArmValue } = {};
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, {
      value: materialize(value[key] ?? null),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

type Node =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'call'; name: string; args: Node[] }
  | { kind: 'property'; target: Node; name: string }
  | { kind: 'index'; target: Node; index: Node };

class ExpressionParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parseAll(): Node {
    const node = this.parseExpression();
    this.skipSpaces();
    if (this.pos < this.text.length) this.fail(`unexpected "${this.text.slice(this.pos, this.pos + 10)}"`);
    return node;
  }

  private fail(what: string): never {
    throw new ExpressionError(`cannot parse the expression [${this.text}]: ${what}`);
  }

  private skipSpaces(): void {
    while (this.text[this.pos] === ' ' || this.text[this.pos] === '\t') this.pos++;
  }

  private depth = 0;

  private parseExpression(): Node {
    if (++this.depth > MAX_EXPRESSION_DEPTH)
      this.fail(`it nests more than ${MAX_EXPRESSION_DEPTH} levels deep`);
    try {
      return this.parseExpressionBody();
    } finally {
      this.depth--;
    }
  }

  private parseExpressionBody(): Node {
    this.skipSpaces();
    let node = this.parsePrimary();
    for (;;) {
      this.skipSpaces();
      const ch = this.text[this.pos];
      if (ch === '.') {
        this.pos++;
        node = { kind: 'property', target: node, name: this.parseIdentifier() };
      } else if (ch === '[') {
        this.pos++;
        const index = this.parseExpression();
        this.skipSpaces();
        if (this.text[this.pos] !== ']') this.fail('expected ]');
        this.pos++;
        node = { kind: 'index', target: node, index };
      } else {
        return node;
      }
    }
  }

  private parsePrimary(): Node {
    const ch = this.text[this.pos];
    if (ch === "'") return this.parseStringLiteral();
    if (ch !== undefined && /[-0-9]/.test(ch)) {
      const match = /^-?\d+/.exec(this.text.slice(this.pos));
      if (!match) this.fail('malformed number');
      this.pos += match[0].length;
      return { kind: 'number', value: Number(match[0]) };
    }
    const name = this.parseIdentifier();
    this.skipSpaces();
    if (this.text[this.pos] !== '(') this.fail(`"${name}" must be followed by ( — ARM has no bare names`);
    this.pos++;
    const args: Node[] = [];
    this.skipSpaces();
    if (this.text[this.pos] === ')') {
      this.pos++;
      return { kind: 'call', name, args };
    }
    for (;;) {
      args.push(this.parseExpression());
      this.skipSpaces();
      const next = this.text[this.pos];
      this.pos++;
      if (next === ')') return { kind: 'call', name, args };
      if (next !== ',') this.fail(`expected , or ) in the arguments of ${name}()`);
    }
  }

  private parseIdentifier(): string {
    const match = /^[A-Za-z_][\w]*/.exec(this.text.slice(this.pos));
    if (!match) this.fail('expected a function or property name');
    this.pos += match[0].length;
    return match[0];
  }

  private parseStringLiteral(): Node {
    let out = '';
    this.pos++;
    for (;;) {
      const end = this.text.indexOf("'", this.pos);
      if (end < 0) this.fail('a quoted string is never closed');
      out += this.text.slice(this.pos, end);
      this.pos = end + 1;
      if (this.text[this.pos] !== "'") return { kind: 'string', value: out };
      out += "'"; // '' is an escaped quote
      this.pos++;
    }
  }
}

type ArmFunction = (args: ArmValue[], scope: ExpressionScope) => ArmValue;

const FUNCTIONS: Record<string, ArmFunction> = {
  concat: (args) => concat(args),
  format: (args) => formatString(args),
  tolower: (args) => stringArg('toLower', args, 0).toLowerCase(),
  toupper: (args) => stringArg('toUpper', args, 0).toUpperCase(),
  trim: (args) => stringArg('trim', args, 0).trim(),
  replace: (args) => {
    const oldText = stringArg('replace', args, 1);
    if (oldText === '')
      throw new ExpressionError('replace() cannot replace an empty string (ARM rejects it too)');
    return stringArg('replace', args, 0)
      .split(oldText)
      .join(stringArg('replace', args, 2));
  },
  substring: (args) => substring(args),
  base64: (args) => Buffer.from(stringArg('base64', args, 0), 'utf8').toString('base64'),
  base64tostring: (args) => Buffer.from(stringArg('base64ToString', args, 0), 'base64').toString('utf8'),
  uricomponent: (args) => encodeURIComponent(stringArg('uriComponent', args, 0)),
  uricomponenttostring: (args) => {
    try {
      return decodeURIComponent(stringArg('uriComponentToString', args, 0));
    } catch {
      throw new ExpressionError('uriComponentToString() was given text that is not URI-encoded');
    }
  },
  string: (args) => {
    const value = args[0] ?? null;
    return typeof value === 'string' ? value : JSON.stringify(value);
  },
  json: (args) => {
    try {
      return JSON.parse(stringArg('json', args, 0)) as ArmValue;
    } catch (error) {
      if (error instanceof ExpressionError) throw error;
      throw new ExpressionError('json() was given text that is not valid JSON');
    }
  },
  resourceid: (args, scope) => resourceId(args, scope),
  subscription: (_args, scope) =>
    lazyObject({
      subscriptionId: () => scope.subscriptionId(),
      id: () => `/subscriptions/${scope.subscriptionId()}`,
    }),
  resourcegroup: (_args, scope) =>
    lazyObject({
      name: () => scope.resourceGroupName(),
      location: () => scope.resourceGroupLocation(),
      id: () => `/subscriptions/${scope.subscriptionId()}/resourceGroups/${scope.resourceGroupName()}`,
    }),
};

/**
 * An object whose properties are computed when read, so `resourceGroup().name` needs only
 * --resource-group, not every flag the other properties would need.
 */
function lazyObject(getters: Record<string, () => ArmValue>): ArmValue {
  const object = {};
  for (const [name, get] of Object.entries(getters))
    Object.defineProperty(object, name, { get, enumerable: true });
  return object;
}

export const SUPPORTED_FUNCTIONS = [
  'parameters',
  'variables',
  'concat',
  'format',
  'toLower',
  'toUpper',
  'trim',
  'replace',
  'substring',
  'base64',
  'base64ToString',
  'uriComponent',
  'uriComponentToString',
  'string',
  'json',
  'resourceId',
  'subscription',
  'resourceGroup',
] as const;

function evaluate(node: Node, scope: ExpressionScope): Evaluated {
  switch (node.kind) {
    case 'string':
    case 'number':
      return untainted(node.value);
    case 'call': {
      // ARM function names are case-insensitive.
      const name = node.name.toLowerCase();
      const reference = name === 'parameters' || name === 'variables';
      const fn = Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined;
      if (!fn && !reference) {
        throw new ExpressionError(
          `the ARM function ${node.name}() is not supported by isobuild (supported: ${SUPPORTED_FUNCTIONS.join(', ')}); ` +
            'replace the expression with its value',
        );
      }
      const args = node.args.map((arg) => evaluate(arg, scope));
      const anyTainted = args.some((arg) => isTainted(arg.taint));
      if (!fn) {
        const wanted = stringArg(name, [args[0]?.value ?? null], 0);
        const found = name === 'parameters' ? scope.parameter(wanted) : scope.variable(wanted);
        // A name computed from a secret makes whatever it picks secret too.
        return anyTainted ? report({ value: found.value, taint: true }, scope) : found;
      }
      const value = fn(
        args.map((arg) => arg.value),
        scope,
      );
      if (!anyTainted) return untainted(value);
      // concat() of arrays keeps each element's own taint; any other result of a secret is secret whole.
      const taint = Array.isArray(value) && name === 'concat' ? concatTaint(args) : true;
      return report({ value, taint }, scope);
    }
    case 'property': {
      const target = evaluate(node.target, scope);
      const object = target.value;
      if (object === null || typeof object !== 'object' || Array.isArray(object)) {
        throw new ExpressionError(`cannot read .${node.name} of a ${describe(object)}`);
      }
      const key = Object.keys(object).find((k) => k.toLowerCase() === node.name.toLowerCase());
      if (key === undefined) throw new ExpressionError(`the object has no property "${node.name}"`);
      return { value: object[key] ?? null, taint: taintOf(target.taint, key) };
    }
    case 'index': {
      const target = evaluate(node.target, scope);
      const index = evaluate(node.index, scope);
      const picked = pick(target, index.value);
      // An element chosen by a secret index reveals the secret: it is secret too.
      return isTainted(index.taint) ? report({ value: picked.value, taint: true }, scope) : picked;
    }
  }
}

function report(value: Evaluated, scope: ExpressionScope): Evaluated {
  scope.tainted?.(value);
  return value;
}

function concatTaint(args: readonly Evaluated[]): Taint {
  const parts = new Map<number, Taint>();
  for (const arg of args) {
    const items = Array.isArray(arg.value) ? arg.value : [];
    items.forEach((_item, i) => parts.set(parts.size, taintOf(arg.taint, i)));
  }
  return parts;
}

function pick(target: Evaluated, index: ArmValue): Evaluated {
  const value = target.value;
  if (Array.isArray(value) && typeof index === 'number') {
    if (index < 0 || index >= value.length) throw new ExpressionError(`index ${index} is outside the array`);
    return { value: value[index] ?? null, taint: taintOf(target.taint, index) };
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && typeof index === 'string') {
    const key = Object.keys(value).find((k) => k.toLowerCase() === index.toLowerCase());
    if (key === undefined) throw new ExpressionError(`the object has no property "${index}"`);
    return { value: value[key] ?? null, taint: taintOf(target.taint, key) };
  }
  throw new ExpressionError(`cannot index a ${describe(value)} with a ${describe(index)}`);
}

function describe(value: ArmValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function stringArg(fn: string, args: ArmValue[], index: number): string {
  const value = args[index];
  if (typeof value !== 'string') {
    throw new ExpressionError(
      `${fn}() expects a string as argument ${index + 1}, got ${describe(value ?? null)}`,
    );
  }
  return value;
}

function substring(args: ArmValue[]): string {
  const text = stringArg('substring', args, 0);
  const start = integerArg('substring', args, 1);
  const length = args.length > 2 ? integerArg('substring', args, 2) : text.length - start;
  if (start < 0 || start > text.length)
    throw new ExpressionError(`substring() start index ${start} is outside the string`);
  if (length < 0 || start + length > text.length)
    throw new ExpressionError(`substring() length ${length} runs past the end of the string`);
  return text.slice(start, start + length);
}

function integerArg(fn: string, args: ArmValue[], index: number): number {
  const value = args[index];
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ExpressionError(
      `${fn}() expects an integer as argument ${index + 1}, got ${describe(value ?? null)}`,
    );
  }
  return value;
}

function concat(args: ArmValue[]): ArmValue {
  if (args.length > 0 && args.every(Array.isArray)) return (args as ArmValue[][]).flat(1);
  return args
    .map((arg) => {
      if (typeof arg === 'string' || typeof arg === 'number' || typeof arg === 'boolean') return String(arg);
      throw new ExpressionError(`concat() cannot join a ${describe(arg)} with strings`);
    })
    .join('');
}

function formatString(args: ArmValue[]): string {
  const template = stringArg('format', args, 0);
  return template.replace(
    /\{\{|\}\}|\{(\d+)(:[^}]*)?\}/g,
    (match, index: string | undefined, spec?: string) => {
      if (match === '{{') return '{';
      if (match === '}}') return '}';
      if (spec) throw new ExpressionError(`format() specifiers such as "${match}" are not supported`);
      const value = args[Number(index) + 1];
      if (value === undefined) throw new ExpressionError(`format() has no argument for ${match}`);
      if (typeof value === 'object' && value !== null)
        throw new ExpressionError(`format() cannot insert an ${describe(value)}`);
      return String(value);
    },
  );
}

function resourceId(args: ArmValue[], scope: ExpressionScope): string {
  const strings = args.map((arg, i) => stringArg('resourceId', args, i) && (arg as string));
  const typeIndex = strings.findIndex((arg) => /^[A-Za-z0-9]+\.[A-Za-z0-9.]+\/[A-Za-z0-9/]+$/.test(arg));
  if (typeIndex < 0 || typeIndex > 2) {
    throw new ExpressionError('resourceId() needs a resource type such as Microsoft.Compute/images');
  }
  const [namespace, ...types] = (strings[typeIndex] as string).split('/');
  const names = strings.slice(typeIndex + 1);
  if (names.length !== types.length) {
    throw new ExpressionError(
      `resourceId() for ${strings[typeIndex]} needs ${types.length} name(s) after the type, got ${names.length}`,
    );
  }
  const subscriptionId = typeIndex === 2 ? (strings[0] as string) : scope.subscriptionId();
  const group = typeIndex >= 1 ? (strings[typeIndex - 1] as string) : scope.resourceGroupName();
  const tail = types.map((type, i) => `${type}/${names[i]}`).join('/');
  return `/subscriptions/${subscriptionId}/resourceGroups/${group}/providers/${namespace}/${tail}`;
}
