/**
 * The forwarding server of isobuild-proxy: one listener per route (60001 → target:22, 60000 → target:5986),
 * a fixed target, a source allowlist, a connection cap, connect and idle timeouts, TCP_NODELAY on both legs,
 * half-close in both directions, backpressure through pipe(), a log line per connection, a health check
 * and a graceful drain.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ProxyConfig } from './config.js';
import { isAllowedSource } from './policy.js';

export interface RunningProxy {
  /** Actual listening ports by route name (useful when configured as 0). */
  readonly ports: Readonly<Record<string, number>>;
  readonly healthPort?: number;
  activeConnections(): number;
  /** Stops accepting, waits up to drainTimeoutMs for open connections, then closes the rest. */
  drain(): Promise<void>;
}

type EndReason =
  'closed' | 'idle' | 'target refused' | 'target timed out' | 'target error' | 'client error' | 'draining';

export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  const active = new Set<Socket>();
  let draining = false;
  let nextId = 1;
  const servers: Server[] = [];
  const ports: Record<string, number> = {};

  for (const route of config.routes) {
    const server = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      const connId = nextId++;
      const source = client.remoteAddress;
      const connLog = log.child({ connId, route: route.name, source });
      if (!isAllowedSource(source, config.allow)) {
        connLog.warn({ reason: 'source not allowed' }, 'connection refused');
        client.destroy();
        return;
      }
      if (draining || active.size >= config.maxConnections) {
        connLog.warn(
          { reason: draining ? 'draining' : 'connection cap', cap: config.maxConnections },
          'connection refused',
        );
        client.destroy();
        return;
      }
      forward(client, route.targetPort, connLog);
    });
    server.maxConnections = config.maxConnections * 2; // the cap above answers first; this bounds the kernel backlog work
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(route.listenPort, config.listenAddress, () => {
        server.off('error', reject);
        resolve();
      });
    });
    ports[route.name] = (server.address() as AddressInfo).port;
    servers.push(server);
  }

  function forward(client: Socket, targetPort: number, connLog: Logger): void {
    const started = Date.now();
    active.add(client);
    let reason: EndReason = 'closed';
    const upstream = connect({
      host: config.target,
      port: targetPort,
      noDelay: true,
      allowHalfOpen: true,
      keepAlive: true,
    });
    const connectTimer = setTimeout(() => finish('target timed out'), config.connectTimeoutMs);
    const finish = (why: EndReason): void => {
      if (reason === 'closed') reason = why;
      client.destroy();
      upstream.destroy();
    };
    upstream.once('connect', () => {
      clearTimeout(connectTimer);
      client.setKeepAlive(true, 30_000);
      for (const socket of [client, upstream]) socket.setTimeout(config.idleTimeoutMs, () => finish('idle'));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once('error', (error: NodeJS.ErrnoException) =>
      finish(error.code === 'ECONNREFUSED' ? 'target refused' : 'target error'),
    );
    client.once('error', () => finish('client error'));
    let closed = 0;
    const onClose = (): void => {
      if (++closed < 2) {
        // One side is gone for good: the other cannot continue a conversation.
        if (client.destroyed && !upstream.destroyed && !upstream.writableEnded) upstream.end();
        return;
      }
      clearTimeout(connectTimer);
      active.delete(client);
      const fields = {
        target: `${config.target}:${targetPort}`,
        bytesIn: client.bytesRead,
        bytesOut: client.bytesWritten,
        durationMs: Date.now() - started,
        end: reason,
      };
      if (reason === 'closed' || reason === 'idle' || reason === 'draining')
        connLog.info(fields, 'connection closed');
      else connLog.warn(fields, 'connection failed');
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
  }

  let health: HttpServer | undefined;
  if (config.healthPort >= 0) {
    health = createHttpServer((request, response) => {
      if (request.url !== '/healthz') {
        response.writeHead(404).end();
        return;
      }
      const body = {
        status: draining ? 'draining' : 'ok',
        connections: active.size,
        maxConnections: config.maxConnections,
        ports,
      };
      response
        .writeHead(draining ? 503 : 200, { 'content-type': 'application/json' })
        .end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => health!.listen(config.healthPort, config.listenAddress, resolve));
  }

  const healthPort = health ? (health.address() as AddressInfo).port : undefined;
  log.info(
    {
      target: config.target,
      ports,
      healthPort,
      allow: config.allow.map((c) => c.text),
      maxConnections: config.maxConnections,
    },
    'proxy listening',
  );
  return {
    ports,
    ...(healthPort !== undefined ? { healthPort } : {}),
    activeConnections: () => active.size,
    async drain() {
      draining = true;
      await Promise.all(
        servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
      );
      const deadline = Date.now() + config.drainTimeoutMs;
      while (active.size > 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      for (const socket of active) socket.destroy();
      await new Promise<void>((resolve) => (health ? health.close(() => resolve()) : resolve()));
      log.info({ leftOpen: active.size }, 'proxy stopped');
    },
  };
}
