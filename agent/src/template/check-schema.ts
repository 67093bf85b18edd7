/**
 * Walks a template against the declarative schema: types, enums, patterns, ranges, required and
 * read-only fields, fields newer than the declared API version, and AIB's strictness switch
 * (exact case and no unknown fields from 2024-02-01; case-insensitive and forgiving before).
 * Returns a copy with canonical field names and enum values so later stages need not care about case.
 */
import { formatPath, type Problem } from '../errors.js';
import { atLeast, type ApiVersion } from './api-versions.js';
import type { JsonObject, JsonValue } from './json-source.js';
import { resourceIdProblem } from './resource-ids.js';
import type { Field, Spec } from './schema.js';

export interface SchemaContext {
  readonly version: ApiVersion;
  readonly strict: boolean;
  readonly problems: Problem[];
  /**
   * Paths whose value is not usable and already reported (failed expression, placeholder, a field name in
   * the wrong case): later checks skip them instead of reporting the same mistake again.
   */
  readonly unresolved: Set<string>;
  /** Whether `version` came from the template's apiVersion or from --api-version (for messages). */
  readonly versionFromFlag?: boolean;
}

type Path = (string | number)[];

export function checkAgainstSchema(
  value: JsonValue,
  spec: Spec,
  path: Path,
  ctx: SchemaContext,
): JsonValue | undefined {
  const here = formatPath(path);
  const error = (message: string): undefined => {
    ctx.problems.push({ severity: 'error', path: here, message });
    return undefined;
  };
  // A failed expression or a placeholder is still its raw string; its own error is already reported.
  if (ctx.unresolved.has(here) && typeof value === 'string') return value;
  switch (spec.kind) {
    case 'any':
      return value;
    case 'string': {
      if (typeof value !== 'string') return error(`must be a string, not ${describe(value)}.`);
      if (spec.enum) return checkEnum(value, spec.enum, here, ctx);
      if (spec.pattern && !spec.pattern.test(value)) {
        return error(
          `${JSON.stringify(value)} is not valid: expected ${spec.patternHint ?? spec.pattern.source}.`,
        );
      }
      if (spec.resourceId) {
        const problem = resourceIdProblem(value, spec.resourceId);
        if (problem) return error(problem);
      }
      return value;
    }
    case 'int': {
      if (typeof value !== 'number' || !Number.isInteger(value))
        return error(`must be a whole number, not ${describe(value)}.`);
      if (spec.min !== undefined && value < spec.min)
        return error(`must be at least ${spec.min}; it is ${value}.`);
      if (spec.max !== undefined && value > spec.max)
        return error(`must be at most ${spec.max}; it is ${value}.`);
      return value;
    }
    case 'bool':
      if (typeof value !== 'boolean') return error(`must be true or false, not ${describe(value)}.`);
      return value;
    case 'stringMap':
    case 'identityMap': {
      if (!isObject(value))
        return error(`must be an object mapping names to ${spec.kind === 'stringMap' ? 'strings' : '{}'}.`);
      for (const [key, item] of Object.entries(value)) {
        const itemPath = formatPath([...path, key]);
        if (spec.kind === 'stringMap' && typeof item !== 'string') {
          ctx.problems.push({
            severity: 'error',
            path: itemPath,
            message: `must be a string, not ${describe(item)}.`,
          });
        }
        if (spec.kind === 'identityMap' && !ctx.unresolved.has(itemPath)) {
          const problem = resourceIdProblem(key, 'userAssignedIdentity');
          if (problem) ctx.problems.push({ severity: 'error', path: itemPath, message: problem });
        }
      }
      return value;
    }
    case 'array': {
      if (!Array.isArray(value)) return error(`must be an array ([...]), not ${describe(value)}.`);
      if (spec.minItems !== undefined && value.length < spec.minItems) {
        return error(`must list at least ${spec.minItems} item(s).`);
      }
      return value.map((item, i) => checkAgainstSchema(item, spec.items, [...path, i], ctx) ?? null);
    }
    case 'object':
      if (!isObject(value)) return error(`must be an object ({...}), not ${describe(value)}.`);
      return checkFields(value, spec.fields, path, ctx, new Set());
    case 'union':
      return checkUnion(value, spec, path, ctx);
  }
}

function checkUnion(
  value: JsonValue,
  spec: Extract<Spec, { kind: 'union' }>,
  path: Path,
  ctx: SchemaContext,
): JsonObject | undefined {
  const here = formatPath(path);
  const names = Object.keys(spec.variants);
  const error = (message: string): undefined => {
    ctx.problems.push({ severity: 'error', path: here, message });
    return undefined;
  };
  if (!isObject(value)) return error(`each ${spec.what} must be an object ({...}), not ${describe(value)}.`);
  const key = findKey(value, spec.discriminator, ctx.strict);
  const discriminatorPath = formatPath([...path, key ?? spec.discriminator]);
  const raw = key === undefined ? undefined : value[key];
  if (typeof raw !== 'string') {
    ctx.problems.push({
      severity: 'error',
      path: discriminatorPath,
      message: `every ${spec.what} needs "${spec.discriminator}": one of ${names.join(', ')}.`,
    });
    return undefined;
  }
  const variantName =
    names.find((n) => n === raw) ??
    (ctx.strict ? undefined : names.find((n) => n.toLowerCase() === raw.toLowerCase()));
  if (variantName === undefined) {
    const caseOnly = names.find((n) => n.toLowerCase() === raw.toLowerCase());
    const hint = caseOnly
      ? `values are case-sensitive from API version 2024-02-01: write "${caseOnly}".`
      : `use one of ${names.join(', ')}.`;
    ctx.problems.push({
      severity: 'error',
      path: discriminatorPath,
      message: `unknown ${spec.what} ${spec.discriminator} "${raw}"; ${hint}`,
    });
    return undefined;
  }
  const variant = spec.variants[variantName]!;
  if (variant.removed) {
    ctx.problems.push({
      severity: 'error',
      path: discriminatorPath,
      message: `${variantName} is not supported: ${variant.removed}.`,
    });
    return undefined;
  }
  if (variant.since && !atLeast(ctx.version, variant.since)) {
    ctx.problems.push({
      severity: 'error',
      path: discriminatorPath,
      message: tooNew(`the ${spec.what} type ${variantName}`, variant.since, ctx),
    });
    return undefined;
  }
  const consumed = new Set([key as string]);
  const out = checkFields(value, variant.fields, path, ctx, consumed);
  if (out)
    Object.defineProperty(out, spec.discriminator, {
      value: variantName,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return out;
}

function checkFields(
  value: JsonObject,
  fields: Readonly<Record<string, Field>>,
  path: Path,
  ctx: SchemaContext,
  consumed: Set<string>,
): JsonObject {
  const out: JsonObject = {};
  const canonicalSeen = new Map<string, string>();
  for (const [key, child] of Object.entries(value)) {
    if (consumed.has(key)) continue;
    const childPath = [...path, key];
    const here = formatPath(childPath);
    // Object.hasOwn: a field named "constructor" or "__proto__" must not find Object.prototype's members.
    const canonical = Object.hasOwn(fields, key)
      ? key
      : Object.keys(fields).find((name) => name.toLowerCase() === key.toLowerCase());
    if (canonical === undefined) {
      reportUnknown(key, Object.keys(fields), here, ctx);
      continue;
    }
    if (canonical !== key && ctx.strict) {
      ctx.problems.push({
        severity: 'error',
        path: here,
        message: `field names are case-sensitive from API version 2024-02-01: write "${canonical}", not "${key}".`,
      });
      // Reported once, here: the field is neither "missing" nor checked by the cross-field rules.
      canonicalSeen.set(canonical, key);
      ctx.unresolved.add(formatPath([...path, canonical]));
      continue;
    }
    const earlier = canonicalSeen.get(canonical);
    if (earlier !== undefined) {
      ctx.problems.push({
        severity: 'error',
        path: here,
        message: `"${key}" and "${earlier}" are the same field (names are case-insensitive in this API version); keep one.`,
      });
      continue;
    }
    canonicalSeen.set(canonical, key);
    const field = fields[canonical]!;
    if (child === null) {
      // null means "not set", as Go's JSON decoder treats it: a required field set to null is missing.
      if (field.required) {
        ctx.problems.push({
          severity: 'error',
          path: here,
          message: `missing required field "${canonical}" (it is null).`,
        });
      }
      continue;
    }
    if (field.since && !atLeast(ctx.version, field.since)) {
      ctx.problems.push({
        severity: 'error',
        path: here,
        message: tooNew(`"${canonical}"`, field.since, ctx),
      });
      continue;
    }
    if (field.readOnly) {
      ctx.problems.push({
        severity: 'warning',
        path: here,
        message: `"${canonical}" is read-only (AIB fills it in after a run); it is ignored. Remove it from templates you submit.`,
      });
      continue;
    }
    if (field.deprecated && atLeast(ctx.version, field.deprecated.since)) {
      ctx.problems.push({
        severity: 'warning',
        path: here,
        message: `"${canonical}" is deprecated since API version ${field.deprecated.since}; ${field.deprecated.advice}.`,
      });
    }
    const checked = checkAgainstSchema(child, field.spec, childPath, ctx);
    if (checked !== undefined) {
      Object.defineProperty(out, canonical, {
        value: checked,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  for (const [name, field] of Object.entries(fields)) {
    if (!field.required || canonicalSeen.has(name)) continue;
    if (field.since && !atLeast(ctx.version, field.since)) continue;
    ctx.problems.push({
      severity: 'error',
      path: formatPath([...path, name]),
      message: `missing required field "${name}".`,
    });
  }
  return out;
}

function checkEnum(
  value: string,
  values: readonly { value: string; since?: ApiVersion }[],
  here: string,
  ctx: SchemaContext,
): string | undefined {
  const exact = values.find((v) => v.value === value);
  const loose = exact ?? values.find((v) => v.value.toLowerCase() === value.toLowerCase());
  const allowed = values.filter((v) => !v.since || atLeast(ctx.version, v.since)).map((v) => v.value);
  if (!loose) {
    ctx.problems.push({
      severity: 'error',
      path: here,
      message: `${JSON.stringify(value)} is not allowed; use one of ${allowed.join(', ')}.`,
    });
    return undefined;
  }
  if (!exact && ctx.strict) {
    ctx.problems.push({
      severity: 'error',
      path: here,
      message: `values are case-sensitive from API version 2024-02-01: write "${loose.value}", not "${value}".`,
    });
    return undefined;
  }
  if (loose.since && !atLeast(ctx.version, loose.since)) {
    ctx.problems.push({
      severity: 'error',
      path: here,
      message: tooNew(`the value "${loose.value}"`, loose.since, ctx),
    });
    return undefined;
  }
  return loose.value;
}

function reportUnknown(key: string, known: string[], here: string, ctx: SchemaContext): void {
  const suggestion = closest(key, known);
  const hint = suggestion ? ` Did you mean "${suggestion}"?` : ` Known fields here: ${known.join(', ')}.`;
  if (ctx.strict) {
    ctx.problems.push({
      severity: 'error',
      path: here,
      message: `unknown field "${key}"; AIB rejects unknown fields from API version 2024-02-01.${hint}`,
    });
  } else {
    ctx.problems.push({
      severity: 'warning',
      path: here,
      message: `unknown field "${key}" is ignored (API version ${ctx.version} is lenient, so AIB ignores it too).${hint}`,
    });
  }
}

export function tooNew(
  what: string,
  since: ApiVersion,
  ctx: Pick<SchemaContext, 'version' | 'versionFromFlag'>,
): string {
  const declared = ctx.versionFromFlag
    ? `--api-version selects ${ctx.version}`
    : `the template declares ${ctx.version}`;
  const fix = ctx.versionFromFlag ? '--api-version' : 'apiVersion';
  return `${what} was introduced in API version ${since}, but ${declared}. Set ${fix} to ${since} or later, or remove it.`;
}

function findKey(value: JsonObject, name: string, strict: boolean): string | undefined {
  if (Object.prototype.hasOwnProperty.call(value, name)) return name;
  if (strict) return undefined;
  return Object.keys(value).find((k) => k.toLowerCase() === name.toLowerCase());
}

/** The known name within edit distance 2 (typos like "aritfactTags"), if any. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

export function describe(value: JsonValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value === 'number' ? 'the number' : 'the boolean'} ${String(value)}`;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
