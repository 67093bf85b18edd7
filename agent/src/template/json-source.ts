/**
 * Reads a template file the way ARM does: JSON with `//` and `/* *\/` comments, an optional byte-order mark
 * (UTF-8 or UTF-16, as Windows editors write it), trailing commas tolerated. Unlike JSON.parse it reports
 * line and column, rejects duplicate keys (ARM does too) and bounds size and nesting before any work is done.
 */
import { IsobuildError, formatPath } from '../errors.js';

export const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024; // ARM's own limit for a deployment template
export const MAX_NESTING_DEPTH = 64;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface JsonDocument {
  readonly value: JsonValue;
  /** 1-based line of every value, keyed by its formatted path (see formatPath). */
  readonly lines: ReadonlyMap<string, number>;
  readonly warnings: readonly string[];
}

export function decodeTemplateBytes(bytes: Uint8Array, fileLabel: string): string {
  if (bytes.length > MAX_TEMPLATE_BYTES) {
    throw unreadable(
      `${fileLabel} is too large: templates are limited to ${MAX_TEMPLATE_BYTES} bytes (ARM's limit). ` +
        'Check that this is the right file, or move large scripts into scriptUri artifacts.',
    );
  }
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes.subarray(2));
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes.subarray(2));
  const bomLength = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const body = bytes.subarray(bomLength);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    const offset = firstInvalidUtf8Offset(body);
    const { line, column } = lineAndColumn(body, offset);
    throw unreadable(
      `${fileLabel}:${line}:${column}: not valid UTF-8 (byte 0x${(body[offset] ?? 0).toString(16).padStart(2, '0')} ` +
        `at offset ${offset + bomLength}). Save the file as UTF-8.`,
    );
  }
}

export function parseJsonDocument(text: string, fileLabel: string): JsonDocument {
  return new Parser(text, fileLabel).parseDocument();
}

function unreadable(message: string): IsobuildError {
  return new IsobuildError('templateUnreadable', message);
}

/** Byte offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629). */
function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const length =
      lead >= 0xc2 && lead <= 0xdf
        ? 2
        : lead >= 0xe0 && lead <= 0xef
          ? 3
          : lead >= 0xf0 && lead <= 0xf4
            ? 4
            : 0;
    if (length === 0 || i + length > bytes.length) return i;
    for (let k = 1; k < length; k++) if (((bytes[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    const second = bytes[i + 1]!;
    // Overlong forms, UTF-16 surrogates and code points above U+10FFFF.
    if ((lead === 0xe0 && second < 0xa0) || (lead === 0xed && second > 0x9f)) return i;
    if ((lead === 0xf0 && second < 0x90) || (lead === 0xf4 && second > 0x8f)) return i;
    i += length;
  }
  return bytes.length;
}

function lineAndColumn(bytes: Uint8Array, end: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < end; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

class Parser {
  private pos = 0;
  private line = 1;
  private lineStart = 0;
  private readonly lines = new Map<string, number>();
  private readonly warnings: string[] = [];
  private readonly path: (string | number)[] = [];

  constructor(
    private readonly text: string,
    private readonly fileLabel: string,
  ) {}

  parseDocument(): JsonDocument {
    this.skipTrivia();
    if (this.pos >= this.text.length) this.fail('the file is empty; expected a JSON object');
    const value = this.parseValue();
    this.skipTrivia();
    if (this.pos < this.text.length) this.fail('unexpected text after the end of the JSON value');
    return { value, lines: this.lines, warnings: this.warnings };
  }

  private fail(what: string): never {
    const column = this.pos - this.lineStart + 1;
    const where = this.path.length > 0 ? ` (inside ${formatPath(this.path)})` : '';
    throw unreadable(`${this.fileLabel}:${this.line}:${column}: invalid JSON: ${what}${where}.`);
  }

  private skipTrivia(): void {
    const text = this.text;
    for (;;) {
      const ch = text.charCodeAt(this.pos);
      if (ch === 0x0a) {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else if (ch === 0x20 || ch === 0x09 || ch === 0x0d || ch === 0xfeff) {
        this.pos++;
      } else if (ch === 0x2f && text.charCodeAt(this.pos + 1) === 0x2f) {
        while (this.pos < text.length && text.charCodeAt(this.pos) !== 0x0a) this.pos++;
      } else if (ch === 0x2f && text.charCodeAt(this.pos + 1) === 0x2a) {
        const end = text.indexOf('*/', this.pos + 2);
        if (end < 0) this.fail('a /* comment is never closed');
        for (let i = this.pos; i < end; i++) {
          if (text.charCodeAt(i) === 0x0a) {
            this.line++;
            this.lineStart = i + 1;
          }
        }
        this.pos = end + 2;
      } else {
        return;
      }
    }
  }

  private record(): void {
    this.lines.set(formatPath(this.path), this.line);
  }

  private parseValue(): JsonValue {
    this.record();
    const ch = this.text[this.pos];
    // A container opened here would be level path.length + 1.
    if ((ch === '{' || ch === '[') && this.path.length >= MAX_NESTING_DEPTH) {
      this.fail(`nesting is deeper than ${MAX_NESTING_DEPTH} levels; image templates never need that`);
    }
    switch (ch) {
      case '{':
        return this.parseObject();
      case '[':
        return this.parseArray();
      case '"':
        return this.parseString();
      case 't':
        return this.parseLiteral('true', true);
      case 'f':
        return this.parseLiteral('false', false);
      case 'n':
        return this.parseLiteral('null', null);
      default:
        if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return this.parseNumber();
        if (ch === undefined) this.fail('the file ends in the middle of a value');
        return this.fail(`unexpected character ${JSON.stringify(ch)}`);
    }
  }

  private parseLiteral<T extends JsonValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail(`unexpected text; did you mean ${word}?`);
    this.pos += word.length;
    return value;
  }

  private parseNumber(): number {
    const match = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(
      this.text.slice(this.pos, this.pos + 64),
    );
    if (!match) this.fail('malformed number');
    this.pos += match[0].length;
    return Number(match[0]);
  }

  private parseString(): string {
    const text = this.text;
    let out = '';
    let chunkStart = ++this.pos;
    for (;;) {
      const code = text.charCodeAt(this.pos);
      if (Number.isNaN(code)) this.fail('a string is never closed');
      if (code === 0x22) {
        out += text.slice(chunkStart, this.pos);
        this.pos++;
        return out;
      }
      if (code < 0x20)
        this.fail('a raw control character (such as a line break) inside a string; write it as \\n');
      if (code === 0x5c) {
        out += text.slice(chunkStart, this.pos);
        out += this.parseEscape();
        chunkStart = this.pos;
        continue;
      }
      this.pos++;
    }
  }

  private parseEscape(): string {
    const next = this.text[this.pos + 1];
    this.pos += 2;
    switch (next) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('malformed \\u escape');
        this.pos += 4;
        return String.fromCharCode(parseInt(hex, 16));
      }
      default:
        this.pos -= 2;
        return this.fail(`unknown escape \\${next ?? ''} in a string (write a backslash as \\\\)`);
    }
  }

  private parseArray(): JsonValue[] {
    const items: JsonValue[] = [];
    this.pos++;
    this.skipTrivia();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return items;
    }
    for (;;) {
      this.path.push(items.length);
      items.push(this.parseValue());
      this.path.pop();
      this.skipTrivia();
      const ch = this.text[this.pos];
      if (ch === ']') {
        this.pos++;
        return items;
      }
      if (ch !== ',')
        this.fail(ch === undefined ? 'an array is never closed' : 'expected , or ] in an array');
      this.pos++;
      this.skipTrivia();
      if (this.text[this.pos] === ']') {
        this.warnings.push(`line ${this.line}: trailing comma in an array`);
        this.pos++;
        return items;
      }
    }
  }

  private parseObject(): JsonObject {
    const object: JsonObject = {};
    this.pos++;
    this.skipTrivia();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return object;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') this.fail('expected a "quoted" property name');
      const key = this.parseString();
      if (Object.prototype.hasOwnProperty.call(object, key)) {
        this.path.push(key);
        this.fail(`the property "${key}" appears twice in the same object; ARM rejects duplicate properties`);
      }
      this.skipTrivia();
      if (this.text[this.pos] !== ':') this.fail(`expected : after the property name "${key}"`);
      this.pos++;
      this.skipTrivia();
      this.path.push(key);
      // defineProperty: a key named __proto__ must stay data, never change the object's prototype.
      Object.defineProperty(object, key, {
        value: this.parseValue(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.path.pop();
      this.skipTrivia();
      const ch = this.text[this.pos];
      if (ch === '}') {
        this.pos++;
        return object;
      }
      if (ch !== ',')
        this.fail(ch === undefined ? 'an object is never closed' : 'expected , or } in an object');
      this.pos++;
      this.skipTrivia();
      if (this.text[this.pos] === '}') {
        this.warnings.push(`line ${this.line}: trailing comma in an object`);
        this.pos++;
        return object;
      }
    }
  }
}
