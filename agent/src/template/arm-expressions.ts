/**
 * Evaluates the subset of ARM template expressions that real image templates use:
 * `[concat(parameters('x'), '-', variables('y'))]` and friends. Anything else is reported by name,
 * so a user learns exactly which function to replace rather than getting a half-evaluated template.
 */

export type ArmValue = null | boolean | number | string | ArmValue[] | { [key: string]: ArmValue };

export class ExpressionError extends Error {}

export interface ExpressionScope {
  /** Resolves parameters('name'); throws ExpressionError when the parameter is unknown or has no value. */
  parameter(name: string): ArmValue;
  /** Resolves variables('name'); throws ExpressionError when the variable is unknown. */
  variable(name: string): ArmValue;
  subscriptionId(): string;
  resourceGroupName(): string;
  resourceGroupLocation(): string;
  /**
   * Told about every function result computed from its arguments, so values derived from a secret
   * (toUpper(parameters('password'))) can be treated as secrets too.
   */
  derived?(args: readonly ArmValue[], result: ArmValue): void;
}

/** Nesting limit for one expression: real templates nest a handful of calls. */
export const MAX_EXPRESSION_DEPTH = 64;

/** True when a JSON string is an ARM expression (`[...]`), not an escaped literal (`[[...`). */
export function isExpression(value: string): boolean {
  return value.length >= 2 && value.startsWith('[') && value.endsWith(']') && !value.startsWith('[[');
}

/** Evaluates one JSON string: an expression, an escaped literal `[[...]`, or a plain string. */
export function evaluateString(value: string, scope: ExpressionScope): ArmValue {
  if (value.startsWith('[[')) return value.slice(1);
  if (!isExpression(value)) return value;
  const parser = new ExpressionParser(value.slice(1, -1));
  const ast = parser.parseAll();
  // Objects from subscription()/resourceGroup() compute properties on access: settle them here, where a
  // missing --subscription-id is still an ExpressionError with a path, not a crash later.
  return materialize(evaluate(ast, scope));
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
  parameters: (args, scope) => scope.parameter(stringArg('parameters', args, 0)),
  variables: (args, scope) => scope.variable(stringArg('variables', args, 0)),
  concat: (args) => concat(args),
  format: (args) => formatString(args),
  tolower: (args) => stringArg('toLower', args, 0).toLowerCase(),
  toupper: (args) => stringArg('toUpper', args, 0).toUpperCase(),
  replace: (args) => {
    const oldText = stringArg('replace', args, 1);
    if (oldText === '')
      throw new ExpressionError('replace() cannot replace an empty string (ARM rejects it too)');
    return stringArg('replace', args, 0)
      .split(oldText)
      .join(stringArg('replace', args, 2));
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
  'replace',
  'resourceId',
  'subscription',
  'resourceGroup',
] as const;

function evaluate(node: Node, scope: ExpressionScope): ArmValue {
  switch (node.kind) {
    case 'string':
    case 'number':
      return node.value;
    case 'call': {
      // ARM function names are case-insensitive.
      const name = node.name.toLowerCase();
      const fn = Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined;
      if (!fn) {
        throw new ExpressionError(
          `the ARM function ${node.name}() is not supported by isobuild (supported: ${SUPPORTED_FUNCTIONS.join(', ')}); ` +
            'replace the expression with its value',
        );
      }
      const args = node.args.map((arg) => evaluate(arg, scope));
      const result = fn(args, scope);
      scope.derived?.(args, result);
      return result;
    }
    case 'property': {
      const target = evaluate(node.target, scope);
      if (target === null || typeof target !== 'object' || Array.isArray(target)) {
        throw new ExpressionError(`cannot read .${node.name} of a ${describe(target)}`);
      }
      const key = Object.keys(target).find((k) => k.toLowerCase() === node.name.toLowerCase());
      if (key === undefined) throw new ExpressionError(`the object has no property "${node.name}"`);
      return target[key] ?? null;
    }
    case 'index': {
      const target = evaluate(node.target, scope);
      const index = evaluate(node.index, scope);
      if (Array.isArray(target) && typeof index === 'number') {
        if (index < 0 || index >= target.length)
          throw new ExpressionError(`index ${index} is outside the array`);
        return target[index] ?? null;
      }
      if (
        target !== null &&
        typeof target === 'object' &&
        !Array.isArray(target) &&
        typeof index === 'string'
      ) {
        const key = Object.keys(target).find((k) => k.toLowerCase() === index.toLowerCase());
        if (key === undefined) throw new ExpressionError(`the object has no property "${index}"`);
        return target[key] ?? null;
      }
      throw new ExpressionError(`cannot index a ${describe(target)} with a ${describe(index)}`);
    }
  }
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
