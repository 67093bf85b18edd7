/**
 * A TCP forwarder between a client and a server (Azurite) that can fail the way cloud networks do:
 *  - freeze('drop'): a dead firewall or NSG. Nothing is closed, nothing is answered: bytes in both
 *    directions are read and thrown away, closes are not passed on, new connections are accepted and
 *    then hear nothing. thaw() forwards again (and passes on the closes it held back); what was dropped
 *    is gone, so a request caught in the freeze never gets its reply.
 *  - freeze('hold'): the same silence, but bytes are left unread (TCP windows close, as with packets that
 *    are retransmitted until the path is back); thaw() delivers them late, so a request the client gave
 *    up on can still land afterwards.
 *  - freeze('blackhole'): like 'drop', but the connections caught in it stay dead after thaw() (a NAT or
 *    load balancer that lost their flow state); only new connections work again. A client that does not
 *    abandon a stuck request never recovers.
 *  - freezeExisting(): only the connections open now go silent (a load balancer that lost its flow
 *    table); new connections work. admitNew() after freeze() has the same effect.
 *  - outage('reset'): every open connection is reset and every new one is reset at once, until restore().
 * It counts connections and remembers, per connection, when the client closed it: a client that
 * abandons a stuck request with its socket shows up as a close during the freeze.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export type FreezeMode = 'drop' | 'hold' | 'blackhole';

export interface ForwardedConnection {
  readonly id: number;
  readonly openedAt: number;
  /** When the client side closed (ms since epoch), if it did. */
  clientClosedAt?: number;
  /** Request bytes the server received on this connection. */
  bytesToServer: number;
}

export interface FreezingForwarder {
  readonly port: number;
  /** Every connection accepted so far, in order. */
  readonly connections: readonly ForwardedConnection[];
  freeze(mode?: FreezeMode): void;
  /** Silences only the connections open now, in the given mode; later ones work. */
  freezeExisting(mode?: FreezeMode): void;
  /** New connections work again; the frozen ones stay frozen until thaw(). */
  admitNew(): void;
  thaw(): void;
  /** Resets every connection and every new one until restore(): refused or reset, as when a host is down. */
  outage(): void;
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly info: ForwardedConnection;
  readonly client: Socket;
  readonly upstream: Socket;
  frozen: FreezeMode | undefined;
  /** Closes seen while frozen, passed on at thaw. */
  clientEnded: boolean;
  upstreamEnded: boolean;
}

export async function startFreezingForwarder(
  targetPort: number,
  targetHost = '127.0.0.1',
): Promise<FreezingForwarder> {
  const pairs = new Set<Pair>();
  const connections: ForwardedConnection[] = [];
  let frozen: FreezeMode | undefined;
  let resetting = false;

  const forward = (pair: Pair, from: Socket, to: Socket, toServer: boolean): void => {
    from.on('data', (chunk: Buffer) => {
      // Read and thrown away: the silence of a dead path.
      if (pair.frozen === 'drop' || pair.frozen === 'blackhole') return;
      if (toServer) pair.info.bytesToServer += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (pair.frozen !== 'hold') from.resume();
        });
      }
    });
    from.on('end', () => {
      if (toServer) {
        pair.clientEnded = true;
        pair.info.clientClosedAt ??= Date.now();
      } else pair.upstreamEnded = true;
      if (!pair.frozen) to.end();
    });
  };

  const setFrozen = (pair: Pair, mode: FreezeMode | undefined): void => {
    pair.frozen = mode;
    if (mode === 'hold') {
      pair.client.pause();
      pair.upstream.pause();
      return;
    }
    pair.client.resume();
    pair.upstream.resume();
    if (mode === undefined) {
      if (pair.clientEnded) pair.upstream.end();
      if (pair.upstreamEnded) pair.client.end();
    }
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    if (resetting) {
      client.resetAndDestroy();
      return;
    }
    const info: ForwardedConnection = { id: connections.length, openedAt: Date.now(), bytesToServer: 0 };
    connections.push(info);
    const upstream = connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    const pair: Pair = {
      info,
      client,
      upstream,
      frozen: undefined,
      clientEnded: false,
      upstreamEnded: false,
    };
    pairs.add(pair);
    forward(pair, client, upstream, true);
    forward(pair, upstream, client, false);
    if (frozen) setFrozen(pair, frozen);
    client.once('close', () => {
      info.clientClosedAt ??= Date.now();
      // A dead path does not carry the close either; the server hears of it after the thaw.
      if (!pair.frozen) upstream.destroy();
    });
    upstream.once('close', () => {
      if (!pair.frozen) client.destroy();
    });
    const gone = (): void => {
      if (client.destroyed && upstream.destroyed) pairs.delete(pair);
    };
    client.on('error', () => undefined).on('close', gone);
    upstream.on('error', () => undefined).on('close', gone);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: (server.address() as AddressInfo).port,
    connections,
    freeze(mode = 'drop') {
      frozen = mode;
      for (const pair of pairs) setFrozen(pair, mode);
    },
    freezeExisting(mode = 'drop') {
      for (const pair of pairs) setFrozen(pair, mode);
    },
    admitNew() {
      frozen = undefined;
    },
    thaw() {
      frozen = undefined;
      for (const pair of pairs) {
        if (pair.frozen === 'blackhole') continue;
        setFrozen(pair, undefined);
        // Sides that closed during the freeze: their close travels now.
        if (pair.client.destroyed) pair.upstream.end();
        if (pair.upstream.destroyed) pair.client.destroy();
      }
    },
    outage() {
      resetting = true;
      for (const pair of pairs) {
        pair.client.resetAndDestroy();
        pair.upstream.destroy();
      }
    },
    restore() {
      resetting = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.client.destroy();
          pair.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
