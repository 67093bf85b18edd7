// A real node:http server on 127.0.0.1, port 0, for integration tests: it records every request and closes
// every connection (including ones a handler left hanging on purpose) when the test is done with it.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  /** Path and query, as the client sent them. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/**
 * Handles one request; `index` counts requests from 0. The return value is ignored, except that a rejected
 * promise (like a throw) answers 500 when no headers were sent yet, and destroys the response otherwise.
 */
export type TestHandler = (request: IncomingMessage, response: ServerResponse, index: number) => unknown;

export interface TestHttpServer {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:41325. */
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** Destroys open connections and stops listening; safe to call twice. */
  close(): Promise<void>;
}

export async function startHttpServer(handler: TestHandler): Promise<TestHttpServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((request, response) => {
    const index = requests.length;
    requests.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers });
    Promise.resolve()
      .then(() => handler(request, response, index))
      .catch((error: unknown) => {
        if (response.headersSent) response.destroy();
        else
          response
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`test handler failed: ${String(error)}`);
      });
  });
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
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
