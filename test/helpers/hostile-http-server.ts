// Servers that misbehave the way real ones do, for the artifact download tests: handlers for
// startHttpServer (drip, stall, never answer, break off, reset, redirect), a TCP listener whose process is
// frozen (connections wait in the kernel's queue unread; once it is full, new connection attempts are
// silently dropped), and a TCP server that answers with something that is not HTTP.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { TestHandler } from './http-server.js';

/** Sends headers, then one byte of `body` every `intervalMs`, announcing the full length. */
export function drip(body: Buffer, intervalMs: number): TestHandler {
  return (_request, response) => {
    response.writeHead(200, { 'content-length': body.length }).flushHeaders();
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < body.length) response.write(body.subarray(sent, ++sent));
      if (sent === body.length) {
        clearInterval(timer);
        response.end();
      }
    }, intervalMs);
    response.on('close', () => clearInterval(timer));
  };
}

/** Sends the status line and headers (and `first` bytes of the body), then nothing, keeping the connection. */
export function headersThenStall(contentLength: number, first = ''): TestHandler {
  return (_request, response) => {
    response.writeHead(200, { 'content-length': contentLength });
    if (first) response.write(first);
    else response.flushHeaders();
  };
}

/** Reads the request and never answers. */
export const neverAnswer: TestHandler = () => undefined;

/** Sends part of the announced body, then closes the connection. */
export function breakOff(contentLength: number, sent: string): TestHandler {
  return (_request, response) => {
    response.writeHead(200, { 'content-length': contentLength });
    response.write(sent, () => response.socket?.destroy());
  };
}

/** Answers with a TCP reset (RST), as a crashing server or a middlebox does. */
export const resetConnection: TestHandler = (request) => {
  request.socket.resetAndDestroy();
};

export function redirect(location: string, status = 302): TestHandler {
  return (_request, response) => {
    response.writeHead(status, { location, 'content-type': 'text/plain' }).end('moved');
  };
}

/** The first handlers answer the first requests in turn; the last one answers every request after them. */
export function inTurn(...handlers: TestHandler[]): TestHandler {
  return (request, response, index) =>
    handlers[Math.min(index, handlers.length - 1)]!(request, response, index);
}

export interface FrozenListener {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /**
   * Fills the kernel's accept queue with idle connections, after which the kernel drops new connection
   * attempts without an answer, as a firewall that drops packets does.
   */
  fillQueue(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A listener in a child process whose event loop is blocked for good: the kernel completes handshakes for
 * the few connections its queue (backlog 1) holds, and nobody ever reads them.
 */
export async function startFrozenListener(): Promise<FrozenListener> {
  const code = `
    const server = require('node:net').createServer();
    server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n', () =>
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
    });`;
  const child: ChildProcess = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the frozen listener did not start within 5 s')), 5000);
    child.stdout!.once('data', (data: Buffer) => {
      clearTimeout(timer);
      resolve(Number(String(data).trim()));
    });
    child.once('exit', (status) => reject(new Error(`the frozen listener exited (${status})`)));
  });
  const fillers: Socket[] = [];
  return {
    url: `http://127.0.0.1:${port}`,
    fillQueue: async () => {
      // Backlog 1 holds two completed connections on Linux; the third attempt must go unanswered.
      for (let i = 0; i < 2; i++) {
        const socket = connect(port, '127.0.0.1');
        fillers.push(socket);
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve).once('error', reject);
        });
      }
      const probe = connect(port, '127.0.0.1');
      const answered = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 300);
        probe.once('connect', () => (clearTimeout(timer), resolve(true)));
        probe.once('error', () => (clearTimeout(timer), resolve(true)));
      });
      probe.destroy();
      if (answered) throw new Error('the frozen listener still answers connection attempts');
    },
    close: async () => {
      for (const socket of fillers) socket.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

export interface RawTcpServer {
  readonly url: string;
  connections(): number;
  close(): Promise<void>;
}

/** Answers every connection with `banner` (say, an SSH greeting) and keeps it open. */
export async function startBannerServer(banner: string): Promise<RawTcpServer> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined).on('close', () => sockets.delete(socket));
    socket.write(banner);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
