import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadBuildConfig, parseDuration } from '../../agent/src/build/build-config.js';
import { isIsobuildError } from '../../agent/src/errors.js';

describe('loadBuildConfig', () => {
  it('takes ISOBUILD_* variables, and flags over them', () => {
    const env = {
      ISOBUILD_HOST: '10.0.0.4',
      ISOBUILD_USER: 'azureuser',
      ISOBUILD_READY_TIMEOUT: '90s',
      ISOBUILD_RUN_ID: 'from-env',
    };

    const config = loadBuildConfig({ 'run-id': 'from-flag', port: '2222' }, env, '/work');

    expect(config).toMatchObject({
      host: '10.0.0.4',
      user: 'azureuser',
      port: 2222,
      runId: 'from-flag',
      readyTimeoutMs: 90_000,
      workDir: '/work/.work/runs',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reports every problem at once, naming the flag or variable', () => {
    const error: unknown = (() => {
      try {
        loadBuildConfig({ port: '99999', 'kill-grace': 'soon' }, { ISOBUILD_RUN_ID: 'bad id!' });
      } catch (e) {
        return e;
      }
    })();

    expect(isIsobuildError(error) && error.code).toBe('usage');
    const paths = isIsobuildError(error) ? error.problems.map((p) => p.path) : [];
    expect(paths).toEqual(['--host', '--port', 'ISOBUILD_RUN_ID', '--kill-grace']);
  });

  it('keeps credentials out of every printed form', () => {
    const config = loadBuildConfig(
      {},
      {
        ISOBUILD_HOST: 'vm',
        ISOBUILD_SSH_PASSWORD: 'hunter2-secret',
        ISOBUILD_WINRM_PASSWORD: 'w1nrm-secret',
      },
    );

    const printed = [JSON.stringify(config), inspect(config, { depth: 5 }), String(config.sshPassword)].join(
      '\n',
    );

    expect(printed).not.toContain('hunter2');
    expect(printed).not.toContain('w1nrm');
    expect(config.sshPassword?.reveal()).toBe('hunter2-secret');
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '5', 'm', '5 m', '-1s', '1d'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
