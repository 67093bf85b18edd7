/**
 * vm-path/: the path to the build VM worked out from config and template (ports, hop, credentials, input
 * errors), and the readiness probe through a real relay against real local peers: a closed port, a listener
 * that never speaks, ssh2's own server rejecting or accepting the login; plus the SSH executor.
 */
import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server as SshServer, utils, type Connection } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IsobuildError } from '../../agent/src/errors.js';
import type { Relay } from '../../agent/src/relay/relay.js';
import { cleanUpRemoteRun } from '../../agent/src/run/remote-cleanup.js';
import { Secret } from '../../agent/src/secret.js';
import { loadBuildConfig, type BuildConfig } from '../../agent/src/settings/build-config.js';
import { SshCommandTimeout, sshExec } from '../../agent/src/vm-path/ssh-exec.js';
import { resolveVmPath, type VmPath, type VmPathTemplate } from '../../agent/src/vm-path/vm-path.js';
import { sshTarget, VmUnreachable, waitUntilReachable } from '../../agent/src/vm-path/vm-probe.js';
import { openVmRelay } from '../../agent/src/vm-path/vm-relay.js';

const LINUX: VmPathTemplate = { os: 'linux', topology: 'direct' };
const WINDOWS: VmPathTemplate = { os: 'windows', topology: 'direct' };
const PROXY_MESSAGE =
  "this template uses AIB's proxy topology (vmProfile.vnetConfig.subnetId without containerInstanceSubnetId), but no proxy is configured: pass --proxy-host ADDRESS (an isobuild-proxy in front of the build VM) or --topology direct.";
const WINRM_PASSWORD_MESSAGE =
  'Windows builds need the administrator password: set ISOBUILD_WINRM_PASSWORD (for --user).';

const clientKey = utils.generateKeyPairSync('ed25519');
const hostKey = utils.generateKeyPairSync('ed25519');
let dir: string;
let keyFile: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'isobuild-vm-path-'));
  keyFile = join(dir, 'id_ed25519');
  writeFileSync(keyFile, clientKey.private, { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The real loader's defaults for --host 10.0.0.4, with the fields a case is about replaced. */
function config(overrides: Partial<BuildConfig> = {}): BuildConfig {
  return { ...loadBuildConfig({ host: '10.0.0.4' }, {}, dir), ...overrides };
}

/** The usage error resolveVmPath throws, or a failure when it throws none. */
function inputError(run: () => unknown): IsobuildError {
  try {
    run();
  } catch (error) {
    if (error instanceof IsobuildError) return error;
    throw error;
  }
  throw new Error('expected an input error');
}

describe('resolveVmPath', () => {
  it.each([
    {
      name: 'Linux, direct: SSH on 22 to the VM',
      template: LINUX,
      overrides: {},
      expected: { protocol: 'SSH', port: 22, topology: 'direct', label: 'build VM 10.0.0.4:22' },
      hop: { kind: 'direct', host: '10.0.0.4', port: 22 },
    },
    {
      name: 'Windows, direct: WinRM on 5986 to the VM',
      template: WINDOWS,
      overrides: { winrmPassword: new Secret('windows-password') },
      expected: { protocol: 'WinRM', port: 5986, topology: 'direct', label: 'build VM 10.0.0.4:5986' },
      hop: { kind: 'direct', host: '10.0.0.4', port: 5986 },
    },
    {
      name: "Linux, the template's proxy topology: the proxy's SSH port, the VM behind it",
      template: { os: 'linux', topology: 'proxy' },
      overrides: { proxyHost: '10.0.0.5' },
      expected: { protocol: 'SSH', port: 22, topology: 'proxy', label: 'proxy 10.0.0.5:60001' },
      hop: { kind: 'proxy', host: '10.0.0.5', port: 60001, vm: '10.0.0.4:22' },
    },
    {
      name: "Windows, --topology proxy and --port: the proxy's WinRM port, the VM's port behind it",
      template: WINDOWS,
      overrides: {
        topology: 'proxy',
        proxyHost: '10.0.0.5',
        port: 15986,
        winrmPassword: new Secret('windows-password'),
      },
      expected: { protocol: 'WinRM', port: 15986, topology: 'proxy', label: 'proxy 10.0.0.5:60000' },
      hop: { kind: 'proxy', host: '10.0.0.5', port: 60000, vm: '10.0.0.4:15986' },
    },
    {
      name: "--topology direct overrides the template's proxy topology (no proxy host needed)",
      template: { os: 'linux', topology: 'proxy' },
      overrides: { topology: 'direct', port: 2222 },
      expected: { protocol: 'SSH', port: 2222, topology: 'direct', label: 'build VM 10.0.0.4:2222' },
      hop: { kind: 'direct', host: '10.0.0.4', port: 2222 },
    },
    {
      name: 'the ACI subnet topology is direct',
      template: { os: 'linux', topology: 'aci-subnet' },
      overrides: {},
      expected: { protocol: 'SSH', port: 22, topology: 'direct', label: 'build VM 10.0.0.4:22' },
      hop: { kind: 'direct', host: '10.0.0.4', port: 22 },
    },
  ] as const)('$name', ({ template, overrides, expected, hop }) => {
    const path = resolveVmPath(config(overrides), template);

    expect(path).toMatchObject({ ...expected, os: template.os, user: 'packer' });
    expect(path.hop).toEqual(hop);
  });

  it('reads the SSH key file once, into the path, and keeps its name for Packer', () => {
    const path = resolveVmPath(
      config({ sshKeyFile: keyFile, sshPassword: new Secret('ssh-password') }),
      LINUX,
    );

    expect(path.protocol).toBe('SSH');
    if (path.protocol !== 'SSH') return;
    expect(path.ssh.privateKey?.toString()).toBe(clientKey.private);
    expect(path.ssh.keyFile).toBe(keyFile);
    expect(path.ssh.password?.reveal()).toBe('ssh-password');
  });

  it('takes the key as content from ISOBUILD_SSH_KEY, with no file name', () => {
    const path = resolveVmPath(config({ sshPrivateKey: new Secret(clientKey.private) }), LINUX);

    expect(path.protocol === 'SSH' && path.ssh.privateKey?.toString()).toBe(clientKey.private);
    expect(path.protocol === 'SSH' && path.ssh.keyFile).toBeUndefined();
  });

  it('gives WinRM its password, auth, TLS policy and the VM as the certificate name', () => {
    const password = new Secret('windows-password');
    const path = resolveVmPath(config({ winrmPassword: password, winrmAuth: 'basic' }), WINDOWS);

    expect(path.protocol === 'WinRM' && path.winrm).toEqual({
      auth: { kind: 'basic', user: 'packer', password },
      tls: { kind: 'insecure' },
      servername: '10.0.0.4',
    });
  });

  it("refuses the template's proxy topology without --proxy-host, naming the vnetConfig (exit 2)", () => {
    const error = inputError(() => resolveVmPath(config(), { os: 'linux', topology: 'proxy' }));

    expect(error.message).toBe(PROXY_MESSAGE);
    expect(error.exitCode).toBe(2);
  });

  it('refuses --topology proxy without --proxy-host, naming the flag, not the template (exit 2)', () => {
    const error = inputError(() => resolveVmPath(config({ topology: 'proxy' }), LINUX));

    expect(error.message).toBe(
      '--topology proxy asks for the proxy topology, but no proxy is configured: pass --proxy-host ADDRESS (an isobuild-proxy in front of the build VM) or --topology direct.',
    );
    expect(error.exitCode).toBe(2);
  });

  it('refuses a Windows template without the WinRM password (exit 2)', () => {
    const error = inputError(() => resolveVmPath(config(), WINDOWS));

    expect(error.message).toBe(WINRM_PASSWORD_MESSAGE);
    expect(error.exitCode).toBe(2);
  });

  it('refuses a key file that does not exist, for Windows templates too (exit 2)', () => {
    const missing = join(dir, 'no-such-key');

    const linux = inputError(() => resolveVmPath(config({ sshKeyFile: missing }), LINUX));
    const windows = inputError(() =>
      resolveVmPath(config({ sshKeyFile: missing, winrmPassword: new Secret('windows-password') }), WINDOWS),
    );

    expect(linux.message).toBe(
      `cannot read the SSH key file ${missing}: no such file; check --ssh-key-file / ISOBUILD_SSH_KEY_FILE.`,
    );
    expect(linux.exitCode).toBe(2);
    expect(windows.message).toBe(linux.message);
  });

  it('refuses a FIFO as the key file at once instead of blocking on it (exit 2)', () => {
    const fifo = join(dir, 'key-fifo');
    execFileSync('mkfifo', [fifo]);

    const error = inputError(() => resolveVmPath(config({ sshKeyFile: fifo }), LINUX));

    expect(error.message).toContain('it is a FIFO (named pipe), not a regular file');
    expect(error.exitCode).toBe(2);
  });
});

/** Closers for everything a test started, run after it (relays, servers). */
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function closeServer(server: NetServer | SshServer, sockets: Set<Socket> = new Set()): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function listen(server: NetServer | SshServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on: one that was just free. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}

/** Accepts TCP connections and never sends a byte (a VM whose sshd hangs, or a black hole behind NAT). */
async function frozenListener(): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const port = await listen(server);
  closers.push(() => closeServer(server, sockets));
  return port;
}

/** ssh2's own server; `login` decides each authentication, `exec` answers commands. */
async function sshServer(
  login: 'accept' | 'reject',
  exec: (command: string) => string = () => '',
): Promise<{ port: number; logins: () => number }> {
  const clients = new Set<Connection>();
  let logins = 0;
  const server = new SshServer({ hostKeys: [hostKey.private] }, (client) => {
    clients.add(client);
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (login === 'accept' && ctx.method === 'publickey') {
        if (ctx.signature) logins++;
        ctx.accept();
      } else ctx.reject(['publickey']);
    });
    client.on('session', (accept) => {
      accept().once('exec', (acceptExec, _reject, info) => {
        const stream = acceptExec();
        stream.end(exec(info.command));
        stream.exit(0);
      });
    });
  });
  const port = await listen(server);
  closers.push(async () => {
    for (const client of clients) client.end();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port, logins: () => logins };
}

/** A Linux or Windows path to 127.0.0.1:port with the test key, behind a real relay. */
async function pathTo(port: number, os: 'linux' | 'windows' = 'linux'): Promise<[VmPath, Relay]> {
  const path = resolveVmPath(
    config({
      host: '127.0.0.1',
      port,
      sshKeyFile: keyFile,
      ...(os === 'windows' ? { winrmPassword: new Secret('windows-password') } : {}),
    }),
    os === 'linux' ? LINUX : WINDOWS,
  );
  const relay = await openVmRelay(path, { connectTimeoutMs: 1_000 });
  closers.push(() => relay.close());
  return [path, relay];
}

async function unreachable(promise: Promise<void>): Promise<VmUnreachable> {
  const error: unknown = await promise.then(
    () => new Error('expected the VM to be unreachable'),
    (error: unknown) => error,
  );
  if (error instanceof VmUnreachable) return error;
  throw error;
}

describe('waitUntilReachable', () => {
  it('gives up on a closed port after retrying, naming the hop that refused (exit 5)', async () => {
    const port = await closedPort();
    const [path, relay] = await pathTo(port);
    const attempts: number[] = [];

    const error = await unreachable(
      waitUntilReachable(path, relay, { timeoutMs: 2_000, onAttempt: (n) => attempts.push(n) }),
    );

    expect(error).toMatchObject({ protocol: 'SSH', retried: true, attempts: 2 });
    expect(error.reason).toBe(`build VM 127.0.0.1:${port} refused the connection`);
    expect(error.message).toMatch(
      new RegExp(
        `^the build VM is not reachable over SSH \\(gave up after \\d+\\.\\ds, 2 attempts\\): build VM 127\\.0\\.0\\.1:${port} refused the connection\\.$`,
      ),
    );
    expect(error.exitCode).toBe(5);
    expect(attempts).toEqual([1]);
  });

  it('gives up on a listener that never speaks within timeoutMs, after more than one attempt', async () => {
    const port = await frozenListener();
    const [path, relay] = await pathTo(port);
    const started = Date.now();

    const error = await unreachable(
      waitUntilReachable(path, relay, { timeoutMs: 3_500, attemptTimeoutMs: 1_000 }),
    );

    expect(Date.now() - started).toBeLessThan(3_500 + 500);
    expect(error.retried).toBe(true);
    expect(error.attempts).toBeGreaterThanOrEqual(2);
    expect(error.waitedMs).toBeGreaterThanOrEqual(2_000);
    expect(error.reason).toContain(
      `build VM 127.0.0.1:${port} accepted the TCP connection but did not complete an SSH handshake`,
    );
  });

  it('fails at once, without retrying, when the VM rejects the login', async () => {
    const server = await sshServer('reject');
    const [path, relay] = await pathTo(server.port);
    const started = Date.now();

    const error = await unreachable(waitUntilReachable(path, relay, { timeoutMs: 5_000 }));

    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ protocol: 'SSH', retried: false, attempts: 1 });
    expect(error.reason).toContain(
      `build VM 127.0.0.1:${server.port} rejected the login of user "packer" with the configured private key`,
    );
    expect(error.message).toBe(`the build VM is not reachable over SSH: ${error.reason.replace(/\.$/, '')}.`);
  });

  it('resolves once the VM accepts the login, through the relay, and leaves no abort listener behind', async () => {
    const server = await sshServer('accept');
    const [path, relay] = await pathTo(server.port);
    const signal = new AbortController().signal;

    await waitUntilReachable(path, relay, { timeoutMs: 5_000, signal });

    expect(server.logins()).toBe(1);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('says WinRM when a Windows VM cannot be reached', async () => {
    const port = await closedPort();
    const [path, relay] = await pathTo(port, 'windows');

    const error = await unreachable(waitUntilReachable(path, relay, { timeoutMs: 1_500 }));

    expect(error.protocol).toBe('WinRM');
    expect(error.message).toMatch(
      /^the build VM is not reachable over WinRM \(gave up after .*\): build VM 127\.0\.0\.1:\d+ refused the connection\.$/,
    );
  });

  it('rethrows the abort reason when cancelled mid-wait', async () => {
    const port = await frozenListener();
    const [path, relay] = await pathTo(port);
    const controller = new AbortController();
    const reason = new Error('cancelled by the test');
    setTimeout(() => controller.abort(reason), 200);
    const started = Date.now();

    await expect(
      waitUntilReachable(path, relay, { timeoutMs: 5_000, signal: controller.signal }),
    ).rejects.toBe(reason);

    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('rethrows the abort reason of a signal that was aborted before it started', async () => {
    const server = await sshServer('accept');
    const [path, relay] = await pathTo(server.port);
    const reason = new Error('already cancelled');

    await expect(
      waitUntilReachable(path, relay, { timeoutMs: 5_000, signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);

    expect(server.logins()).toBe(0);
  });
});

describe('sshExec', () => {
  it("runs one command through the relay with the path's credentials and returns its stdout", async () => {
    const server = await sshServer('accept', (command) => `ran: ${command}\n`);
    const [path, relay] = await pathTo(server.port);
    if (path.protocol !== 'SSH') throw new Error('a Linux path');

    const output = await sshExec(sshTarget(path, relay), 'echo hi', { budgetMs: 5_000 });

    expect(output).toBe('ran: echo hi\n');
  });

  it('gives up after its budget on a VM that never answers', async () => {
    const port = await frozenListener();
    const [path, relay] = await pathTo(port);
    if (path.protocol !== 'SSH') throw new Error('a Linux path');

    const error: unknown = await sshExec(sshTarget(path, relay), 'true', { budgetMs: 500 }).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(SshCommandTimeout);
    expect((error as Error).message).toBe(
      `the command on build VM 127.0.0.1:${port} did not finish within 0.5 s`,
    );
  });

  it('stops with the abort reason when cancelled', async () => {
    const port = await frozenListener();
    const [path, relay] = await pathTo(port);
    if (path.protocol !== 'SSH') throw new Error('a Linux path');
    const controller = new AbortController();
    const reason = new Error('stop');
    setTimeout(() => controller.abort(reason), 100);

    await expect(
      sshExec(sshTarget(path, relay), 'true', { budgetMs: 5_000, signal: controller.signal }),
    ).rejects.toBe(reason);
  });
});

describe('cleanUpRemoteRun', () => {
  it('counts the sessions the cleanup script stopped', async () => {
    const server = await sshServer('accept', (command) =>
      command.includes('run-7') ? 'sessions-stopped=3\n' : '',
    );
    const [path, relay] = await pathTo(server.port);
    if (path.protocol !== 'SSH') throw new Error('a Linux path');

    expect(await cleanUpRemoteRun(sshTarget(path, relay), 'run-7')).toBe(3);
  });

  it('words a timeout as the cleanup on the hop that did not finish', async () => {
    const port = await frozenListener();
    const [path, relay] = await pathTo(port);
    if (path.protocol !== 'SSH') throw new Error('a Linux path');

    await expect(cleanUpRemoteRun(sshTarget(path, relay), 'run-7', 500)).rejects.toThrow(
      `the cleanup on build VM 127.0.0.1:${port} did not finish within 0.5 s`,
    );
  });
});
