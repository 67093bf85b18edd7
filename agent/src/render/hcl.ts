/**
 * A small HCL writer for the Packer files isobuild renders. Every user-supplied string goes through
 * `hclString`, the one escaping function: it protects the text from HCL's template syntax (`${`, `%{`),
 * quotes, backslashes and control characters. Packer also changes some text whatever the escaping
 * (NFC normalisation, repeated Go templating of `{{`); exact-text-guard.ts keeps such text out of HCL.
 */

/** A raw HCL expression written as-is (e.g. `var.build_host`). Never built from user input. */
export class HclExpression {
  constructor(readonly text: string) {}
}

export type HclValue = string | number | boolean | HclExpression | readonly HclValue[];

export interface HclBlock {
  readonly type: string;
  readonly labels?: readonly string[];
  /** Comment lines written above the block. */
  readonly comment?: readonly string[];
  readonly attributes?: readonly (readonly [string, HclValue])[];
  readonly blocks?: readonly HclBlock[];
}

/** A sensitive value that must be referenced through a variable instead of written into a file. */
export interface SecretReference {
  readonly value: string;
  readonly variable: string;
}

export const expr = (text: string): HclExpression => new HclExpression(text);

/**
 * Quotes `value` as an HCL string literal that evaluates to exactly `value`. Occurrences of a secret are
 * replaced by a `${var.<name>}` reference, so the secret never lands in a file.
 */
export function hclString(value: string, secrets: readonly SecretReference[] = []): string {
  let out = '"';
  for (const [index, part] of splitOnSecrets(value, secrets).entries()) {
    out += index % 2 === 1 ? `\${var.${part}}` : escapeTemplateText(part);
  }
  return `${out}"`;
}

/**
 * The inside of an HCL string literal (no quotes) that evaluates to a PowerShell single-quoted literal of
 * `value`: quotes doubled, and a secret as `${regex_replace(var.<name>, …)}` doubling its quotes, so that a secret holding a
 * quote is quoted right by Packer and still never lands in a file.
 */
export function hclPowerShellLiteral(value: string, secrets: readonly SecretReference[] = []): string {
  const double = (text: string): string => text.replace(/['\u2018\u2019\u201A\u201B]/g, '$&$&');
  let out = "'";
  for (const [index, part] of splitOnSecrets(value, secrets).entries()) {
    // Packer 1.6's replace() takes no regular expression; regex_replace does ($0: the quote found).
    out +=
      index % 2 === 1
        ? `\${regex_replace(var.${part}, "['\\u2018\\u2019\\u201A\\u201B]", "$0$0")}`
        : escapeTemplateText(double(part));
  }
  return `${out}'`;
}

function escapeTemplateText(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const code = text.charCodeAt(i);
    const next = text[i + 1];
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if ((ch === '$' || ch === '%') && next === '{')
      out += ch + ch; // $${ and %%{ are HCL's literal forms
    else if (
      code < 0x20 ||
      code === 0x7f ||
      (code >= 0x80 && code <= 0x9f) ||
      code === 0x2028 ||
      code === 0x2029
    ) {
      out += `\\u${code.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return out;
}

/** Alternates literal text and secret variable names: [text, var, text, var, text…]. */
function splitOnSecrets(value: string, secrets: readonly SecretReference[]): string[] {
  const usable = secrets.filter((s) => s.value.length > 0).sort((a, b) => b.value.length - a.value.length);
  if (usable.length === 0) return [value];
  const parts: string[] = [];
  let text = '';
  let i = 0;
  outer: while (i < value.length) {
    for (const secret of usable) {
      if (value.startsWith(secret.value, i)) {
        parts.push(text, secret.variable);
        text = '';
        i += secret.value.length;
        continue outer;
      }
    }
    text += value[i];
    i++;
  }
  parts.push(text);
  return parts;
}

export function writeHcl(blocks: readonly HclBlock[]): string {
  return `${blocks.map((block) => writeBlock(block, '')).join('\n\n')}\n`;
}

function writeBlock(block: HclBlock, indent: string): string {
  const lines: string[] = [];
  for (const comment of block.comment ?? []) lines.push(`${indent}# ${comment}`);
  const labels = (block.labels ?? []).map((label) => ` ${hclString(label)}`).join('');
  lines.push(`${indent}${block.type}${labels} {`);
  const attributes = block.attributes ?? [];
  const width = Math.max(0, ...attributes.map(([name]) => name.length));
  for (const [name, value] of attributes) {
    lines.push(`${indent}  ${name.padEnd(width)} = ${writeValue(value, `${indent}  `)}`);
  }
  const children = block.blocks ?? [];
  if (attributes.length > 0 && children.length > 0) lines.push('');
  children.forEach((child, i) => {
    if (i > 0) lines.push('');
    lines.push(writeBlock(child, `${indent}  `));
  });
  lines.push(`${indent}}`);
  return lines.join('\n');
}

function writeValue(value: HclValue, indent: string): string {
  if (value instanceof HclExpression) return value.text;
  if (typeof value === 'string') return hclString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value.length === 0) return '[]';
  return `[\n${value.map((item) => `${indent}  ${writeValue(item, `${indent}  `)},`).join('\n')}\n${indent}]`;
}
