import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { configSecrets, loadBuildConfig, parseDuration } from '../../agent/src/settings/build-config.js';
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

describe('log store settings', () => {
  const problemsOf = (flags: Record<string, string>, env: Record<string, string> = {}) => {
    try {
      loadBuildConfig(flags, { ISOBUILD_HOST: '10.0.0.4', ...env });
      return [];
    } catch (error) {
      return isIsobuildError(error) ? error.problems.map((p) => `${p.path}: ${p.message}`) : [String(error)];
    }
  };

  it('defaults to the embedded store, the packerlogs container and a 1 GiB spool', () => {
    const config = loadBuildConfig({}, { ISOBUILD_HOST: '10.0.0.4' });
    expect(config.store).toBeUndefined();
    expect(config).toMatchObject({
      storeContainer: 'packerlogs',
      localLogsOnly: false,
      logSpoolBytes: 1024 ** 3,
    });
  });

  it('takes a connection string, a SAS URL or an account URL, and keeps credentials as secrets', () => {
    const sas =
      'https://acct.blob.core.windows.net/packerlogs?sv=2024-01-01&sp=racw&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D';
    const config = loadBuildConfig(
      { 'storage-sas-url': sas, 'log-spool-limit': '64MiB' },
      { ISOBUILD_HOST: 'h' },
    );
    expect(config.store?.kind).toBe('sas-url');
    expect(config.logSpoolBytes).toBe(64 * 1024 ** 2);
    expect(inspect(config)).not.toContain('c2VjcmV0');
    expect(JSON.stringify(config)).not.toContain('c2VjcmV0');
    // The signature alone is masked too, in its raw and URL-decoded forms.
    const secrets = configSecrets(config);
    expect(secrets).toContain(sas);
    expect(secrets).toContain('c2VjcmV0LXNpZ25hdHVyZQ==');

    const fromEnv = loadBuildConfig(
      {},
      {
        ISOBUILD_HOST: 'h',
        ISOBUILD_STORAGE_CONNECTION_STRING:
          'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5LWtleS1rZXk=;EndpointSuffix=core.windows.net',
      },
    );
    expect(fromEnv.store?.kind).toBe('connection-string');
    expect(configSecrets(fromEnv)).toContain('a2V5LWtleS1rZXk=');

    const account = loadBuildConfig(
      { 'storage-account-url': 'https://acct.blob.core.windows.net' },
      { ISOBUILD_HOST: 'h' },
    );
    expect(account.store).toEqual({ kind: 'account-url', url: 'https://acct.blob.core.windows.net' });
  });

  it('names each bad store setting', () => {
    expect(
      problemsOf({
        'storage-sas-url': 'https://acct.blob.core.windows.net/packerlogs?sv=1',
        'storage-container': 'Packer_Logs',
        'log-spool-limit': 'lots',
      }),
    ).toEqual([
      '--storage-sas-url: expected a SAS URL such as https://ACCOUNT.blob.core.windows.net/packerlogs?sv=…&sig=… (with its signature).',
      '--storage-container: "Packer_Logs" is not a blob container name: 3–63 lowercase letters, digits and single hyphens.',
      '--log-spool-limit: "lots" is not a size; write it like 512MiB or 2GiB.',
    ]);
    expect(problemsOf({ 'storage-connection-string': 'not one' })[0]).toContain(
      'a part that is not KEY=VALUE',
    );
    expect(
      problemsOf(
        { 'storage-account-url': 'https://a.blob.core.windows.net' },
        { ISOBUILD_STORAGE_SAS_URL: 'https://x?sig=1' },
      )[0],
    ).toContain('configure the log store one way only');
    expect(problemsOf({ 'storage-account-url': 'https://a.blob.core.windows.net/?sig=abc' })[0]).toContain(
      '<query hidden>',
    );
  });

  // Half-valid strings used to pass with a warning and a build on local logs only.
  it.each([
    ['AccountName=acct;AccountKey=not base64!', 'AccountKey is not base64'],
    ['AccountName=acct;AccountKey=abc', 'AccountKey is not base64'],
    ['BlobEndpoint=not a url;SharedAccessSignature=sv=1&sig=x', 'BlobEndpoint is not an http(s) URL'],
    ['BlobEndpoint=ftp://h/x;SharedAccessSignature=sv=1&sig=x', 'BlobEndpoint is not an http(s) URL'],
    ['BlobEndpoint=https://h;SharedAccessSignature=sv=1', 'SharedAccessSignature has no signature'],
    ['AccountKey=a2V5LWtleS1rZXk=', 'AccountKey needs an AccountName'],
    ['AccountName=acct', 'it has no credential'],
    ['AcountName=acct;AccountKey=a2V5LWtleS1rZXk=', '"AcountName" is not a connection string key'],
    ['DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey=a2V5LWtleS1rZXk=', 'must be https or http'],
  ])('refuses the connection string %s, naming what is wrong and never the key', (text, message) => {
    const problems = problemsOf({ 'storage-connection-string': text });

    expect(problems.join('\n')).toContain(message);
    expect(problems.every((p) => p.startsWith('--storage-connection-string: '))).toBe(true);
    expect(problems.join('\n')).not.toContain('a2V5LWtleS1rZXk=');
  });

  it('never repeats a part that may be a pasted key', () => {
    const problems = problemsOf({ 'storage-connection-string': 'AccountName=a;c2VjcmV0LWtleS1tYXRlcmlhbA=' });

    expect(problems).toEqual([
      '--storage-connection-string: part 2 is not a connection string key (AccountName, AccountKey, BlobEndpoint, …).',
    ]);
  });

  it.each([
    'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5LWtleS1rZXk=;EndpointSuffix=core.windows.net',
    'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=2024&sig=abc%3D',
    'UseDevelopmentStorage=true',
    'accountname=acct;accountkey=a2V5LWtleS1rZXk=;',
  ])('accepts the working connection string %s', (text) => {
    expect(problemsOf({ 'storage-connection-string': text })).toEqual([]);
  });

  it('refuses durations beyond 7 days, which a timer cannot hold or no build needs', () => {
    expect(problemsOf({ 'ready-timeout': '99999999999999h' })).toEqual([
      '--ready-timeout: "99999999999999h" is longer than the maximum of 7 days (168h); choose a shorter duration.',
    ]);
    expect(problemsOf({ 'ready-timeout': '168h' })).toEqual([]);
  });
});
