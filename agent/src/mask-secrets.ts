/**
 * Replaces known secret values (securestring parameters for now) in text meant for people. The logs
 * work extends this to every encoding; here the raw and JSON-escaped forms are covered.
 */
export const SECRET_MASK = '***';

export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret that contains another is masked whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret === '') continue;
    out = out.replaceAll(secret, SECRET_MASK).replaceAll(JSON.stringify(secret).slice(1, -1), SECRET_MASK);
  }
  return out;
}
