/** The agent's relay, alone and in front of a real isobuild-proxy: bytes, half-close, and hop-named failures. */
import { connect, createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type Relay, type RelayConnectionLog } from '../../agent/src/relay/relay.js';
import { proxyArgs, startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';

let echo: Server;
let echoPort: number;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  echo = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('end', () => socket.end('|eof'));
  });
  await new Promise<void>((done) => echo.listen(0, '127.0.0.1', done));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((done) => echo.close(done));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function relayTo(
  upstream: Parameters<typeof startRelay>[0]['upstream'],
  logs: RelayConnectionLog[] = [],
): Promise<Relay> {
  const relay = await startRelay({
    upstream,
    connectTimeoutMs: 2000,
    onConnection: (entry) => logs.push(entry),
  });
  cleanups.push(() => relay.close());
  return relay;
}

function talk(port: number, payload: string): Promise<string> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
    socket.on('connect', () => socket.end(payload));
    socket.on('error', () => undefined);
    socket.on('close', () => done(reply));
  });
}

async function proxyTo(targetPort: number): Promise<ProxyProcess> {
  const proxy = await startProxyProcess(proxyArgs({ targetSshPort: targetPort }));
  cleanups.push(() => proxy.stop());
  return proxy;
}

describe('relay', () => {
  it('joins Packer to the build VM directly, half-closing both ways, and logs the connection', async () => {
    const logs: RelayConnectionLog[] = [];
    const relay = await relayTo({ kind: 'direct', host: '127.0.0.1', port: echoPort }, logs);

    const reply = await talk(relay.port, 'ping');
    await new Promise((done) => setTimeout(done, 50));

    expect(reply).toBe('ping|eof');
    expect(logs[0]).toMatchObject({
      connId: 1,
      hop: `build VM 127.0.0.1:${echoPort}`,
      bytesToUpstream: 4,
      bytesFromUpstream: 8,
      end: 'closed',
    });
  });

  it('goes through isobuild-proxy to the build VM', async () => {
    const proxy = await proxyTo(echoPort);
    const relay = await relayTo({
      kind: 'proxy',
      host: '127.0.0.1',
      port: proxy.ports.ssh,
      vm: `127.0.0.1:${echoPort}`,
    });

    expect(await talk(relay.port, 'via proxy')).toBe('via proxy|eof');
  });

  it('names the build VM when it refuses', async () => {
    const relay = await relayTo({ kind: 'direct', host: '127.0.0.1', port: 1 });

    await talk(relay.port, 'x');

    expect(relay.lastFailure()).toBe('build VM 127.0.0.1:1 refused the connection');
  });

  it('names the proxy when the proxy refuses', async () => {
    const relay = await relayTo({ kind: 'proxy', host: '127.0.0.1', port: 1, vm: '10.1.0.4:22' });

    await talk(relay.port, 'x');

    expect(relay.lastFailure()).toBe('proxy 127.0.0.1:1 refused the connection');
  });

  it('says when the proxy answered but the build VM behind it did not', async () => {
    const proxy = await proxyTo(1);
    const relay = await relayTo({
      kind: 'proxy',
      host: '127.0.0.1',
      port: proxy.ports.ssh,
      vm: '127.0.0.1:1',
    });

    await talk(relay.port, 'x');
    await new Promise((done) => setTimeout(done, 50));

    expect(relay.lastFailure()).toBe(
      `proxy 127.0.0.1:${proxy.ports.ssh} accepted the connection but the build VM behind it (127.0.0.1:1) did not answer`,
    );
  });
});
