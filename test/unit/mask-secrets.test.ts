import { describe, expect, it } from 'vitest';
import { SecretMasker, maskSecrets, secretForms } from '../../agent/src/mask-secrets.js';

const SECRET = 'p@ss w0rd/"x"\\y+z';

describe('SecretMasker', () => {
  const masker = new SecretMasker([SECRET, 'short']);

  it.each([
    ['raw', `token=${SECRET};`],
    ['JSON-escaped', JSON.stringify({ token: SECRET })],
    ['percent-encoded', `https://h/?t=${encodeURIComponent(SECRET)}`],
    ['form-encoded', new URLSearchParams({ t: SECRET }).toString()],
    ['base64', Buffer.from(SECRET).toString('base64')],
    ['base64url', Buffer.from(SECRET).toString('base64url')],
    [
      'base64 inside a Basic auth header',
      `Authorization: Basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`,
    ],
    ['base64 at offset 1', Buffer.from(`a${SECRET}tail`).toString('base64')],
    ['base64 at offset 3', Buffer.from(`abc${SECRET}`).toString('base64')],
  ])('masks the %s form', (_form, text) => {
    const masked = masker.mask(text);
    expect(masked).toContain('***');
    for (const form of secretForms(SECRET)) expect(masked).not.toContain(form);
  });

  it('masks a secret shortened with an ellipsis, and leaves other text alone', () => {
    expect(masker.mask(`value "${SECRET.slice(0, 10)}…" is wrong`)).toBe('value "***…" is wrong');
    expect(masker.mask('nothing to hide here')).toBe('nothing to hide here');
  });

  it('masks the longest secret whole when one contains another', () => {
    expect(maskSecrets('abcdefgh-longer', ['abcdefgh', 'abcdefgh-longer'])).toBe('***');
  });

  it('gives very short secrets their raw forms only', () => {
    expect(secretForms('abc')).toEqual(['abc']);
  });
});
