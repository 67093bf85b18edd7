/** The health check: GET /healthz answers 200 with the proxy's state while it serves, 503 while it drains. */
import { createServer, type Server } from 'node:http';

export interface HealthState {
  readonly status: 'ok' | 'draining';
  readonly connections: number;
  readonly maxConnections: number;
  readonly ports: Readonly<Record<string, number>>;
}

/** `serving()` is false until every listener is bound: until then requests are cut off, not answered. */
export function createHealthServer(state: () => HealthState, serving: () => boolean): Server {
  const server = createServer((request, response) => {
    if (!serving()) {
      request.socket.destroy();
      return;
    }
    if (request.url !== '/healthz') {
      response.writeHead(404).end();
      return;
    }
    const body = state();
    response
      .writeHead(body.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' })
      .end(JSON.stringify(body));
  });
  // A health probe never needs more than a few seconds; a client that holds a socket open must not pin it.
  server.requestTimeout = 5000;
  server.headersTimeout = 5000;
  server.keepAliveTimeout = 1000;
  return server;
}
