/**
 * Credentials too short to mask are invalid input: the build configuration names the variable and why,
 * never the value. From the minimum length on they are accepted and masked.
 */
import { describe, expect, it } from 'vitest';
import { configSecrets, loadBuildConfig } from '../../agent/src/settings/build-config.js';
import { isIsobuildError, type Problem } from '../../agent/src/errors.js';
import { MIN_SECRET_LENGTH, SecretMasker } from '../../agent/src/mask-secrets.js';

function problemsOf(env: Record<string, string>): Problem[] {
  try {
    loadBuildConfig({ host: '10.0.0.4' }, env);
  } catch (error) {
    if (isIsobuildError(error) && error.code === 'usage') return [...error.problems];
    throw error;
  }
  return [];
}

describe('credentials too short to mask', () => {
  it.each(['ISOBUILD_SSH_PASSWORD', 'ISOBUILD_WINRM_PASSWORD', 'ISOBUILD_SSH_KEY'])(
    'refuses %s shorter than the minimum, naming it and not its value',
    (name) => {
      const problems = problemsOf({ [name]: 'q7z' });

      expect(problems).toHaveLength(1);
      expect(problems[0]?.path).toBe(name);
      expect(problems[0]?.message).toContain(`shorter than ${MIN_SECRET_LENGTH} characters`);
      expect(JSON.stringify(problems)).not.toContain('q7z');
    },
  );

  it('accepts and masks a password of the minimum length', () => {
    const config = loadBuildConfig({ host: '10.0.0.4' }, { ISOBUILD_SSH_PASSWORD: 'q7z!' });

    const masker = new SecretMasker(configSecrets(config));

    expect(masker.mask('login q7z! ok')).toBe('login *** ok');
  });
});
