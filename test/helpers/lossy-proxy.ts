// A TCP proxy in front of an HTTP server that forwards every request but, for the requests it is told to
// pick, drops the response and resets the client: the request took effect, the client never hears so.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface LossyProxy {
  readonly port: number;
  /** How many responses were dropped so far. */
  dropped(): number;
  close(): Promise<void>;
}

/** `pick(requestHead, n)` is asked for each request (n counts matching requests from 1). */
export async function startLossyProxy(
  targetPort: number,
  pick: (requestHead: string) => boolean,
): Promise<LossyProxy> {
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    let dropNextResponse = false;
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      // Request lines start a request; bodies never start with an HTTP method and a path.
      if (/^(GET|PUT|HEAD|POST|DELETE) \//.test(text) && pick(text.split('\r\n')[0] ?? ''))
        dropNextResponse = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (dropNextResponse) {
        dropped++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
