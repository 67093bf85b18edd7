/**
 * isobuild-proxy under pressure: 2,000 concurrent connections, 600 clients dripping bytes beside 2,000 idle ones,
 * slowloris-style idle clients, random bytes and a flood over the connection cap neither crash it nor starve a
 * legitimate connection. Memory is measured in bench/proxy-memory-bench.mjs; the bound here is only a coarse
 * guard against a leak (measured: 67 MB at 2,000 idle + 600 dripping).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { proxyArgs, startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';

let echo: Server;
let echoPort: number;
const sockets: Socket[] = [];
let proxy: ProxyProcess | undefined;

beforeAll(async () => {
  echo = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('end', () => socket.end());
    socket.on('error', () => undefined);
  });
  echo.maxConnections = 10_000;
  await new Promise<void>((done) => echo.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, done));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((done) => echo.close(done));
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await proxy?.stop();
  proxy = undefined;
});

async function start(...extra: string[]): Promise<ProxyProcess> {
  return startWith(undefined, ...extra);
}

async function startWith(prefix: string[] | undefined, ...extra: string[]): Promise<ProxyProcess> {
  proxy = await startProxyProcess(
    [...proxyArgs({ health: true, targetSshPort: echoPort }), ...extra],
    undefined,
    prefix,
  );
  return proxy;
}

function open(port: number): Promise<Socket> {
  return new Promise((done, fail) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    socket.once('connect', () => done(socket));
    socket.once('error', fail);
  });
}

function roundTrip(socket: Socket, payload: Buffer): Promise<Buffer> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= payload.length) {
        socket.off('data', onData);
        done(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.write(payload);
  });
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

async function healthy(p: ProxyProcess): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${p.healthPort}/healthz`);
  return response.ok;
}

describe('isobuild-proxy under load', () => {
  it('carries 2,000 concurrent connections with bounded memory, and a legitimate one still works', async () => {
    const p = await start('--max-connections', '2500');
    const held: Socket[] = [];
    for (let batch = 0; batch < 20; batch++)
      held.push(...(await Promise.all(Array.from({ length: 100 }, () => open(p.ports.ssh)))));
    const replies = await Promise.all(held.map((socket, i) => roundTrip(socket, Buffer.from(`c${i};`))));

    const legit = await roundTrip(await open(p.ports.ssh), Buffer.from('legitimate build traffic'));

    expect(replies.every((reply, i) => reply.toString() === `c${i};`)).toBe(true);
    expect(legit.toString()).toBe('legitimate build traffic');
    expect(rssMb(p.child.pid!)).toBeLessThan(120);
    expect(await healthy(p)).toBe(true);
  });

  it('keeps 600 dripping clients flowing while it closes 2,000 idle ones at the idle timeout', async () => {
    const p = await start('--max-connections', '3000', '--idle-timeout', '3000');
    const idle: Socket[] = [];
    for (let batch = 0; batch < 20; batch++)
      idle.push(...(await Promise.all(Array.from({ length: 100 }, () => open(p.ports.ssh)))));
    // A dripper sends its first byte as soon as it is connected: opening 600 may take a while on a busy machine.
    const drippers = await Promise.all(
      Array.from({ length: 600 }, () =>
        open(p.ports.ssh).then((socket) => {
          socket.write('.');
          return socket;
        }),
      ),
    );
    const echoed = drippers.map(() => 0);
    drippers.forEach((socket, i) => socket.on('data', (chunk: Buffer) => (echoed[i]! += chunk.length)));

    // Each dripper sends a byte every 250 ms, spread over the interval, for 5 s: well past the idle timeout.
    let sent = 0;
    const drip = setInterval(() => {
      for (let i = sent % 10; i < drippers.length; i += 10) drippers[i]!.write('.');
      sent++;
    }, 25);
    await new Promise((done) => setTimeout(done, 5000));
    clearInterval(drip);
    // The first idle ones may have been closed while the last were still being opened.
    const idleClosed = idle.map((socket) =>
      socket.closed ? Promise.resolve() : new Promise((done) => socket.once('close', done)),
    );
    await withDeadline(Promise.all(idleClosed), 5000, 'the idle connections to be closed');
    await new Promise((done) => setTimeout(done, 300)); // the last drips' echoes
    const rss = rssMb(p.child.pid!);

    expect(drippers.filter((socket) => socket.destroyed)).toHaveLength(0);
    expect(Math.min(...echoed)).toBeGreaterThanOrEqual(10);
    expect(echoed.reduce((a, b) => a + b, 0)).toBe(drippers.reduce((a, s) => a + s.bytesWritten, 0));
    expect(p.logs().match(/"end":"idle"/g)).toHaveLength(2000);
    expect(rss).toBeLessThan(120);
    const legit = await roundTrip(await open(p.ports.ssh), Buffer.from('legitimate build traffic'));
    expect(legit.toString()).toBe('legitimate build traffic');
    expect(await healthy(p)).toBe(true);
  });

  it('refuses a flood over the cap without harm, and serves again when it ends', async () => {
    const p = await start('--max-connections', '50');
    const flood = await Promise.all(
      Array.from({ length: 300 }, () => open(p.ports.ssh).catch(() => undefined)),
    );
    await new Promise((done) => setTimeout(done, 200));
    for (const socket of flood) socket?.destroy();
    await new Promise((done) => setTimeout(done, 200));

    const legit = await roundTrip(await open(p.ports.ssh), Buffer.from('after the flood'));

    expect(legit.toString()).toBe('after the flood');
    expect(p.logs()).toContain('"reason":"connection cap"');
    expect(await healthy(p)).toBe(true);
  });

  it('closes slowloris-style idle connections at the idle timeout while a busy one keeps working', async () => {
    const p = await start('--idle-timeout', '1000');
    const idle = await Promise.all(Array.from({ length: 100 }, () => open(p.ports.ssh)));
    const closedIdle = Promise.all(idle.map((socket) => new Promise((done) => socket.once('close', done))));
    const busy = await open(p.ports.ssh);

    for (let i = 0; i < 8; i++) {
      expect((await roundTrip(busy, Buffer.from(`tick${i}`))).toString()).toBe(`tick${i}`);
      await new Promise((done) => setTimeout(done, 200));
    }
    await closedIdle;

    expect(busy.destroyed).toBe(false);
    expect(p.logs()).toContain('"end":"idle"');
  });

  it('survives running out of file descriptors, and serves again once connections close', async () => {
    // 48 descriptors: Node needs about 25 of them itself, so a few dozen clients exhaust the rest.
    const p = await startWith(['prlimit', '--nofile=48:48', '--'], '--max-connections', '500');
    const crowd = await Promise.all(
      Array.from({ length: 60 }, () =>
        open(p.ports.ssh).then(
          (socket) => socket,
          () => undefined,
        ),
      ),
    );
    await new Promise((done) => setTimeout(done, 500));
    const logs = p.logs();
    for (const socket of crowd) socket?.destroy();
    await new Promise((done) => setTimeout(done, 500));

    const legit = await roundTrip(await open(p.ports.ssh), Buffer.from('after running out'));

    // The target is fine: the failures are the proxy's own, and say so.
    expect(logs).toContain('"end":"proxy out of resources"');
    expect(logs).toContain('"code":"EMFILE"');
    expect(logs).not.toContain('"end":"target error"');
    expect(legit.toString()).toBe('after running out');
    expect(await healthy(p)).toBe(true);
    expect(p.child.exitCode).toBeNull();
  });

  it('holds a target back while its client stalls, instead of buffering what the client does not read', async () => {
    // The target pushes 256 MiB as fast as it may; the client connects and never reads.
    let pushed = 0;
    const pusher = createServer((socket) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const push = (): void => {
        while (pushed < 256 * 1024 * 1024 && !socket.destroyed) {
          pushed += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', push);
        }
      };
      socket.on('error', () => undefined);
      push();
    });
    await new Promise<void>((done) => pusher.listen(0, '127.0.0.1', done));
    try {
      const p = await start('--target-ssh-port', String((pusher.address() as { port: number }).port));
      const stalled = await open(p.ports.ssh);
      stalled.pause();

      await new Promise((done) => setTimeout(done, 3000));

      // Only socket buffers fill (a few MiB on loopback): the proxy stopped reading from the target.
      expect(pushed).toBeLessThan(64 * 1024 * 1024);
      expect(rssMb(p.child.pid!)).toBeLessThan(120);
      expect(await healthy(p)).toBe(true);
      stalled.destroy();
    } finally {
      pusher.close();
    }
  });

  it('forwards random bytes as they are and keeps running', async () => {
    const p = await start();
    const payload = randomBytes(1024 * 1024);

    const reply = await roundTrip(await open(p.ports.ssh), payload);

    expect(reply.equals(payload)).toBe(true);
    expect(await healthy(p)).toBe(true);
  });
});
