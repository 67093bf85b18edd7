/**
 * The agent's relay: Packer's communicator connects to it on loopback, and it joins each connection to a
 * fresh upstream connection, to the build VM directly or through the proxy (AIB's topologies). TCP_NODELAY
 * on both legs (Nagle costs ~0.7 s per build, packer-notes §4), half-close both ways, backpressure through
 * pipe(), idle timeout, keep-alive, a log line per connection, and failures described by hop.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export type Hop =
  | { readonly kind: 'direct'; readonly host: string; readonly port: number }
  /** Through isobuild-proxy (AIB's proxy VM): `host:port` is the proxy, `vm` describes the VM behind it. */
  | { readonly kind: 'proxy'; readonly host: string; readonly port: number; readonly vm: string };

export interface RelayConnectionLog {
  readonly connId: number;
  readonly hop: string;
  readonly bytesToUpstream: number;
  readonly bytesFromUpstream: number;
  readonly durationMs: number;
  readonly end: string;
}

export interface RelayOptions {
  readonly upstream: Hop;
  readonly connectTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly onConnection?: (entry: RelayConnectionLog) => void;
}

export interface Relay {
  readonly host: '127.0.0.1';
  readonly port: number;
  /**
   * The most recent upstream failure, worded by hop; readiness errors use it to say where things broke.
   * An upstream connect still waiting for an answer counts: the client gave up before the relay did.
   */
  lastFailure(): string | undefined;
  close(): Promise<void>;
}

export function describeHop(hop: Hop): string {
  return hop.kind === 'direct' ? `build VM ${hop.host}:${hop.port}` : `proxy ${hop.host}:${hop.port}`;
}

export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { upstream } = options;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 2 * 3_600_000;
  const hop = describeHop(upstream);
  const open = new Set<Socket>();
  /** Start times, by connection id, of upstream connects that have not succeeded or failed yet. */
  const connecting = new Map<number, number>();
  let nextId = 1;
  let failure: string | undefined;

  const server = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const connId = nextId++;
    const started = Date.now();
    let end = 'closed';
    let upstreamConnected = false;
    const remote = connect({
      host: upstream.host,
      port: upstream.port,
      noDelay: true,
      allowHalfOpen: true,
      keepAlive: true,
    });
    open.add(client).add(remote);
    connecting.set(connId, started);
    /** Ends the connection; `upstream` failures are what lastFailure() reports (not Packer's own resets). */
    const fail = (why: string, upstream = true): void => {
      if (end === 'closed') end = why;
      if (upstream) failure = why;
      connecting.delete(connId);
      client.destroy();
      remote.destroy();
    };
    const timer = setTimeout(
      () => fail(`${hop} timed out (no answer within ${connectTimeoutMs / 1000} s)`),
      connectTimeoutMs,
    );
    remote.once('connect', () => {
      clearTimeout(timer);
      connecting.delete(connId);
      upstreamConnected = true;
      client.setKeepAlive(true, 30_000);
      for (const socket of [client, remote])
        socket.setTimeout(idleTimeoutMs, () => fail(`idle for ${idleTimeoutMs / 1000} s`));
      client.pipe(remote);
      remote.pipe(client);
      client.resume();
    });
    // A proxy that accepts and hangs up (or resets) without a byte could not reach the VM behind it.
    const vmBehindProxySilent = (): boolean =>
      upstream.kind === 'proxy' && upstreamConnected && remote.bytesRead === 0;
    const silentVm =
      upstream.kind === 'proxy'
        ? `${hop} accepted the connection but the build VM behind it (${upstream.vm}) did not answer`
        : '';
    remote.once('error', (error: NodeJS.ErrnoException) =>
      fail(vmBehindProxySilent() ? silentVm : upstreamError(error, hop, upstreamConnected)),
    );
    client.once('error', () => fail('Packer side closed with an error', false));
    remote.once('end', () => {
      // A proxy that accepts and hangs up without a byte could not reach the VM behind it.
      if (vmBehindProxySilent() && end === 'closed') {
        failure = silentVm;
        end = failure;
      }
    });
    let closed = 0;
    const onClose = (): void => {
      if (++closed < 2) return;
      clearTimeout(timer);
      connecting.delete(connId);
      open.delete(client);
      open.delete(remote);
      options.onConnection?.({
        connId,
        hop,
        bytesToUpstream: remote.bytesWritten,
        bytesFromUpstream: remote.bytesRead,
        durationMs: Date.now() - started,
        end,
      });
    };
    client.once('close', onClose);
    remote.once('close', onClose);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    lastFailure: () => {
      if (connecting.size === 0) return failure;
      const waited = (Date.now() - Math.min(...connecting.values())) / 1000;
      return `${hop} did not answer (no reply to the last connection attempt within ${waited.toFixed(1)} s: the VM may be down, or a firewall/NSG drops the packets)`;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function upstreamError(error: NodeJS.ErrnoException, hop: string, connected: boolean): string {
  if (connected) return `${hop} closed the connection (${error.code ?? error.message})`;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `${hop} refused the connection`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${hop} is unreachable (${error.code})`;
    case 'ETIMEDOUT':
      return `${hop} timed out`;
    default:
      return `${hop} failed: ${error.code ?? error.message}`;
  }
}
