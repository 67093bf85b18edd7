/**
 * Replaces known secret values (securestring parameters for now) in text meant for people. The logs
 * work extends this to every encoding; here the raw and JSON-escaped forms are covered.
 */
export const SECRET_MASK = '***';
const MIN_PREFIX = 8;

export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret that contains another is masked whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret === '') continue;
    out = out.replaceAll(secret, SECRET_MASK).replaceAll(JSON.stringify(secret).slice(1, -1), SECRET_MASK);
    // Messages shorten long values with "…": a shortened secret is still a secret.
    for (let length = secret.length - 1; length >= MIN_PREFIX; length--) {
      out = out.replaceAll(`${secret.slice(0, length)}…`, `${SECRET_MASK}…`);
    }
  }
  return out;
}
