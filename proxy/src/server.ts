/**
 * The forwarding server of isobuild-proxy: one listener per route (60001 → target:22, 60000 → target:5986),
 * a fixed target, a source allowlist, a connection cap, connect and idle timeouts, TCP_NODELAY on both legs,
 * half-close in both directions, backpressure, a log line per connection, a health check and a graceful
 * drain. Nothing is served until every listener is bound.
 *
 * Memory: an idle connection costs two sockets and one small Link. The socket handlers are shared functions
 * that find their Link through the socket, and one sweep timer enforces every idle timeout, because per
 * connection closures, pipe() state, timers and child loggers were most of the memory an idle connection
 * took (docs/benchmarks.md, "Proxy memory").
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ProxyConfig, Route } from './config.js';
import { createHealthServer } from './health.js';
import { listenAll, type Listener } from './listeners.js';
import { isAllowedSource } from './policy.js';
import { formatEndpoint } from './values.js';

export interface RunningProxy {
  /** Actual listening ports by route name (useful when configured as 0). */
  readonly ports: Readonly<Record<string, number>>;
  readonly healthPort?: number;
  activeConnections(): number;
  /**
   * Stops accepting, waits up to drainTimeoutMs for open connections, then closes the rest. `signal` ends
   * the wait early (a second SIGTERM).
   */
  drain(signal?: AbortSignal): Promise<void>;
}

type EndReason =
  | 'closed'
  | 'idle'
  | 'target refused'
  | 'target timed out'
  | 'target error'
  | 'client error'
  | 'proxy out of resources'
  | 'draining';

/** Errors of this machine, not of the peer: out of descriptors or memory. */
const LOCAL_RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** What every connection shares: set once per proxy. */
interface Forwarding {
  readonly config: ProxyConfig;
  readonly log: Logger;
  readonly active: Set<Link>;
}

/** One client connection and its upstream leg. */
class Link {
  readonly started = Date.now();
  reason: EndReason = 'closed';
  /** The code of the first socket error, logged with the reason. */
  errorCode: string | undefined;
  connected = false;
  closedSides = 0;
  connectTimer: NodeJS.Timeout | undefined;
  /** Bytes read by both sockets at the last sweep, and since when that number has not moved. */
  bytesSeen = 0;
  quietSince = this.started;

  constructor(
    readonly id: number,
    readonly route: Route,
    readonly source: string | undefined,
    readonly client: Socket,
    readonly upstream: Socket,
    readonly forwarding: Forwarding,
  ) {}

  peerOf(socket: Socket): Socket {
    return socket === this.client ? this.upstream : this.client;
  }

  /** Ends both legs at once; the first reason given is the one logged. */
  finish(why: EndReason, error?: NodeJS.ErrnoException): void {
    if (this.reason === 'closed') {
      this.reason = why;
      this.errorCode = error?.code;
    }
    this.client.destroy();
    this.upstream.destroy();
  }
}

const LINK = Symbol('isobuild-proxy link');
type LinkedSocket = Socket & { [LINK]: Link };
const linkOf = (socket: Socket): Link => (socket as LinkedSocket)[LINK];

function onData(this: Socket, chunk: Buffer): void {
  const peer = linkOf(this).peerOf(this);
  if (peer.destroyed) this.destroy();
  else if (!peer.write(chunk)) this.pause(); // backpressure: resumed by the peer's 'drain'
}
function onDrain(this: Socket): void {
  linkOf(this).peerOf(this).resume();
}
function onEnd(this: Socket): void {
  const peer = linkOf(this).peerOf(this);
  if (!peer.destroyed) peer.end(); // half-close: pass the FIN on, keep the other direction open
}
function onClientError(this: Socket, error: NodeJS.ErrnoException): void {
  const local = LOCAL_RESOURCE_ERRORS.has(error.code ?? '');
  linkOf(this).finish(local ? 'proxy out of resources' : 'client error', error);
}
function onUpstreamError(this: Socket, error: NodeJS.ErrnoException): void {
  const link = linkOf(this);
  if (LOCAL_RESOURCE_ERRORS.has(error.code ?? '')) link.finish('proxy out of resources', error);
  else if (!link.connected && error.code === 'ECONNREFUSED') link.finish('target refused', error);
  else link.finish('target error', error);
}
function onUpstreamConnect(this: Socket): void {
  const link = linkOf(this);
  clearTimeout(link.connectTimer);
  link.connectTimer = undefined;
  link.connected = true;
  link.quietSince = Date.now();
  link.client.setKeepAlive(true, 30_000);
  link.client.resume();
}
function onClose(this: Socket): void {
  const link = linkOf(this);
  if (++link.closedSides < 2) {
    // One side is gone for good: the other cannot continue a conversation.
    const peer = link.peerOf(this);
    if (!peer.destroyed && !peer.writableEnded) peer.end();
    return;
  }
  clearTimeout(link.connectTimer);
  const { config, log, active } = link.forwarding;
  active.delete(link);
  const fields = {
    connId: link.id,
    route: link.route.name,
    source: link.source,
    target: formatEndpoint(config.target, link.route.targetPort),
    bytesIn: link.client.bytesRead,
    bytesOut: link.client.bytesWritten,
    durationMs: Date.now() - link.started,
    end: link.reason,
    ...(link.errorCode ? { code: link.errorCode } : {}),
  };
  if (link.reason === 'closed' || link.reason === 'idle' || link.reason === 'draining')
    log.info(fields, 'connection closed');
  else log.warn(fields, 'connection failed');
}

function forward(forwarding: Forwarding, id: number, route: Route, client: Socket): void {
  const { config, active } = forwarding;
  const upstream = connect({
    host: config.target,
    port: route.targetPort,
    noDelay: true,
    allowHalfOpen: true,
    keepAlive: true,
  });
  const link = new Link(id, route, client.remoteAddress, client, upstream, forwarding);
  active.add(link);
  for (const socket of [client, upstream]) {
    (socket as LinkedSocket)[LINK] = link;
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('end', onEnd);
    socket.on('close', onClose);
  }
  client.on('error', onClientError);
  upstream.on('error', onUpstreamError);
  upstream.once('connect', onUpstreamConnect);
  link.connectTimer = setTimeout(() => link.finish('target timed out'), config.connectTimeoutMs);
}

/**
 * Closes connections through which no byte moved for idleTimeoutMs. One timer for all connections instead of
 * one per socket; a connection is closed between idleTimeoutMs and idleTimeoutMs + 10 % (at most 1 min) late.
 */
function startIdleSweep(config: ProxyConfig, active: Set<Link>): NodeJS.Timeout {
  const every = Math.min(Math.max(config.idleTimeoutMs / 10, 100), 60_000);
  return setInterval(() => {
    const now = Date.now();
    for (const link of active) {
      if (!link.connected) continue; // the connect timeout covers it
      const bytes = link.client.bytesRead + link.upstream.bytesRead;
      if (bytes !== link.bytesSeen) {
        link.bytesSeen = bytes;
        link.quietSince = now;
      } else if (now - link.quietSince >= config.idleTimeoutMs) link.finish('idle');
    }
  }, every).unref();
}

export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  const active = new Set<Link>();
  const forwarding: Forwarding = { config, log, active };
  let serving = false;
  let draining = false;
  let nextId = 1;
  const ports: Record<string, number> = {};

  const listeners: Listener[] = config.routes.map((route) => {
    const server: Server = createServer(
      { noDelay: true, allowHalfOpen: true, pauseOnConnect: true },
      (client) => {
        if (!serving) {
          client.destroy(); // another listener may still fail to bind: serve nothing until all do
          return;
        }
        const connId = nextId++;
        const refuse = (reason: string): void => {
          log.warn(
            { connId, route: route.name, source: client.remoteAddress, reason, cap: config.maxConnections },
            'connection refused',
          );
          client.destroy();
        };
        if (!isAllowedSource(client.remoteAddress, config.allow)) refuse('source not allowed');
        else if (draining) refuse('draining');
        else if (active.size >= config.maxConnections) refuse('connection cap');
        else forward(forwarding, connId, route, client);
      },
    );
    server.maxConnections = config.maxConnections * 2; // the cap above answers first; this bounds the kernel backlog work
    return { name: route.name, option: `${route.name}-port`, port: route.listenPort, server };
  });
  const health =
    config.healthPort >= 0
      ? createHealthServer(
          () => ({
            status: draining ? 'draining' : 'ok',
            connections: active.size,
            maxConnections: config.maxConnections,
            ports,
          }),
          () => serving,
        )
      : undefined;
  if (health)
    listeners.push({ name: 'health', option: 'health-port', port: config.healthPort, server: health });

  const bound = await listenAll(config.listenAddress, listeners);
  for (const route of config.routes) ports[route.name] = bound[route.name]!;
  for (const listener of listeners)
    // After binding, an 'error' is one failed accept (libuv already absorbs EMFILE): report it, keep serving.
    listener.server.on('error', (error: NodeJS.ErrnoException) =>
      log.warn({ listener: listener.name, code: error.code }, 'accept failed'),
    );
  const sweep = startIdleSweep(config, active);
  serving = true;

  const healthPort = bound.health;
  log.info(
    {
      target: config.target,
      ports,
      healthPort,
      allow: config.allow === 'any' ? 'any' : config.allow.map((c) => c.text),
      maxConnections: config.maxConnections,
    },
    'proxy listening',
  );
  return {
    ports,
    ...(healthPort !== undefined ? { healthPort } : {}),
    activeConnections: () => active.size,
    async drain(signal?: AbortSignal) {
      draining = true;
      const routeServers = listeners.filter((l) => l.server !== health).map((l) => l.server);
      // close() stops accepting at once; its callback waits for every connection, so it is awaited last.
      const closed = routeServers.map(
        (server) => new Promise<void>((resolve) => server.close(() => resolve())),
      );
      const deadline = Date.now() + config.drainTimeoutMs;
      while (active.size > 0 && Date.now() < deadline && !signal?.aborted)
        await new Promise((resolve) => setTimeout(resolve, 50));
      const leftOpen = active.size;
      for (const link of active) link.finish('draining');
      clearInterval(sweep);
      await Promise.all(closed);
      if (health) {
        health.closeAllConnections();
        await new Promise<void>((resolve) => health.close(() => resolve()));
      }
      log.info({ leftOpen }, 'proxy stopped');
    },
  };
}
