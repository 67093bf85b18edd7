/**
 * The masker: every encoding a build prints a secret in (each computed here the way the tool that
 * prints it does, not with the masker's own code), secrets too short to mask, and text that arrives in
 * pieces. Property tests draw secrets with quotes, backslashes, markup, non-ASCII and line breaks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MIN_SECRET_LENGTH,
  SECRET_MASK,
  SecretMasker,
  StreamMasker,
  maskSecrets,
  secretForms,
} from '../../agent/src/mask-secrets.js';

const SECRET = `p@ss w0rd/"x"\\y+z&<it's>é`;

const json = (text: string): string => JSON.stringify(text).slice(1, -1);
/** Python's json.dumps: non-ASCII as \uXXXX. */
const pythonJson = (text: string): string =>
  json(text).replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
const soapXml = (text: string): string =>
  text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
const clixml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const pythonHtml = (text: string): string => clixml(text).replace(/"/g, '&quot;').replace(/'/g, '&#x27;');
const goXml = (text: string): string => clixml(text).replace(/"/g, '&#34;').replace(/'/g, '&#39;');
/** RFC 3986: every byte but letters, digits and -._~ as %XX (Python's quote(safe=''), curl). */
const strictPercent = (text: string): string =>
  [...Buffer.from(text)]
    .map((byte) =>
      /[A-Za-z0-9\-._~]/.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
const bashXtrace = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
const packerEnv = (text: string): string => `'${text.replace(/'/g, `'"'"'`)}'`;
const powerShellLiteral = (text: string): string => `'${text.replace(/'/g, "''")}'`;
const base64 = (text: string, encoding: BufferEncoding = 'utf8'): string =>
  Buffer.from(text, encoding).toString('base64');

/** How each tool prints `secret` (inside some surrounding text). */
const ENCODINGS: [string, (secret: string) => string][] = [
  ['raw', (s) => `token=${s};`],
  ['JSON-escaped', (s) => JSON.stringify({ token: s })],
  ['JSON-escaped twice', (s) => JSON.stringify({ line: JSON.stringify({ token: s }) })],
  ['JSON-escaped three times', (s) => JSON.stringify(JSON.stringify(JSON.stringify({ token: s })))],
  ['JSON-escaped by Python (ASCII only)', (s) => `{"token": "${pythonJson(s)}"}`],
  ['JSON-escaped twice by Python', (s) => `"${pythonJson(pythonJson(s))}"`],
  ['percent-encoded', (s) => `https://h/?t=${encodeURIComponent(s)}`],
  ['percent-encoded strictly, as by Python', (s) => `https://h/?t=${strictPercent(s)}`],
  ['form-encoded', (s) => new URLSearchParams({ t: s }).toString()],
  ['XML in a SOAP body', (s) => `<rsp:Command>${soapXml(s)}</rsp:Command>`],
  [
    'XML in a CLIXML error record',
    (s) => `#< CLIXML <Objs><S S="Error">${clixml(s)}_x000D__x000A_</S></Objs>`,
  ],
  ['HTML-escaped by Python', (s) => `<td>${pythonHtml(s)}</td>`],
  ['XML-escaped by Go', (s) => `<v>${goXml(s)}</v>`],
  ['shell-quoted by bash -x', (s) => `+ curl -u ${bashXtrace(s)} https://x`],
  ['shell-quoted like Packer environment variables', (s) => `TOKEN=${packerEnv(s)} /tmp/script.sh`],
  [
    'a PowerShell single-quoted literal',
    (s) => `At line:1 char:1\n+ Connect -Password ${powerShellLiteral(s)}`,
  ],
  ['base64', (s) => base64(s)],
  ['base64url', (s) => Buffer.from(s).toString('base64url')],
  ['base64 inside a Basic auth header', (s) => `Authorization: Basic ${base64(`user:${s}`)}`],
  ['base64 at offset 1', (s) => base64(`a${s}tail`)],
  ['base64 at offset 2', (s) => base64(`ab${s}`)],
  ['base64 at offset 3', (s) => base64(`abc${s}`)],
  ['UTF-16LE base64', (s) => base64(s, 'utf16le')],
  [
    'UTF-16LE base64 inside -EncodedCommand',
    (s) => `powershell.exe -EncodedCommand ${base64(`$p = '${s}'; Connect $p`, 'utf16le')}`,
  ],
  ['UTF-16LE base64 at an odd character offset', (s) => base64(`x${s}`, 'utf16le')],
];

/**
 * What of `secret` may not survive in a masked `text`: the forms the encodings above produce, with up
 * to two base64 characters of context at each end tolerated (they mix with the neighbouring bytes).
 */
function leaks(masked: string, secret: string): string[] {
  const pieces = [
    secret,
    json(secret),
    json(json(secret)),
    json(json(json(secret))),
    pythonJson(secret),
    pythonJson(pythonJson(secret)),
    encodeURIComponent(secret),
    strictPercent(secret),
    soapXml(secret),
    clixml(secret),
    pythonHtml(secret),
    goXml(secret),
    bashXtrace(secret).slice(1, -1),
    packerEnv(secret).slice(1, -1),
    powerShellLiteral(secret).slice(1, -1),
  ];
  for (const encoding of ['utf8', 'utf16le'] as const) {
    const bytes = Buffer.from(secret, encoding);
    for (let offset = 0; offset < 3; offset++) {
      const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
      const core = encoded.slice(
        Math.ceil((offset * 8) / 6) + 1,
        Math.floor(((offset + bytes.length) * 8) / 6) - 1,
      );
      if (core.length >= 8) pieces.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
    }
  }
  return pieces.filter((piece) => piece.length >= MIN_SECRET_LENGTH && masked.includes(piece));
}

describe('SecretMasker', () => {
  const masker = new SecretMasker([SECRET, 'other-secret']);

  it.each(ENCODINGS)('masks the %s form', (_form, encode) => {
    const text = encode(SECRET);

    const masked = masker.mask(text);

    expect(masked).toContain(SECRET_MASK);
    expect(leaks(masked, SECRET)).toEqual([]);
  });

  it.each(ENCODINGS)('masks the %s form of any secret (property)', (_form, encode) => {
    fc.assert(
      fc.property(secretArbitrary(), (secret) => {
        const masked = new SecretMasker([secret]).mask(encode(secret));
        expect(leaks(masked, secret)).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  it('masks a secret shortened with an ellipsis, and leaves other text alone', () => {
    expect(masker.mask(`value "${SECRET.slice(0, 10)}…" is wrong`)).toBe('value "***…" is wrong');
    expect(masker.mask('nothing to hide here')).toBe('nothing to hide here');
  });

  it('masks the longest secret whole when one contains another', () => {
    expect(maskSecrets('abcdefgh-longer', ['abcdefgh', 'abcdefgh-longer'])).toBe('***');
  });

  it('masks each line of a multi-line secret, and the secret with other line endings', () => {
    const key =
      '-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END KEY-----';
    const multiLine = new SecretMasker([key]);

    expect(multiLine.mask('line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC')).toBe('line: ***');
    expect(multiLine.mask(`[${key.replace(/\n/g, '\r\n')}]`)).toBe('[***]');
  });

  it('never masks a secret shorter than the minimum, in any form', () => {
    const tiny = new SecretMasker(['a', 'ab', 'abc', '"', '']);

    expect(tiny.mask('a cab "abc" YWJj')).toBe('a cab "abc" YWJj');
    expect(secretForms('abc')).toEqual([]);
  });

  it('never changes text for secrets shorter than the minimum (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: MIN_SECRET_LENGTH - 1 }), { maxLength: 5 }),
        fc.string({ maxLength: 200 }),
        (secrets, text) => {
          expect(new SecretMasker(secrets).mask(text)).toBe(text);
        },
      ),
    );
  });

  it('masks from the minimum length on', () => {
    expect(maskSecrets('pin 1234 and 123', ['1234', '123'])).toBe('pin *** and 123');
  });
});

describe('StreamMasker', () => {
  const secrets = [
    SECRET,
    'AccountKey=Zm9vYmFyYmF6cXV4',
    '-----BEGIN-----\nline-of-key-material\n-----END-----',
  ];
  const masker = new SecretMasker(secrets);

  it('masks a secret split across two pieces', () => {
    const stream = new StreamMasker(() => masker);
    const text = `key: ${SECRET} done\n`;
    const cut = 'key: '.length + 5;

    const out = stream.write(text.slice(0, cut)) + stream.write(text.slice(cut)) + stream.end();

    expect(out).toBe('key: *** done\n');
  });

  it('passes text through at once when its end cannot start a secret', () => {
    const stream = new StreamMasker(() => masker);

    expect(stream.write('plain line\n')).toBe('plain line\n');
    expect(stream.end()).toBe('');
  });

  it('releases a held-back start that turned out not to be a secret', () => {
    const stream = new StreamMasker(() => masker);

    expect(stream.write('ends with p@ss')).toBe('ends with ');
    expect(stream.end()).toBe('p@ss');
  });

  it('masks as if the text had come whole, wherever it is cut (property)', () => {
    const fragment = fc.oneof(
      fc.constantFrom(...secrets.flatMap(secretForms)),
      fc.constantFrom(...secrets.map((s) => `${s.slice(0, 9)}…`)),
      fc.string({ maxLength: 12 }),
      fc.constantFrom('\n', '\r\n', ' ', '"', '\\', '…'),
    );
    fc.assert(
      fc.property(
        fc.array(fragment, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (parts, cuts) => {
          const text = parts.join('');
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const stream = new StreamMasker(() => masker);
          let out = '';
          let from = 0;
          for (const point of [...points, text.length]) {
            out += stream.write(text.slice(from, point));
            from = point;
          }
          out += stream.end();
          expect(out).toBe(masker.mask(text));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('holds back only the tail that may begin a secret', () => {
    const stream = new StreamMasker(() => masker);

    const out = stream.write(`${'x'.repeat(10_000)}${SECRET.slice(0, -1)}`);

    expect(out).toBe('x'.repeat(10_000));
    expect(stream.end()).toBe(SECRET.slice(0, -1));
  });
});

/** Secrets of maskable length with the characters encodings treat specially. */
function secretArbitrary(): fc.Arbitrary<string> {
  const special = fc.constantFrom(
    '"',
    "'",
    '\\',
    '&',
    '<',
    '>',
    '/',
    '+',
    '=',
    '%',
    ' ',
    'é',
    '€',
    '😀',
    '\t',
    '$',
  );
  const plain = fc.constantFrom(...'abcXYZ019-_.'.split(''));
  return fc
    .array(fc.oneof(plain, special), { minLength: MIN_SECRET_LENGTH + 4, maxLength: 24 })
    .map((chars) => chars.join(''));
}
