/**
 * The parts of `isobuild shell` that need no VM: its configuration from a run's target and build's settings,
 * the remote command line, exit statuses, and the byte-exact masking of what the VM sends back.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isIsobuildError } from '../../agent/src/errors.js';
import { posixExitStatus, windowsExitStatus } from '../../agent/src/shell/exit-status.js';
import { maskedOutput } from '../../agent/src/shell/masked-output.js';
import { posixCommandLine, powerShellCommandLine } from '../../agent/src/shell/remote-command.js';
import type { RunTarget } from '../../agent/src/run/run-status.js';
import { loadShellConfig } from '../../agent/src/settings/shell-config.js';

const DIRECT: RunTarget = {
  os: 'linux',
  host: '10.0.0.4',
  port: 2222,
  topology: 'direct',
  user: 'azureuser',
};
const PROXIED: RunTarget = { ...DIRECT, topology: 'proxy', proxyHost: '10.0.0.5' };

function problemsOf(action: () => unknown): { message: string; paths: string[] } {
  try {
    action();
  } catch (error) {
    if (!isIsobuildError(error)) throw error;
    return { message: error.message, paths: error.problems.map((p) => p.path) };
  }
  throw new Error('expected a usage error');
}

describe('loadShellConfig', () => {
  it("takes where the VM is from the run's target, not from build's address settings", () => {
    const config = loadShellConfig(
      { 'ready-timeout': '20s' },
      {
        ISOBUILD_HOST: '10.9.9.9',
        ISOBUILD_TOPOLOGY: 'proxy',
        ISOBUILD_SSH_PASSWORD: 'a-long-password',
        // Build-only settings a shell does not read, even when they would be bad for a build.
        ISOBUILD_KILL_GRACE: 'never',
        ISOBUILD_REWRITE_URI: 'nothing',
      },
      { runId: 'run-1', target: DIRECT },
      '/work',
    );

    expect(config).toMatchObject({ host: '10.0.0.4', port: 2222, user: 'azureuser', topology: 'direct' });
    expect(config.runId).toBe('run-1');
    expect(config.readyTimeoutMs).toBe(20_000);
    expect(config.sshPassword?.reveal()).toBe('a-long-password');
    expect(config.proxyHost).toBeUndefined();
  });

  it('goes through the recorded proxy, or the one --proxy-host names', () => {
    const recorded = loadShellConfig({}, {}, { runId: 'r', target: PROXIED });
    const replaced = loadShellConfig({ 'proxy-host': '10.0.0.6' }, {}, { runId: 'r', target: PROXIED });

    expect(recorded).toMatchObject({ topology: 'proxy', proxyHost: '10.0.0.5' });
    expect(replaced.proxyHost).toBe('10.0.0.6');
  });

  it('refuses --proxy-host for a run that went directly', () => {
    expect(
      problemsOf(() => loadShellConfig({ 'proxy-host': '10.0.0.6' }, {}, { runId: 'r', target: DIRECT })),
    ).toMatchObject({ message: expect.stringContaining('reached its build VM directly') });
  });

  it("reports every bad setting with build's own checks, pointing to shell's help", () => {
    const found = problemsOf(() =>
      loadShellConfig(
        { 'ready-timeout': 'soon', 'winrm-auth': 'kerberos' },
        { ISOBUILD_SSH_PASSWORD: 'abc' },
        { runId: 'r', target: DIRECT },
      ),
    );

    expect(found.message).toBe('the shell configuration has 3 problem(s); see isobuild shell --help.');
    expect(found.paths).toEqual(['ISOBUILD_SSH_PASSWORD', '--ready-timeout', '--winrm-auth']);
  });
});

describe('the remote command line', () => {
  it('keeps each argument one word for sh', () => {
    expect(posixCommandLine(['sh', '-c', "echo 'a b'; exit 7"])).toBe(`sh -c 'echo '\\''a b'\\''; exit 7'`);
    expect(posixCommandLine(['cat', '/var/log/cloud-init.log', '', '$HOME'])).toBe(
      "cat /var/log/cloud-init.log '' '$HOME'",
    );
  });

  it('joins the words into one PowerShell command', () => {
    expect(powerShellCommandLine(['Get-Service', '-Name', 'WinRM'])).toBe('Get-Service -Name WinRM');
  });
});

describe('exit statuses', () => {
  it('passes a POSIX status on, and a signal as 128 + its number', () => {
    expect(posixExitStatus(7)).toBe(7);
    expect(posixExitStatus(null, 'SIGTERM')).toBe(143);
    expect(posixExitStatus(null, 'KILL')).toBe(137);
    expect(posixExitStatus(null, 'SIGNOSUCH')).toBe(255);
    expect(posixExitStatus(null)).toBeUndefined();
  });

  it('keeps a Windows code in 0–255 without turning a failure into success', () => {
    expect(windowsExitStatus(9)).toBe(9);
    expect(windowsExitStatus(3010)).toBe(3010 & 0xff);
    expect(windowsExitStatus(256)).toBe(1);
    expect(windowsExitStatus(-1)).toBe(255);
  });
});

describe('maskedOutput', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const collect = (secrets: string[]) => {
    const written: Buffer[] = [];
    const output = maskedOutput((bytes) => written.push(bytes), secrets);
    return { output, text: () => Buffer.concat(written).toString('latin1') };
  };

  it('masks a secret split across pieces, and leaves every other byte as it was', () => {
    const { output, text } = collect(['s3cret-value']);

    output.write(Buffer.from([0xff, 0x00, 0xe2]));
    output.write(Buffer.from('x s3cr'));
    output.write(Buffer.from('et-value y'));
    output.flush();

    expect(text()).toBe('\xff\x00\xe2x *** y');
  });

  it('masks a secret with non-ASCII characters in its UTF-8 bytes', () => {
    const written: Buffer[] = [];
    const output = maskedOutput((bytes) => written.push(bytes), ['pässwörd-1']);

    output.write(Buffer.from('[pässwörd-1]'));
    output.flush();

    expect(Buffer.concat(written).toString('utf8')).toBe('[***]');
  });

  it('writes held-back bytes once the output has been quiet for a moment', () => {
    vi.useFakeTimers();
    const { output, text } = collect(['s3cret-value']);

    output.write(Buffer.from('typed s3'));
    const held = text();
    vi.advanceTimersByTime(150);

    expect(held).toBe('typed ');
    expect(text()).toBe('typed s3');
  });
});
