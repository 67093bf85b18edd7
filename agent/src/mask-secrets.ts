/**
 * Replaces known secret values in text meant for people or storage, in every form a script or tool is
 * likely to print them: raw, JSON-escaped, URL-encoded (percent and form encoding), and base64 (standard
 * and URL-safe, at each of the three byte alignments, so a secret inside a longer encoded value such as
 * a Basic auth header is caught too). A secret shortened with "…" by a message is masked as well.
 * Build a SecretMasker once per set of secrets: it compiles all forms into one pattern (log lines are
 * masked at ingest speed).
 */
export const SECRET_MASK = '***';
/** Shortened forms ("abcdefgh…") are masked from this many characters on. */
const MIN_PREFIX = 8;
/** Encoded forms of very short secrets would mask ordinary text; these get their raw forms only. */
const MIN_ENCODED = 4;

export class SecretMasker {
  private readonly pattern: RegExp | undefined;
  private readonly secrets: readonly string[];

  constructor(secrets: readonly string[]) {
    this.secrets = [...new Set(secrets.filter((s) => s !== ''))].sort((a, b) => b.length - a.length);
    const forms = new Set<string>();
    for (const secret of this.secrets) for (const form of secretForms(secret)) forms.add(form);
    // Longest first, so a secret that contains another is masked whole.
    const ordered = [...forms].sort((a, b) => b.length - a.length);
    this.pattern = ordered.length > 0 ? new RegExp(ordered.map(escapeRegExp).join('|'), 'g') : undefined;
  }

  mask(text: string): string {
    let out = this.pattern ? text.replace(this.pattern, SECRET_MASK) : text;
    if (out.includes('…')) out = this.maskShortened(out);
    return out;
  }

  private maskShortened(text: string): string {
    let out = text;
    for (const secret of this.secrets) {
      for (let length = secret.length - 1; length >= MIN_PREFIX; length--) {
        out = out.replaceAll(`${secret.slice(0, length)}…`, `${SECRET_MASK}…`);
      }
    }
    return out;
  }
}

/** One-off masking; prefer a SecretMasker where the same secrets mask many texts. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  return secrets.length === 0 ? text : new SecretMasker(secrets).mask(text);
}

/** Every printed form of a secret that masking covers. */
export function secretForms(secret: string): string[] {
  const forms = [secret, JSON.stringify(secret).slice(1, -1)];
  if (secret.length < MIN_ENCODED) return [...new Set(forms)];
  forms.push(encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2));
  const bytes = Buffer.from(secret, 'utf8');
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    // Characters that depend on the secret's bytes alone: skip those mixed with the bytes before it,
    // and stop before the last character, which may mix with the bytes after it.
    const start = Math.ceil((offset * 8) / 6);
    const end = Math.floor(((offset + bytes.length) * 8) / 6);
    const core = encoded.slice(start, end);
    if (core.length >= MIN_ENCODED) forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  // The whole value encoded on its own, with padding.
  forms.push(bytes.toString('base64'), bytes.toString('base64url'));
  return [...new Set(forms)].filter((f) => f !== '');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
