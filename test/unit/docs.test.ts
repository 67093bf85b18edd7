/** The reference documents stay complete: every error code and every setting of the settings table is documented. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTING_ROWS, envDisplay } from '../../agent/src/settings/settings-table.js';
import { ERROR_CODES } from '../../agent/src/errors.js';
import { PROXY_ENVIRONMENT } from '../../proxy/src/config.js';

describe('documentation', () => {
  it('docs/errors.md has a row for every error code', () => {
    const text = readFileSync('docs/errors.md', 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(text, code).toContain(`| \`${code}\` |`);
  });

  it('the README configuration table lists every environment variable', () => {
    const text = readFileSync('README.md', 'utf8');
    const names = SETTING_ROWS.flatMap((row) => (row.env ? [row.env] : []));
    for (const name of [...names, ...PROXY_ENVIRONMENT])
      expect(text, name).toMatch(new RegExp(`\`${name}(=[^\`]*)?\``));
  });

  it('the README row of each setting names its flag, its variable and whether it is a secret', () => {
    const lines = readFileSync('README.md', 'utf8').split('\n');
    for (const row of SETTING_ROWS.filter((r) => r.env)) {
      const line = lines.find((l) => new RegExp(`^\\| [^|]+ \\| \`${envDisplay(row)}\``).test(l)) ?? '';
      const flagCell = line.split('|')[1]?.trim();
      if (row.flag) expect(flagCell, row.key).toMatch(new RegExp(`^\`--${row.flag}( [^\`]+)?\`$`));
      else expect(flagCell, row.key).not.toContain('--');
      expect(line.includes('(secret)'), row.key).toBe(row.secret);
    }
  });
});
