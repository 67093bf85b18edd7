/**
 * isobuild's WinRM client against the fake Windows VM over HTTPS, and Debian's python3-winrm against the
 * same fake as an independent check that the fake answers like Windows: exit codes, both streams, late
 * and large output, the TimedOut fault, UTF-8, cancellation, Basic and NTLM, and each certificate policy.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../agent/src/secret.js';
import { WinRmClient } from '../../agent/src/winrm/client.js';
import { WinRmError, type TlsPolicy, type WinRmAuth } from '../../agent/src/winrm/transport.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';

let vm: FakeWindowsVm;
beforeAll(async () => {
  vm = await startFakeWindowsVm({ receiveCapMs: 500 });
});
afterAll(async () => {
  await vm.close();
});

function client(
  options: {
    tls?: TlsPolicy;
    auth?: 'basic' | 'ntlm';
    password?: string;
    port?: number;
    /** Another fake VM than the file's shared one. */
    fake?: FakeWindowsVm;
    cleanupTimeoutMs?: number;
  } = {},
): WinRmClient {
  const fake = options.fake ?? vm;
  const auth: WinRmAuth = {
    kind: options.auth ?? 'basic',
    user: fake.user,
    password: new Secret(options.password ?? fake.password),
  };
  const port = options.port ?? fake.port;
  return new WinRmClient(
    {
      host: fake.host,
      port,
      servername: 'fake-windows-vm',
      tls: options.tls ?? { kind: 'ca', ca: fake.certPem },
      auth,
      label: `build VM ${fake.host}:${port}`,
    },
    {
      operationTimeoutMs: 1_000,
      ...(options.cleanupTimeoutMs ? { cleanupTimeoutMs: options.cleanupTimeoutMs } : {}),
    },
  );
}

async function failure(promise: Promise<unknown>): Promise<WinRmError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof WinRmError)) throw new Error(`expected a WinRmError, got ${String(error)}`);
  return error;
}

describe('WinRmClient', () => {
  it('returns the exit code and both streams', async () => {
    const c = client();
    const result = await c.run('echo out; echo err >&2; exit 3');
    c.close();
    expect(result).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(vm.openShells()).toBe(0);
  });

  it('keeps asking while a command is quiet (TimedOut faults) and gets late output', async () => {
    const c = client();
    const result = await c.run('echo first; sleep 2; echo second');
    c.close();
    expect(result.stdout).toBe('first\nsecond\n');
  });

  it('carries large output and UTF-8 intact', async () => {
    const c = client();
    const big = await c.run(`head -c 500000 /dev/zero | tr '\\0' 'x'; printf '\\303\\251\\342\\234\\223'`);
    c.close();
    expect(big.stdout.length).toBe(500_002);
    expect(big.stdout.endsWith('xé✓')).toBe(true);
  });

  it('runs PowerShell through -EncodedCommand and turns CLIXML errors into text', async () => {
    const c = client();
    const result = await c.runPowerShell(
      'Write-Host "hello from PowerShell"; Write-Error "it broke"; exit 5',
    );
    c.close();
    expect(result.exitCode).toBe(5);
    expect(result.stdout).toContain('hello from PowerShell');
    expect(result.stderr).toBe('it broke');
    expect(vm.commands.at(-1)).toMatch(/^powershell\.exe .*-EncodedCommand [A-Za-z0-9+/=]+$/);
  });

  it('stops a running command on abort: the remote process ends and no shell is left', async () => {
    const c = client();
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('cancelled by test')), 300);
    await expect(c.run('sleep 30', { signal: controller.signal })).rejects.toThrow('cancelled by test');
    c.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(vm.openShells()).toBe(0);
  });

  it('an abort while the server is still creating the shell deletes that shell once it exists', async () => {
    // The server makes the shell whether or not the client still waits; hanging up would leak it.
    const slow = await startFakeWindowsVm({ costs: { createShellMs: 700 } });
    try {
      const c = client({ fake: slow });
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('cancelled by test')), 100);
      await expect(c.run('echo never', { signal: controller.signal })).rejects.toThrow('cancelled by test');
      c.close();
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // past the server's 700 ms
      expect(slow.openShells()).toBe(0);
      expect(slow.commands).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('an abort gives a Create that never answers only the cleanup budget', async () => {
    const frozen = await startFakeWindowsVm({ costs: { createShellMs: 60_000 } });
    try {
      const c = client({ fake: frozen, cleanupTimeoutMs: 500 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('cancelled by test')), 100);
      const started = Date.now();
      await expect(c.run('echo never', { signal: controller.signal })).rejects.toThrow('cancelled by test');
      c.close();
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await frozen.close();
    }
  });

  it('authenticates with NTLM on one connection', async () => {
    const c = client({ auth: 'ntlm' });
    const result = await c.run('echo ntlm');
    c.close();
    expect(result.stdout).toBe('ntlm\n');
  });

  it.each(['basic', 'ntlm'] as const)('names a rejected %s login', async (auth) => {
    const c = client({ auth, password: 'wrong' });
    const error = await failure(c.run('echo hi'));
    c.close();
    expect(error.kind).toBe('auth-rejected');
    expect(error.message).toContain(`build VM ${vm.host}:${vm.port} rejected the login for "${vm.user}"`);
    expect(error.message).not.toContain('wrong');
  });

  it('applies each certificate policy explicitly', async () => {
    const system = await failure(client({ tls: { kind: 'system' } }).run('echo hi'));
    expect(system.kind).toBe('tls');
    expect(system.message).toMatch(/TLS with build VM .* failed: .*--winrm-insecure/);

    const pinned = client({ tls: { kind: 'fingerprint', sha256: vm.fingerprint256 } });
    expect((await pinned.run('echo pinned')).stdout).toBe('pinned\n');
    pinned.close();

    const wrongPin = await failure(
      client({ tls: { kind: 'fingerprint', sha256: 'AB'.repeat(32) } }).run('echo hi'),
    );
    expect(wrongPin.kind).toBe('tls');
    expect(wrongPin.message).toContain('not the pinned');

    const insecure = client({ tls: { kind: 'insecure' } });
    expect((await insecure.run('echo insecure')).stdout).toBe('insecure\n');
    insecure.close();
  });

  it('says a closed port refused the connection', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const error = await failure(client({ port }).run('echo hi'));
    expect(error.kind).toBe('refused');
    expect(error.message).toBe(`build VM 127.0.0.1:${port} refused the connection`);
  });
});

describe('the fake Windows VM, checked with python3-winrm', () => {
  const python = async (script: string): Promise<string> => {
    const { stdout } = await promisify(execFile)('/usr/bin/python3', ['-c', script], {
      env: { PATH: process.env.PATH ?? '' }, // no REQUESTS_CA_BUNDLE overriding the trust settings
      timeout: 60_000,
    });
    return stdout.trim();
  };
  const session = (transport: 'basic' | 'ntlm', password = vm?.password ?? '') =>
    `import winrm; s = winrm.Session('https://${vm.host}:${vm.port}/wsman', auth=(${JSON.stringify(vm.user)}, ${JSON.stringify(password)}), transport='${transport}', server_cert_validation='validate', ca_trust_path=${JSON.stringify(vm.certFile)})`;

  it('runs commands with exit codes, both streams and TimedOut retries (Basic)', async () => {
    const out = await python(
      `${session('basic')}\nr = s.run_cmd('echo out; echo err >&2; sleep 2; exit 3')\nprint(r.status_code, repr(r.std_out), repr(r.std_err))`,
    );
    expect(out).toBe("3 b'out\\n' b'err\\n'");
    expect(vm.openShells()).toBe(0);
  });

  it('authenticates with NTLM', async () => {
    const out = await python(
      `${session('ntlm')}\nr = s.run_cmd('echo', ['via ntlm'])\nprint(r.status_code, repr(r.std_out))`,
    );
    expect(out).toBe("0 b'via ntlm\\n'");
  });

  it('maps a wrong password to InvalidCredentialsError', async () => {
    const out = await python(
      `${session('basic', 'nope')}\ntry:\n  s.run_cmd('echo hi')\nexcept Exception as e:\n  print(type(e).__name__)`,
    );
    expect(out).toBe('InvalidCredentialsError');
  });
});
