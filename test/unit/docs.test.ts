/** The reference documents stay complete: every error code and every environment variable is documented. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUILD_ENVIRONMENT } from '../../agent/src/settings/build-config.js';
import { ERROR_CODES } from '../../agent/src/errors.js';
import { PROXY_ENVIRONMENT } from '../../proxy/src/config.js';

describe('documentation', () => {
  it('docs/errors.md has a row for every error code', () => {
    const text = readFileSync('docs/errors.md', 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(text, code).toContain(`| \`${code}\` |`);
  });

  it('the README configuration table lists every environment variable', () => {
    const text = readFileSync('README.md', 'utf8');
    for (const name of [...BUILD_ENVIRONMENT, ...PROXY_ENVIRONMENT])
      expect(text, name).toMatch(new RegExp(`\`${name}(=[^\`]*)?\``));
  });
});
