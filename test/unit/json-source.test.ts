/**
 * The template reader: ARM-flavoured JSON (comments, BOMs, trailing commas) with precise locations,
 * duplicate-key rejection, no prototype pollution, and limits on size and nesting.
 */
import { describe, expect, it } from 'vitest';
import { IsobuildError } from '../../agent/src/errors.js';
import {
  MAX_NESTING_DEPTH,
  MAX_TEMPLATE_BYTES,
  decodeTemplateBytes,
  parseJsonDocument,
} from '../../agent/src/template/json-source.js';

const LABEL = 'template.json';

function utf8(text: string): number[] {
  return [...new TextEncoder().encode(text)];
}

function utf16le(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out.push(code & 0xff, code >> 8);
  }
  return out;
}

function utf16be(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out.push(code >> 8, code & 0xff);
  }
  return out;
}

/** The IsobuildError a call throws (fails the test when it does not throw one). */
function thrown(run: () => unknown): IsobuildError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(IsobuildError);
    return error as IsobuildError;
  }
  throw new Error('expected the call to throw');
}

function parseError(text: string): IsobuildError {
  return thrown(() => parseJsonDocument(text, LABEL));
}

function decodeError(bytes: number[]): IsobuildError {
  return thrown(() => decodeTemplateBytes(new Uint8Array(bytes), LABEL));
}

/** `levels` nested arrays around `inner`. */
function nestedArrays(levels: number, inner = ''): string {
  return '['.repeat(levels) + inner + ']'.repeat(levels);
}

/** `levels` containers, alternating objects ({"a": ...}) and arrays, around `inner`. */
function nestedMixed(levels: number, inner: string): string {
  let open = '';
  let close = '';
  for (let i = 0; i < levels; i++) {
    open += i % 2 === 0 ? '{"a":' : '[';
    close = (i % 2 === 0 ? '}' : ']') + close;
  }
  return open + inner + close;
}

describe('parseJsonDocument', () => {
  describe('comments', () => {
    it('skips // line comments and /* block */ comments between tokens', () => {
      const text = [
        '// leading comment',
        '{',
        '  /* block',
        '     spanning lines */ "a": 1, // trailing',
        '  "b": /* inline */ [true, /* x */ null]',
        '}',
        '/* after the value */',
      ].join('\n');

      const doc = parseJsonDocument(text, LABEL);

      expect(doc.value).toEqual({ a: 1, b: [true, null] });
      expect(doc.warnings).toEqual([]);
    });

    it.each([
      ['a URL', 'http://example.com/a//b'],
      ['a block-comment opener', '/* not a comment */'],
      ['a line-comment opener', '// not a comment'],
      ['an unmatched closer', 'a */ b'],
    ])('keeps %s inside a string as text', (_what, inside) => {
      const text = `{ "value": ${JSON.stringify(inside)} }`;

      const doc = parseJsonDocument(text, LABEL);

      expect(doc.value).toEqual({ value: inside });
    });

    it('keeps a string that follows a comment containing a quote intact', () => {
      const text = '{ /* say "hi" */ "a": "x // y" // it\'s "quoted"\n}';

      const doc = parseJsonDocument(text, LABEL);

      expect(doc.value).toEqual({ a: 'x // y' });
    });

    it('counts the lines of block comments when reporting later errors', () => {
      const text = '{\n/*\n\n*/ "a": nope\n}';

      const error = parseError(text);

      expect(error.message).toContain(`${LABEL}:4:9:`);
    });

    it('rejects a block comment that is never closed, at the line where it starts', () => {
      const error = parseError('{\n  "a": 1 /* open\n}');

      expect(error.code).toBe('templateUnreadable');
      expect(error.message).toMatch(/template\.json:2:\d+: .*never closed/);
    });
  });

  describe('trailing commas', () => {
    it.each([
      ['an object', '{\n  "a": 1,\n}', { a: 1 }, 'trailing comma in an object'],
      ['an array', '{\n  "a": [1, 2,\n  ]\n}', { a: [1, 2] }, 'trailing comma in an array'],
    ])(
      'accepts one after the last item of %s, with a warning naming the line',
      (_what, text, value, warning) => {
        const doc = parseJsonDocument(text, LABEL);

        expect(doc.value).toEqual(value);
        expect(doc.warnings).toHaveLength(1);
        expect(doc.warnings[0]).toContain(warning);
        expect(doc.warnings[0]).toMatch(/^line \d+:/);
      },
    );

    it.each([
      ['a leading comma in an array', '[,1]'],
      ['two commas in a row', '[1,,2]'],
      ['a lone comma in an object', '{,}'],
    ])('still rejects %s', (_what, text) => {
      const error = parseError(text);

      expect(error.code).toBe('templateUnreadable');
    });
  });

  describe('syntax errors', () => {
    it.each([
      ['a misspelt literal', '{\n  "a": tru\n}', 2, 8, 'did you mean true'],
      ['a missing comma', '{\n  "a": 1\n  "b": 2\n}', 3, 3, 'expected , or }'],
      ['a single-quoted name', "{\n    'a': 1\n}", 2, 5, 'property name'],
      ['a raw line break in a string', '{ "a": "one\ntwo" }', 1, 12, 'raw control character'],
      ['an unknown escape', '{\n "path": "c:\\windows"\n}', 2, 13, 'unknown escape'],
      ['text after the value', '{}\n{}', 2, 1, 'after the end'],
      ['an unclosed object', '{\n  "a": 1', 2, 9, 'never closed'],
      ['a malformed number', '{ "a": -x }', 1, 8, 'malformed number'],
    ])('reports %s with its line and column', (_what, text, line, column, message) => {
      const error = parseError(text);

      expect(error.code).toBe('templateUnreadable');
      expect(error.message).toContain(`${LABEL}:${line}:${column}: invalid JSON:`);
      expect(error.message).toContain(message);
    });

    it('names the enclosing path of the error', () => {
      const error = parseError('{\n  "properties": {\n    "customize": [ { "type": Shell } ]\n  }\n}');

      expect(error.message).toContain(`${LABEL}:3:`);
      expect(error.message).toContain('inside properties.customize[0].type');
    });

    it('rejects an empty file', () => {
      const error = parseError('  // only a comment\n');

      expect(error.message).toContain('empty');
    });
  });

  describe('duplicate keys', () => {
    it('rejects a repeated key, naming the key, its path and its line', () => {
      const text = '{\n  "properties": {\n    "source": {},\n    "source": {}\n  }\n}';

      const error = parseError(text);

      expect(error.code).toBe('templateUnreadable');
      expect(error.message).toContain(`${LABEL}:4:`);
      expect(error.message).toContain('"source" appears twice');
      expect(error.message).toContain('inside properties.source');
    });

    it('allows the same key in different objects', () => {
      const doc = parseJsonDocument('{ "a": { "name": 1 }, "b": { "name": 2 } }', LABEL);

      expect(doc.value).toEqual({ a: { name: 1 }, b: { name: 2 } });
    });

    it('treats keys that differ only in case as different keys (case folding is the schema check’s job)', () => {
      const doc = parseJsonDocument('{ "name": 1, "Name": 2 }', LABEL);

      expect(doc.value).toEqual({ name: 1, Name: 2 });
    });
  });

  describe('__proto__ and other special keys', () => {
    it('keeps "__proto__" as a plain own data property without changing the prototype', () => {
      const text = '{ "__proto__": { "polluted": true }, "a": 1 }';

      const doc = parseJsonDocument(text, LABEL);

      const value = doc.value as Record<string, unknown>;
      expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
      expect(Object.prototype.hasOwnProperty.call(value, '__proto__')).toBe(true);
      expect(Object.keys(value)).toEqual(['__proto__', 'a']);
      expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ polluted: true });
      expect((value as { polluted?: unknown }).polluted).toBeUndefined();
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    });

    it('rejects a duplicated "__proto__" like any other duplicate', () => {
      const error = parseError('{ "__proto__": 1, "__proto__": 2 }');

      expect(error.message).toContain('"__proto__" appears twice');
    });

    it.each(['constructor', 'toString', 'hasOwnProperty'])('reads a key named %s as data', (key) => {
      const doc = parseJsonDocument(`{ "${key}": "x" }`, LABEL);

      expect(Object.getOwnPropertyDescriptor(doc.value, key)?.value).toBe('x');
    });
  });

  describe('nesting limit', () => {
    it(`accepts ${MAX_NESTING_DEPTH} levels of nesting`, () => {
      const doc = parseJsonDocument(nestedArrays(MAX_NESTING_DEPTH, '1'), LABEL);

      expect(JSON.stringify(doc.value)).toBe(nestedArrays(MAX_NESTING_DEPTH, '1'));
    });

    it(`rejects ${MAX_NESTING_DEPTH + 1} levels of nesting`, () => {
      const error = parseError(nestedArrays(MAX_NESTING_DEPTH + 1, '1'));

      expect(error.code).toBe('templateUnreadable');
      expect(error.message).toContain(`deeper than ${MAX_NESTING_DEPTH} levels`);
    });

    it(`rejects ${MAX_NESTING_DEPTH + 1} levels of nesting even when the innermost container is empty`, () => {
      const error = parseError(nestedArrays(MAX_NESTING_DEPTH + 1));

      expect(error.message).toContain(`deeper than ${MAX_NESTING_DEPTH} levels`);
    });

    it.each([
      [MAX_NESTING_DEPTH, true],
      [MAX_NESTING_DEPTH + 1, false],
    ])('counts objects and arrays alike (%i mixed levels accepted: %s)', (levels, accepted) => {
      const text = nestedMixed(levels, '1');

      const parse = (): unknown => parseJsonDocument(text, LABEL);

      if (accepted) expect(parse).not.toThrow();
      else expect(parse).toThrow(/deeper than/);
    });

    it('fails fast on pathological nesting instead of overflowing the stack', () => {
      const error = parseError(nestedArrays(100_000));

      expect(error.message).toContain('deeper than');
    });
  });

  describe('lines', () => {
    it('records the 1-based line of every value, keyed by its path', () => {
      const text = [
        '{', // 1
        '  "properties": {', // 2
        '    "source": { "type": "PlatformImage" },', // 3
        '    "customize": [', // 4
        '      {', // 5
        '        "inline": [', // 6
        '          "echo one",', // 7
        '          "echo two"', // 8
        '        ]', // 9
        '      }', // 10
        '    ],', // 11
        '    "odd key": /* c */', // 12
        '      true', // 13
        '  }', // 14
        '}', // 15
      ].join('\n');

      const doc = parseJsonDocument(text, LABEL);

      expect(Object.fromEntries(doc.lines)).toEqual({
        '(root)': 1,
        properties: 2,
        'properties.source': 3,
        'properties.source.type': 3,
        'properties.customize': 4,
        'properties.customize[0]': 5,
        'properties.customize[0].inline': 6,
        'properties.customize[0].inline[0]': 7,
        'properties.customize[0].inline[1]': 8,
        'properties["odd key"]': 13,
      });
    });

    it('counts CRLF line endings once', () => {
      const doc = parseJsonDocument('{\r\n  "a": 1,\r\n  "b": 2\r\n}', LABEL);

      expect(doc.lines.get('b')).toBe(3);
    });
  });

  it('decodes string escapes, including \\u escapes and surrogate pairs', () => {
    const text = String.raw`{ "s": "tab\t quote\" slash\/ back\\ nl\n \u00e9 \ud83d\ude00" }`;

    const doc = parseJsonDocument(text, LABEL);

    expect(doc.value).toEqual({ s: 'tab\t quote" slash/ back\\ nl\n é 😀' });
  });

  it.each([
    ['0', 0],
    ['-12', -12],
    ['3.5', 3.5],
    ['1e3', 1000],
    ['-2.5E-1', -0.25],
  ])('reads the number %s', (literal, value) => {
    const doc = parseJsonDocument(`{ "n": ${literal} }`, LABEL);

    expect(doc.value).toEqual({ n: value });
  });

  it.each(['01', '+1', '.5', '1.', 'NaN', 'Infinity'])('rejects the non-JSON number %s', (literal) => {
    const error = parseError(`{ "n": ${literal} }`);

    expect(error.code).toBe('templateUnreadable');
  });
});

describe('decodeTemplateBytes', () => {
  const TEXT = '{\n  "name": "café ☕"\n}';

  it.each([
    ['UTF-8 without a BOM', utf8(TEXT)],
    ['UTF-8 with a BOM', [0xef, 0xbb, 0xbf, ...utf8(TEXT)]],
    ['UTF-16LE with a BOM', [0xff, 0xfe, ...utf16le(TEXT)]],
    ['UTF-16BE with a BOM', [0xfe, 0xff, ...utf16be(TEXT)]],
  ])('decodes %s to the same text, without the BOM', (_what, bytes) => {
    const text = decodeTemplateBytes(new Uint8Array(bytes), LABEL);

    expect(text).toBe(TEXT);
    expect(parseJsonDocument(text, LABEL).value).toEqual({ name: 'café ☕' });
  });

  it('parses text that still starts with a BOM character (a BOM left by a decoder)', () => {
    const doc = parseJsonDocument('\ufeff{ "a": 1 }', LABEL);

    expect(doc.value).toEqual({ a: 1 });
  });

  it(`accepts a file of exactly ${MAX_TEMPLATE_BYTES} bytes`, () => {
    const bytes = new Uint8Array(MAX_TEMPLATE_BYTES).fill(0x20);
    bytes.set(utf8('{}'), 0);

    const text = decodeTemplateBytes(bytes, LABEL);

    expect(text.length).toBe(MAX_TEMPLATE_BYTES);
  });

  it('rejects a file one byte over the limit, naming the limit', () => {
    const bytes = new Uint8Array(MAX_TEMPLATE_BYTES + 1).fill(0x20);

    const error = thrown(() => decodeTemplateBytes(bytes, LABEL));

    expect(error.code).toBe('templateUnreadable');
    expect(error.message).toContain('is too large');
    expect(error.message).toContain(`limited to ${MAX_TEMPLATE_BYTES} bytes`);
  });

  describe('invalid UTF-8', () => {
    it('reports the offending byte with its line, column and offset', () => {
      const bytes = [...utf8('{\n  "a": "'), 0xff, ...utf8('"\n}')];

      const error = decodeError(bytes);

      expect(error.code).toBe('templateUnreadable');
      expect(error.message).toContain(`${LABEL}:2:9: not valid UTF-8 (byte 0xff at offset 10)`);
    });

    it('reports an ISO-8859-1 "é" (a lone 0xe9) at the 0xe9, not at the byte after it', () => {
      const bytes = [...utf8('{\n\n  "name": "caf'), 0xe9, ...utf8('"\n}')];

      const error = decodeError(bytes);

      expect(error.message).toContain(`${LABEL}:3:15: not valid UTF-8 (byte 0xe9 at offset 17)`);
    });

    it('reports a stray continuation byte itself, not the byte before it', () => {
      const bytes = [...utf8('{\n  "a": "ab'), 0x80, ...utf8('"\n}')];

      const error = decodeError(bytes);

      expect(error.message).toContain(`${LABEL}:2:11: not valid UTF-8 (byte 0x80 at offset 12)`);
    });

    it.each(['x"\n}', 'x"}', 'xyz"}', ''])(
      'reports a truncated multi-byte sequence at its first byte (followed by %j)',
      (rest) => {
        // 0xe2 0x82 starts a three-byte sequence (e.g. €) that ends too early.
        const bytes = [...utf8('{\n  "a": "ab'), 0xe2, 0x82, ...utf8(rest)];

        const error = decodeError(bytes);

        expect(error.message).toContain(`${LABEL}:2:11: not valid UTF-8 (byte 0xe2 at offset 12)`);
      },
    );

    it.each([
      ['an overlong encoding of "/"', [0xc0, 0xaf]],
      ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
      ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ])('rejects %s at its first byte', (_what, sequence) => {
      const bytes = [...utf8('{"a": "'), ...sequence, ...utf8('"}')];

      const error = decodeError(bytes);

      expect(error.message).toContain(`byte 0x${sequence[0]!.toString(16)} at offset 7`);
    });

    it('counts the offset from the start of the file when the file has a UTF-8 BOM', () => {
      const bytes = [0xef, 0xbb, 0xbf, ...utf8('{\n  "a": "'), 0xff, ...utf8('"\n}')];

      const error = decodeError(bytes);

      expect(error.message).toContain(`${LABEL}:2:9: not valid UTF-8 (byte 0xff at offset 13)`);
    });
  });
});
