// PowerShell's text rules as the fake Windows VM needs them to run isobuild's scripts by their shape: single-
// quoted literals, expandable strings (what they print, and where the parser refuses one), and the error
// records Windows PowerShell writes to a redirected stderr. The messages a script prints are its own strings,
// expanded here as PowerShell expands them, so a wording change in the agent shows as it would on Windows.

/** PowerShell's single-quoted literal: any of its four single quotes, doubled, stands for itself. */
export const SINGLE_QUOTED = String.raw`'((?:[^'\u2018-\u201B]|(['\u2018-\u201B])\2)*)'`;
/** An expandable (double-quoted) string: "" and backtick escapes inside. */
export const DOUBLE_QUOTED = '"((?:[^"`]|`[\\s\\S]|"")*)"';

/** The value of a single-quoted literal's inside (the first group of SINGLE_QUOTED). */
export function unquoteSingle(inside: string): string {
  return inside.replace(/(['\u2018-\u201B])\1/g, '$1');
}

/** A value an expandable string can reach: a string, or an object (or array of them) for `$($x[0].Name)`. */
export type PsValue = string | number | readonly PsValue[] | { readonly [property: string]: PsValue };

/** Thrown for an expression the fake cannot evaluate: the script fails visibly instead of printing a guess. */
export class UnsupportedExpression extends Error {}

/**
 * In an expandable string, `$name:` followed by no name character is a drive-qualified variable with no
 * name: a parser error (`"$step: …"` must be written `"$($step): …"` or `"${step}: …"`).
 */
export function driveReferenceProblem(text: string): string | undefined {
  for (const [token] of text.matchAll(/`[\s\S]|\$\w+:(?![\w?{])/g))
    if (!token.startsWith('`'))
      return `"${text}": Variable reference is not valid. ':' was not followed by a valid variable name character. Consider using \${} to delimit the name.`;
  return undefined;
}

const ESCAPES: Readonly<Record<string, string>> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

/**
 * What PowerShell makes of an expandable string: `$name`, `${name}` and `$(...)` replaced, escapes resolved.
 * A subexpression may be `$name` followed by indexes and properties (`$($left[0].FullName)`); anything else
 * throws UnsupportedExpression.
 */
export function expand(text: string, variables: Readonly<Record<string, PsValue>>): string {
  return text.replace(
    /`([\s\S])|""|\$\(([^)]*)\)|\$\{([^}]+)\}|\$(\w+)/g,
    (whole, escaped?: string, sub?: string, braced?: string, plain?: string) => {
      if (escaped !== undefined) return ESCAPES[escaped] ?? escaped;
      if (whole === '""') return '"';
      if (sub !== undefined) return asText(evaluate(sub.trim(), variables), whole);
      return asText(lookup((braced ?? plain)!, variables), whole);
    },
  );
}

/** `$name`, `$name[1]`, `$name.Prop`, chained: names and properties case-insensitive, as in PowerShell. */
function evaluate(expression: string, variables: Readonly<Record<string, PsValue>>): PsValue | undefined {
  const match = /^\$(\w+)((?:\[\d+\]|\.\w+)*)$/.exec(expression);
  if (!match) throw new UnsupportedExpression(`the fake Windows VM cannot evaluate $(${expression})`);
  let value = lookup(match[1]!, variables);
  for (const [, index, property] of match[2]!.matchAll(/\[(\d+)\]|\.(\w+)/g)) {
    if (value === undefined) return undefined;
    if (index !== undefined) value = isList(value) ? value[Number(index)] : undefined;
    // A single object has a Count of 1 too (PowerShell 3 and later).
    else if (property!.toLowerCase() === 'count') value = isList(value) ? value.length : 1;
    else value = typeof value === 'object' && !isList(value) ? lookup(property!, value) : undefined;
  }
  return value;
}

function isList(value: PsValue): value is readonly PsValue[] {
  return Array.isArray(value);
}

function lookup(name: string, from: Readonly<Record<string, PsValue>>): PsValue | undefined {
  return Object.entries(from).find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1];
}

/** An unset variable expands to nothing (PowerShell without strict mode); an object is beyond the fake. */
function asText(value: PsValue | undefined, source: string): string {
  if (value === undefined) return '';
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  throw new UnsupportedExpression(`the fake Windows VM cannot print ${source} (an object, not text)`);
}

/** Where an error happened in the script, as the record's "At line:" and "+" lines show it. */
export interface ErrorPosition {
  readonly script: string;
  /** The text the error is about (a command, a method call); its first occurrence is underlined. */
  readonly extent: string;
}

export interface ErrorRecordText {
  readonly message: string;
  readonly position?: ErrorPosition;
  /** `WriteError: (customize-01:FileInfo) [Remove-Item], IOException` */
  readonly categoryInfo?: string;
  readonly fullyQualifiedErrorId?: string;
}

/**
 * Error records as Windows PowerShell 5.1 writes them to a redirected stderr when it exits: `#< CLIXML`,
 * then one Error string per line of each formatted record (message, position, CategoryInfo,
 * FullyQualifiedErrorId, and a blank line after a full record).
 */
export function errorRecord(...records: readonly ErrorRecordText[]): string {
  const lines = records.flatMap((record) => {
    const text = [record.message, ...positionLines(record.position)];
    if (record.categoryInfo) text.push(`    + CategoryInfo          : ${record.categoryInfo}`);
    if (record.fullyQualifiedErrorId)
      text.push(`    + FullyQualifiedErrorId : ${record.fullyQualifiedErrorId}`);
    if (text.length > 1) text.push(' ');
    return text;
  });
  const strings = lines
    .map((line) => line.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'))
    .map((line) => `<S S="Error">${line}_x000D__x000A_</S>`)
    .join('');
  return `#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">${strings}</Objs>`;
}

function positionLines(position: ErrorPosition | undefined): string[] {
  if (!position) return [];
  const lines = position.script.split(/\r?\n/);
  const row = lines.findIndex((line) => line.includes(position.extent));
  if (row < 0) return [];
  const column = lines[row]!.indexOf(position.extent);
  return [
    `At line:${row + 1} char:${column + 1}`,
    `+ ${lines[row]!}`,
    `+ ${' '.repeat(column)}${'~'.repeat(position.extent.length)}`,
  ];
}
