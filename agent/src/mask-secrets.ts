/**
 * Replaces known secret values in text meant for people or storage, in every form a build is likely to
 * print them: raw; JSON-escaped (also inside JSON inside JSON, and ASCII-only as Python writes it);
 * URL-encoded (percent, strict RFC 3986 and form encoding); XML/HTML-escaped (WinRM SOAP bodies, PowerShell's CLIXML);
 * quoted for a POSIX shell (`'\''`, as `set -x` prints it, and `'"'"'`) and for PowerShell (`''`); and
 * base64 of the UTF-8 and of the UTF-16LE bytes (PowerShell's -EncodedCommand), standard and URL-safe,
 * at each of the three byte alignments, so a secret inside a longer encoded value such as a Basic auth
 * header is caught too. A secret shortened with "…" by a message is masked as well, and so is each line
 * of a multi-line secret, since logs are masked line by line.
 * Build a SecretMasker once per set of secrets: it compiles all forms into one pattern (log lines are
 * masked at ingest speed). StreamMasker masks text that arrives in pieces.
 */
export const SECRET_MASK = '***';
/**
 * Secrets shorter than this are never masked: hiding every "ab" in a log helps nobody and shreds the
 * text. Inputs that short are refused or warned about where they are read (see docs/decisions.md).
 */
export const MIN_SECRET_LENGTH = 4;
/** Pieces of a secret (a shortened prefix, one line of several) are masked from this many characters on. */
const MIN_PIECE = 8;
/** A JSON string inside a JSON string inside …: this many levels of escaping are recognised. */
const MAX_JSON_DEPTH = 3;

/** True when a secret is long enough to be masked. */
export function isMaskable(secret: string): boolean {
  return secret.length >= MIN_SECRET_LENGTH;
}

export class SecretMasker {
  private readonly pattern: RegExp | undefined;
  private readonly secrets: readonly string[];
  /** Every form, longest first. */
  private readonly forms: readonly string[];

  constructor(secrets: readonly string[]) {
    this.secrets = [...new Set(secrets.filter(isMaskable))].sort((a, b) => b.length - a.length);
    const forms = new Set<string>();
    for (const secret of this.secrets) for (const form of secretForms(secret)) forms.add(form);
    // Longest first, so a secret that contains another is masked whole.
    this.forms = [...forms].sort((a, b) => b.length - a.length);
    this.pattern =
      this.forms.length > 0 ? new RegExp(this.forms.map(escapeRegExp).join('|'), 'g') : undefined;
  }

  mask(text: string): string {
    let out = this.pattern ? text.replace(this.pattern, SECRET_MASK) : text;
    if (out.includes('…')) out = this.maskShortened(out);
    return out;
  }

  /**
   * Masks the part of `text` that no later text can change, and returns the rest, which may be the
   * beginning of a secret that continues in the next piece: the caller puts it in front of that piece.
   */
  maskPiece(text: string): { readonly masked: string; readonly rest: string } {
    let cut = this.startOfPossibleForm(text);
    // A match that begins before the cut ends where it ends: never split a match.
    if (this.pattern) {
      for (const match of text.matchAll(this.pattern)) {
        if (match.index >= cut) break;
        cut = Math.max(cut, match.index + match[0].length);
      }
    }
    return { masked: this.mask(text.slice(0, cut)), rest: text.slice(cut) };
  }

  /** Where the earliest tail of `text` begins that is the start of a form (text.length if none). */
  private startOfPossibleForm(text: string): number {
    const longest = this.forms[0]?.length ?? 0;
    for (let start = Math.max(0, text.length - longest + 1); start < text.length; start++) {
      const tail = text.slice(start);
      if (this.forms.some((form) => form.length > tail.length && form.startsWith(tail))) return start;
    }
    return text.length;
  }

  private maskShortened(text: string): string {
    let out = text;
    for (const secret of this.secrets) {
      for (let length = secret.length - 1; length >= MIN_PIECE; length--) {
        out = out.replaceAll(`${secret.slice(0, length)}…`, `${SECRET_MASK}…`);
      }
    }
    return out;
  }
}

/**
 * Masks a text that arrives in pieces (a log read back by ranges): a secret split across two pieces is
 * masked as if the text had come whole. Holds back at most one form's length; end() releases it.
 */
export class StreamMasker {
  private held = '';

  /** `masker` is asked on every piece, so secrets registered meanwhile count from then on. */
  constructor(private readonly masker: () => SecretMasker) {}

  write(piece: string): string {
    const { masked, rest } = this.masker().maskPiece(this.held + piece);
    this.held = rest;
    return masked;
  }

  /** The held-back text, masked: call it when the stream ends or before writing anything else. */
  end(): string {
    const rest = this.held;
    this.held = '';
    return rest === '' ? '' : this.masker().mask(rest);
  }
}

/** One-off masking; prefer a SecretMasker where the same secrets mask many texts. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  return secrets.length === 0 ? text : new SecretMasker(secrets).mask(text);
}

/** Every printed form of a secret that masking covers; none for a secret too short to mask. */
export function secretForms(secret: string): string[] {
  if (!isMaskable(secret)) return [];
  const forms = [...escapedForms(secret), ...urlForms(secret)];
  forms.push(...base64Forms(Buffer.from(secret, 'utf8')), ...base64Forms(Buffer.from(secret, 'utf16le')));
  // Line endings change on the way (CRLF from Windows, LF from a template), and logs are masked line by
  // line, so a multi-line secret is also masked in each of its lines.
  if (/[\r\n]/.test(secret)) {
    const lf = secret.replace(/\r\n/g, '\n');
    forms.push(lf, lf.replace(/\n/g, '\r\n'));
    forms.push(...lf.split('\n').filter((line) => line.length >= MIN_PIECE));
  }
  return [...new Set(forms)].filter(isMaskable);
}

/** The secret as text inside strings of the formats a build prints: JSON (nested), XML, shell, PowerShell. */
function escapedForms(secret: string): string[] {
  const forms = [secret];
  let json = secret;
  let asciiOnly = secret;
  for (let depth = 1; depth <= MAX_JSON_DEPTH; depth++) {
    json = jsonEscape(json);
    asciiOnly = asciiJson(jsonEscape(asciiOnly));
    forms.push(json, asciiOnly);
  }
  const xmlText = secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  forms.push(
    xmlText, // text nodes, as .NET and CLIXML write them
    xmlText.replace(/"/g, '&quot;').replace(/'/g, '&apos;'), // attributes; isobuild's SOAP bodies
    xmlText.replace(/"/g, '&quot;').replace(/'/g, '&#x27;'), // Python's html.escape
    xmlText.replace(/"/g, '&#34;').replace(/'/g, '&#39;'), // Go's html/template and encoding/xml
  );
  forms.push(
    secret.replace(/'/g, `'\\''`), // sh: 'it'\''s', as bash -x prints it
    secret.replace(/'/g, `'"'"'`), // sh: 'it'"'"'s', as Packer quotes environment variables
    secret.replace(/'/g, "''"), // PowerShell: 'it''s'
  );
  return forms;
}

function jsonEscape(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** JSON as Python's json.dumps writes it by default: every non-ASCII character as \uXXXX. */
function asciiJson(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function urlForms(secret: string): string[] {
  const percent = encodeURIComponent(secret);
  return [
    percent,
    // RFC 3986 strictly, as Python's quote(safe='') and curl write it: !'()* are escaped too.
    percent.replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`),
    new URLSearchParams({ s: secret }).toString().slice(2),
  ];
}

/**
 * Base64 of `bytes`: the whole value alone (with padding), and the characters that depend on these bytes
 * alone at each of the three alignments they can have inside a longer encoded value.
 */
function base64Forms(bytes: Buffer): string[] {
  const forms = [bytes.toString('base64'), bytes.toString('base64url')];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    // Skip the characters mixed with the bytes before the secret, and stop before the last one, which
    // may mix with the bytes after it.
    const start = Math.ceil((offset * 8) / 6);
    const end = Math.floor(((offset + bytes.length) * 8) / 6);
    const core = encoded.slice(start, end);
    forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return forms;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
