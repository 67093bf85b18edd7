/**
 * isobuild-proxy as a real process: forwarding, fixed target, allowlist, cap, health, drain, idle timeout,
 * configuration errors, and listen failures (all listeners or none, a clear message, nothing served).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { proxyArgs, runProxyToExit, startProxyProcess, type ProxyRun } from '../helpers/proxy-process.js';

let echo: Server;
let echoPort: number;
let echoConnections = 0;
const received: string[] = [];
const running: ChildProcess[] = [];

beforeAll(async () => {
  // The "build VM": echoes what it receives, answers end with end (half-close both ways).
  echo = createServer({ allowHalfOpen: true }, (socket) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      socket.write(chunk);
    });
    socket.on('end', () => {
      received.push(data);
      socket.end('bye');
    });
  });
  echo.on('connection', () => echoConnections++);
  await new Promise<void>((done) => echo.listen(0, '127.0.0.1', done));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((done) => echo.close(done));
});
afterEach(() => {
  for (const child of running.splice(0)) child.kill('SIGKILL');
});

interface Started {
  readonly child: ChildProcess;
  readonly ssh: number;
  readonly health: number | undefined;
  readonly logs: () => string;
}

async function startProxy(...args: string[]): Promise<Started> {
  const proxy = await startProxyProcess([...proxyArgs({ health: true, targetSshPort: echoPort }), ...args]);
  running.push(proxy.child);
  return { child: proxy.child, ssh: proxy.ports.ssh, health: proxy.healthPort, logs: () => proxy.logs() };
}

/** The proxy logs a connection after closing it: wait for the line instead of racing it. */
async function logged(proxy: Started, text: string): Promise<string> {
  const deadline = Date.now() + 3000;
  while (!proxy.logs().includes(text) && Date.now() < deadline)
    await new Promise((done) => setTimeout(done, 20));
  return proxy.logs();
}

function exchange(port: number, payload: string): Promise<{ reply: string; closedEarly: boolean }> {
  return new Promise((done) => {
    const socket: Socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let reply = '';
    let gotData = false;
    socket.on('data', (chunk: Buffer) => {
      gotData = true;
      reply += chunk.toString();
    });
    socket.on('connect', () => socket.end(payload));
    socket.on('error', () => undefined);
    socket.on('close', () => done({ reply, closedEarly: !gotData }));
  });
}

describe('isobuild-proxy', () => {
  it('forwards to the fixed target with half-close in both directions', async () => {
    const proxy = await startProxy();

    const result = await exchange(proxy.ssh, 'hello through the proxy');

    expect(result.reply).toBe('hello through the proxybye');
    const logs = await logged(proxy, '"msg":"connection closed"');
    expect(logs).toContain('"end":"closed"');
    expect(logs).toContain('"bytesIn":23');
  });

  it('cannot be told where to go: a CONNECT request just reaches the fixed target', async () => {
    const proxy = await startProxy();
    received.length = 0;

    await exchange(proxy.ssh, 'CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n');

    expect(received).toEqual(['CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n']);
  });

  it('refuses sources outside the allowlist', async () => {
    const proxy = await startProxy('--allow', '10.0.0.0/8');

    const result = await exchange(proxy.ssh, 'let me in');

    expect(result.closedEarly).toBe(true);
    expect(await logged(proxy, '"reason":"source not allowed"')).toContain('"reason":"source not allowed"');
  });

  it('enforces the connection cap', async () => {
    const proxy = await startProxy('--max-connections', '1');
    const held = connect({ host: '127.0.0.1', port: proxy.ssh });
    await new Promise((done) => held.once('connect', done));
    await new Promise((done) => setTimeout(done, 100));

    const second = await exchange(proxy.ssh, 'second');

    held.destroy();
    expect(second.closedEarly).toBe(true);
    expect(await logged(proxy, '"reason":"connection cap"')).toContain('"reason":"connection cap"');
  });

  it('logs a refused target by hop', async () => {
    const proxy = await startProxy('--target-ssh-port', '1');

    const result = await exchange(proxy.ssh, 'anyone?');

    expect(result.reply).toBe('');
    expect(await logged(proxy, '"end":"target refused"')).toContain('"end":"target refused"');
  });

  it('answers its health check, and drains on SIGTERM', async () => {
    const proxy = await startProxy('--drain-timeout', '2000');
    const ok = await fetch(`http://127.0.0.1:${proxy.health}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: 'ok', connections: 0 });
    const open = connect({ host: '127.0.0.1', port: proxy.ssh, allowHalfOpen: true });
    await new Promise((done) => open.once('connect', done));
    await new Promise((done) => setTimeout(done, 100));

    proxy.child.kill('SIGTERM');
    await new Promise((done) => setTimeout(done, 200));
    const refused = await exchange(proxy.ssh, 'late').catch(() => ({ closedEarly: true, reply: '' }));
    open.end('still here');
    const code = await new Promise<number | null>((done) => proxy.child.once('exit', done));

    expect(refused.closedEarly).toBe(true);
    expect(code).toBe(0);
    expect(proxy.logs()).toContain('"msg":"proxy stopped"');
  });

  it('reports every configuration problem at once and exits 2', async () => {
    const run = await runProxyToExit(['--ssh-port', '99999', '--allow', 'nonsense']);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--target / PROXY_TARGET is missing');
    expect(run.stderr).toContain('--ssh-port "99999" is invalid');
    expect(run.stderr).toContain('"nonsense" is not an IPv4 or IPv6 network');
    expectCleanFailure(run);
  });

  it('refuses an explicitly empty allowlist, as a flag or a variable', async () => {
    const flag = await runProxyToExit(['--target', '127.0.0.1', '--allow', '']);
    const variable = await runProxyToExit(['--target', '127.0.0.1'], { env: { PROXY_ALLOW: '' } });

    for (const run of [flag, variable]) {
      expect(run.code).toBe(2);
      expectCleanFailure(run);
    }
    expect(flag.stderr).toContain('--allow is empty: list the source networks allowed to connect');
    expect(variable.stderr).toContain('PROXY_ALLOW is empty: list the source networks allowed to connect');
  });

  it('turns the health check off with --health-port -1 and still forwards', async () => {
    const proxy = await startProxy('--health-port', '-1');

    const result = await exchange(proxy.ssh, 'no health check');

    expect(proxy.health).toBeUndefined();
    expect(result.reply).toBe('no health checkbye');
  });

  it('drains for at most --drain-timeout, then closes what is still open and exits 0', async () => {
    const proxy = await startProxy('--drain-timeout', '500');
    const open = connect({ host: '127.0.0.1', port: proxy.ssh });
    await new Promise((done) => open.once('connect', done));
    const closed = new Promise((done) => open.once('close', done));
    await new Promise((done) => setTimeout(done, 100));

    const started = Date.now();
    proxy.child.kill('SIGTERM');
    const code = await exitCode(proxy.child, 5000);

    expect(code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    await within(closed, 2000, 'the held connection to be closed');
    expect(proxy.logs()).toContain('"leftOpen":1');
    expect(proxy.logs()).toContain('"end":"draining"');
  });

  it('stops at once on a second signal while it drains', async () => {
    const proxy = await startProxy('--drain-timeout', '60000');
    const open = connect({ host: '127.0.0.1', port: proxy.ssh });
    await new Promise((done) => open.once('connect', done));
    await new Promise((done) => setTimeout(done, 100));

    proxy.child.kill('SIGTERM');
    await new Promise((done) => setTimeout(done, 300));
    proxy.child.kill('SIGTERM');
    const code = await exitCode(proxy.child, 5000);

    open.destroy();
    expect(code).toBe(0);
    expect(proxy.logs()).toContain('"leftOpen":1');
  });

  it('gives up on a target that never answers the connection after --connect-timeout', async () => {
    // A listener whose accept queue is full: the kernel drops further SYNs, so connecting just hangs.
    const frozen = await frozenListener();
    const proxy = await startProxy('--connect-timeout', '500', '--target-ssh-port', String(frozen));
    const client = connect({ host: '127.0.0.1', port: proxy.ssh });
    const opened = Date.now();

    const closedAfter = await new Promise<number>((done) =>
      client.once('close', () => done(Date.now() - opened)),
    );

    expect(closedAfter).toBeGreaterThanOrEqual(450);
    expect(closedAfter).toBeLessThan(3000);
    expect(await logged(proxy, '"end":"target timed out"')).toContain('"end":"target timed out"');
  });

  it('counts bytes in either direction as activity for the idle timeout', async () => {
    // A target that only talks: the client never sends, yet the connection is not idle.
    const talker = createServer((socket) => {
      const tick = setInterval(() => socket.write('.'), 200);
      socket.on('close', () => clearInterval(tick));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((done) => talker.listen(0, '127.0.0.1', done));
    try {
      const proxy = await startProxy('--idle-timeout', '1000', '--target-ssh-port', String(portOf(talker)));
      const talking = connect({ host: '127.0.0.1', port: proxy.ssh });
      let heard = 0;
      talking.on('data', (chunk: Buffer) => (heard += chunk.length));
      const silentProxy = await startProxy('--idle-timeout', '1000');
      const silent = connect({ host: '127.0.0.1', port: silentProxy.ssh });
      const silentClosed = new Promise<number>((done) => {
        const opened = Date.now();
        silent.once('close', () => done(Date.now() - opened));
      });

      await new Promise((done) => setTimeout(done, 2500));

      expect(talking.destroyed).toBe(false);
      expect(heard).toBeGreaterThanOrEqual(8);
      const silentAfter = await silentClosed;
      expect(silentAfter).toBeGreaterThanOrEqual(950);
      expect(silentAfter).toBeLessThan(2500);
      talking.destroy();
    } finally {
      await new Promise((done) => talker.close(done));
    }
  });
});

describe('isobuild-proxy listening', () => {
  const LISTENERS = ['ssh', 'winrm', 'health'] as const;

  it.each(LISTENERS)(
    'exits 1 and serves nothing when the %s port is taken by another process',
    async (taken) => {
      const holder = await holdPort();
      const ports = {
        ssh: await freePort(),
        winrm: await freePort(),
        health: await freePort(),
        [taken]: holder,
      };
      const before = echoConnections;
      const hammer = hammerPorts([ports.ssh, ports.winrm]);

      const run = await runProxyToExit(listenArgs(ports)).finally(() => hammer.stop());

      expect(run.code).toBe(1);
      expect(run.stderr).toContain(
        `isobuild-proxy: cannot listen for ${taken} on 127.0.0.1:${holder}: the port is already in use by another process; stop that process or choose another port with --${taken}-port.`,
      );
      expect(run.stderr).toContain('Nothing was served');
      expectCleanFailure(run);
      expect(echoConnections - before).toBe(0);
      // Every listener was closed again: the free ones can be bound by someone else now.
      for (const listener of LISTENERS.filter((l) => l !== taken))
        await expect(canBind(ports[listener])).resolves.toBe(true);
    },
  );

  it.each([
    ['ssh', 'winrm'],
    ['ssh', 'health'],
    ['winrm', 'health'],
  ] as const)('exits 2 before listening when %s and %s are given the same port', async (a, b) => {
    const port = await freePort();
    const ports = {
      ssh: await freePort(),
      winrm: await freePort(),
      health: await freePort(),
      [a]: port,
      [b]: port,
    };

    const run = await runProxyToExit(listenArgs(ports));

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `${a} (--${a}-port) and ${b} (--${b}-port) would both listen on port ${port}: give each listener a port of its own.`,
    );
    expectCleanFailure(run);
  });

  it('exits 1 for ports below 1024 without the capability to bind them, naming each', async () => {
    const ports = { ssh: 1022, winrm: await freePort(), health: 1023 };

    const run = await runProxyToExit(listenArgs(ports), {
      prefix: ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'],
    });

    expect(run.code).toBe(1);
    for (const [name, port] of [
      ['ssh', 1022],
      ['health', 1023],
    ] as const)
      expect(run.stderr).toContain(
        `cannot listen for ${name} on 127.0.0.1:${port}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); grant that or choose another port with --${name}-port.`,
      );
    expect(run.stderr).not.toContain('cannot listen for winrm');
    expectCleanFailure(run);
  });

  it('exits 1 for an address this machine does not have', async () => {
    const run = await runProxyToExit([
      '--listen',
      '192.0.2.1', // TEST-NET-1: never assigned here
      '--ssh-port',
      '0',
      '--winrm-port',
      '0',
      '--health-port',
      '-1',
      '--target',
      '127.0.0.1',
    ]);

    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'cannot listen for ssh on 192.0.2.1:0: 192.0.2.1 is not an address of this machine; give one it has with --listen',
    );
    expectCleanFailure(run);
  });
});

/** A failure the user can act on: said on stderr, no stack trace, nothing served. */
function expectCleanFailure(run: ProxyRun): void {
  expect(run.stderr).not.toMatch(/^\s+at /m);
  expect(run.stderr).not.toMatch(/Error:|node:internal|\.js:\d+/);
  expect(run.stdout).not.toContain('"proxy listening"');
}

function listenArgs(ports: { ssh: number; winrm: number; health: number }): string[] {
  return [
    '--listen',
    '127.0.0.1',
    '--ssh-port',
    String(ports.ssh),
    '--winrm-port',
    String(ports.winrm),
    '--health-port',
    String(ports.health),
    '--target',
    '127.0.0.1',
    '--target-ssh-port',
    String(echoPort),
    '--target-winrm-port',
    String(echoPort),
  ];
}

function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = portOf(server);
  await new Promise((done) => server.close(done));
  return port;
}

async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((done) => {
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => done(true));
  });
  if (bound) await new Promise((done) => server.close(done));
  return bound;
}

/**
 * A port that accepts no connection and refuses none: a listener with a backlog of 0 that never accepts, its
 * queue filled by connections of its own. Further SYNs are dropped, as by a frozen host.
 */
async function frozenListener(): Promise<number> {
  const holder = spawn(
    'python3',
    [
      '-c',
      [
        'import socket, sys, time',
        's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
        'port = s.getsockname()[1]',
        'fillers = [socket.socket() for _ in range(3)]',
        '[(f.setblocking(False), f.connect_ex(("127.0.0.1", port))) for f in fillers]',
        'time.sleep(0.2); print(port, flush=True); time.sleep(120)',
      ].join('\n'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  running.push(holder);
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('the frozen listener did not start')), 5000);
    holder.stdout.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      done(Number(chunk.toString().trim()));
    });
  });
}

/** Another process listening on a port of its own; killed after the test. */
async function holdPort(): Promise<number> {
  const holder = spawn(
    process.execPath,
    [
      '-e',
      "const s = require('node:net').createServer(); s.listen(0, '127.0.0.1', () => console.log(s.address().port));",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  running.push(holder);
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('the port holder did not start')), 5000);
    holder.stdout.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      done(Number(chunk.toString().trim()));
    });
  });
}

/** Clients that keep connecting to `ports` (and send a byte) while a proxy starts: anything served is counted by the echo target. */
function hammerPorts(ports: number[]): { stop(): void } {
  let stopped = false;
  const attempt = (port: number): void => {
    if (stopped) return;
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('connect', () => socket.write('x'));
    socket.on('error', () => undefined);
    socket.on('close', () => setTimeout(() => attempt(port), 1));
    setTimeout(() => socket.destroy(), 50);
  };
  for (const port of ports) attempt(port);
  return { stop: () => (stopped = true) };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function exitCode(child: ChildProcess, deadlineMs: number): Promise<number | null> {
  return new Promise((done, fail) => {
    if (child.exitCode !== null) return done(child.exitCode);
    const timer = setTimeout(
      () => fail(new Error(`isobuild-proxy did not exit within ${deadlineMs} ms`)),
      deadlineMs,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      done(code);
    });
  });
}
