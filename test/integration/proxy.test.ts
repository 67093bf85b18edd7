/** isobuild-proxy as a real process: forwarding, fixed target, allowlist, cap, health, drain, config errors. */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { PROXY_CLI, startProxyProcess } from '../helpers/proxy-process.js';

let echo: Server;
let echoPort: number;
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
  readonly health: number;
  readonly logs: () => string;
}

async function startProxy(...args: string[]): Promise<Started> {
  const proxy = await startProxyProcess([
    '--listen',
    '127.0.0.1',
    '--ssh-port',
    '0',
    '--winrm-port',
    '0',
    '--health-port',
    '0',
    '--target',
    '127.0.0.1',
    '--target-ssh-port',
    String(echoPort),
    ...args,
  ]);
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
    const child = spawn(process.execPath, [PROXY_CLI, '--ssh-port', '99999', '--allow', 'nonsense'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.once('exit', done));

    expect(code).toBe(2);
    expect(err).toContain('--target / PROXY_TARGET is missing');
    expect(err).toContain('--ssh-port');
    expect(err).toContain('"nonsense"');
  });
});
