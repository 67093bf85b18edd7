// A real node:http (or node:https) server on 127.0.0.1, port 0, for integration tests: it records every
// request and every connection, and closes every connection (including ones a handler left hanging on
// purpose) when the test is done with it.
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { selfSignedCertificate } from './self-signed-certificate.js';

export interface RecordedRequest {
  readonly method: string;
  /** Path and query, as the client sent them. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** Date.now() when the request arrived. */
  readonly at: number;
}

/**
 * Handles one request; `index` counts requests from 0. The return value is ignored, except that a rejected
 * promise (like a throw) answers 500 when no headers were sent yet, and destroys the response otherwise.
 */
export type TestHandler = (request: IncomingMessage, response: ServerResponse, index: number) => unknown;

export interface TestHttpServer {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:41325 (https://… with `tls`). */
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** TCP connections accepted so far (a failed TLS handshake counts, though it makes no request). */
  connections(): number;
  /** The server's self-signed certificate (PEM), with `tls`. */
  readonly certificate?: string;
  /** Destroys open connections and stops listening; safe to call twice. */
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Serve https with a fresh self-signed certificate for 127.0.0.1. */
  readonly tls?: boolean;
}

export async function startHttpServer(
  handler: TestHandler,
  options: TestServerOptions = {},
): Promise<TestHttpServer> {
  const requests: RecordedRequest[] = [];
  let connections = 0;
  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const index = requests.length;
    requests.push({
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
      at: Date.now(),
    });
    Promise.resolve()
      .then(() => handler(request, response, index))
      .catch((error: unknown) => {
        if (response.headersSent) response.destroy();
        else
          response
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`test handler failed: ${String(error)}`);
      });
  };
  const tls = options.tls ? selfSignedCertificate() : undefined;
  const server: Server = tls ? createTlsServer(tls, onRequest) : createServer(onRequest);
  server.on('connection', () => connections++);
  // A client that gives up on the certificate resets the handshake; that is the test's point, not an error.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    connections: () => connections,
    ...(tls ? { certificate: tls.cert } : {}),
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
