/**
 * Downloads one artifact (https, http, file or Azure Blob Storage) to a file while hashing it, with the
 * limits that keep a hostile or stuck server from hanging the agent or filling the disk: a size cap,
 * a stall timeout, a per-attempt deadline, and up to 10 attempts with backoff (as AIB does).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hideQuery } from '../hide-query.js';

export interface DownloadLimits {
  readonly maxBytes: number;
  /** Abort an attempt when no byte arrives for this long. */
  readonly stallTimeoutMs: number;
  /** Abort an attempt that takes longer than this in total. */
  readonly attemptTimeoutMs: number;
  readonly maxAttempts: number;
  /** First retry delay; doubles per attempt up to 8 s. */
  readonly backoffMs: number;
}

export const DEFAULT_LIMITS: DownloadLimits = {
  maxBytes: 512 * 1024 * 1024,
  stallTimeoutMs: 60_000,
  attemptTimeoutMs: 15 * 60_000,
  maxAttempts: 10,
  backoffMs: 500,
};

export interface DownloadResult {
  readonly sha256: string;
  readonly bytes: number;
  readonly attempts: number;
}

/** A download failure with a sentence a user can act on; `retryable` drives the attempt loop. */
export class DownloadError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export type TokenProvider = () => Promise<string>;

export interface DownloadOptions {
  readonly limits?: Partial<DownloadLimits>;
  readonly signal?: AbortSignal;
  /** Bearer token source for Azure Blob Storage URLs without a SAS (DefaultAzureCredential by default). */
  readonly blobToken?: TokenProvider;
  readonly onRetry?: (attempt: number, error: DownloadError, delayMs: number) => void;
}

export async function downloadArtifact(
  url: string,
  destination: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const signal = options.signal ?? new AbortController().signal;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      const result = await downloadOnce(url, destination, limits, signal, options.blobToken);
      return { ...result, attempts: attempt };
    } catch (error) {
      await rm(destination, { force: true });
      if (signal.aborted) throw signal.reason;
      const failure =
        error instanceof DownloadError ? error : new DownloadError(describeNetworkError(error), true);
      if (!failure.retryable || attempt >= limits.maxAttempts) {
        const attempts = attempt > 1 ? ` (after ${attempt} attempts)` : '';
        throw new DownloadError(`${failure.message}${attempts}`, false);
      }
      const delay = Math.min(limits.backoffMs * 2 ** (attempt - 1), 8000);
      options.onRetry?.(attempt, failure, delay);
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        // timers/promises rejects with a generic AbortError; callers get the reason they aborted with.
        throw signal.reason;
      }
    }
  }
}

async function downloadOnce(
  url: string,
  destination: string,
  limits: DownloadLimits,
  signal: AbortSignal,
  blobToken: TokenProvider | undefined,
): Promise<Omit<DownloadResult, 'attempts'>> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError(
      `${JSON.stringify(hideQuery(url))} is not a valid URL (check --rewrite-uri targets)`,
      false,
    );
  }
  if (parsed.protocol === 'file:') return copyLocalFile(parsed, destination, limits, signal);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new DownloadError(`the ${parsed.protocol} scheme is not supported; use https, http or file`, false);
  }
  const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(limits.attemptTimeoutMs)]);
  const headers: Record<string, string> = { 'user-agent': 'isobuild' };
  // A bearer token only ever travels over https.
  if (parsed.protocol === 'https:' && isAzureBlobUrl(parsed) && !parsed.searchParams.has('sig')) {
    headers.authorization = `Bearer ${await (blobToken ?? defaultBlobToken)()}`;
    headers['x-ms-version'] = '2023-11-03';
  }
  let response: Response;
  try {
    response = await fetch(parsed, { headers, signal: attemptSignal, redirect: 'follow' });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (attemptSignal.aborted)
      throw new DownloadError(`no response within ${limits.attemptTimeoutMs / 1000} s`, true);
    throw new DownloadError(describeNetworkError(error), true);
  }
  if (!response.ok) {
    const detail = await storageErrorDetail(response, limits.stallTimeoutMs);
    const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
    throw new DownloadError(
      `the server answered HTTP ${response.status} ${response.statusText}${detail}`,
      retryable,
    );
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limits.maxBytes) {
    await response.body?.cancel();
    throw new DownloadError(tooLarge(limits.maxBytes, declared), false);
  }
  if (!response.body) throw new DownloadError('the server sent no body', true);
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  return writeHashed(body, destination, limits, attemptSignal, signal);
}

async function copyLocalFile(
  url: URL,
  destination: string,
  limits: DownloadLimits,
  signal: AbortSignal,
): Promise<Omit<DownloadResult, 'attempts'>> {
  const path = fileURLToPath(url);
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DownloadError(
      code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path} (${code ?? 'error'})`,
      false,
    );
  }
  if (info.isDirectory()) {
    throw new DownloadError(
      `${path} is a directory; a File step copies exactly one file (zip directories and expand them in a script)`,
      false,
    );
  }
  // Kernel and device files (/proc/self/environ, /dev/zero) are never artifacts, and could leak the agent's secrets.
  if (!info.isFile() || /^\/(proc|sys|dev)(\/|$)/.test(path)) {
    throw new DownloadError(
      `${path} is not a regular file that can be an artifact; point the URL at a script or file`,
      false,
    );
  }
  if (info.size > limits.maxBytes) throw new DownloadError(tooLarge(limits.maxBytes, info.size), false);
  return writeHashed(createReadStream(path), destination, limits, signal, signal);
}

/** Streams into `destination`, hashing and counting; aborts on the size cap or a stall. */
async function writeHashed(
  source: Readable,
  destination: string,
  limits: DownloadLimits,
  attemptSignal: AbortSignal,
  outerSignal: AbortSignal,
): Promise<Omit<DownloadResult, 'attempts'>> {
  const hash = createHash('sha256');
  let bytes = 0;
  let stalled = false;
  const stall = new AbortController();
  let timer = setTimeout(() => ((stalled = true), stall.abort()), limits.stallTimeoutMs);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      bytes += chunk.length;
      if (bytes > limits.maxBytes) {
        callback(new DownloadError(tooLarge(limits.maxBytes, bytes), false));
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(() => ((stalled = true), stall.abort()), limits.stallTimeoutMs);
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(source, meter, createWriteStream(destination, { mode: 0o644 }), {
      signal: AbortSignal.any([attemptSignal, stall.signal]),
    });
  } catch (error) {
    if (error instanceof DownloadError) throw error;
    if (outerSignal.aborted) throw outerSignal.reason;
    if (stalled)
      throw new DownloadError(
        `the transfer stalled: no data for ${limits.stallTimeoutMs / 1000} s after ${bytes} bytes`,
        true,
      );
    if (attemptSignal.aborted)
      throw new DownloadError(`the transfer did not finish within ${limits.attemptTimeoutMs / 1000} s`, true);
    throw new DownloadError(describeNetworkError(error), true);
  } finally {
    clearTimeout(timer);
  }
  return { sha256: hash.digest('hex'), bytes };
}

export function isAzureBlobUrl(url: URL): boolean {
  return /\.blob\.core\.(windows\.net|usgovcloudapi\.net|chinacloudapi\.cn)$/i.test(url.hostname);
}

/** Azure Storage explains failures in an XML body (<Code>, <Message>); show the code, never the whole body. */
async function storageErrorDetail(response: Response, waitMs: number): Promise<string> {
  const code = response.headers.get('x-ms-error-code');
  const text = await readErrorBody(response, waitMs);
  const xmlCode = /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1];
  const found = code ?? xmlCode;
  const hints: Record<string, string> = {
    BlobNotFound: 'check the blob name and path',
    ContainerNotFound: 'check the container name',
    AuthenticationFailed: 'the SAS token is invalid or expired',
    AuthorizationPermissionMismatch:
      'the identity needs the Storage Blob Data Reader role on the blob or container',
    AuthorizationFailure:
      'the storage account refuses this request (firewall, private endpoint or missing role)',
    NoAuthenticationInformation:
      'the blob is private: add a SAS to the URL or give the identity Storage Blob Data Reader',
  };
  if (!found) return '';
  const hint = Object.hasOwn(hints, found) ? `: ${hints[found]}` : '';
  return ` (${found}${hint})`;
}

const ERROR_BODY_BYTES = 4096;

/**
 * The start of an error body, read within `waitMs`: the body is only a hint, so a huge or stalled one must
 * neither fill memory nor hang the attempt. Failures to read it change nothing.
 */
async function readErrorBody(response: Response, waitMs: number): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<undefined>(
    (resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)),
  );
  try {
    while (size < ERROR_BODY_BYTES) {
      const next = await Promise.race([reader.read(), deadline]);
      if (!next || next.done) break;
      const chunk = Buffer.from(next.value as Uint8Array);
      chunks.push(chunk);
      size += chunk.length;
    }
  } catch {
    // Keep whatever arrived.
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, ERROR_BODY_BYTES).toString('utf8');
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (error as { code?: string }).code;
  const known: Record<string, string> = {
    ENOTFOUND: 'the host name does not resolve (DNS)',
    EAI_AGAIN: 'DNS lookup failed temporarily',
    ECONNREFUSED: 'the connection was refused',
    ECONNRESET: 'the connection was reset',
    ETIMEDOUT: 'the connection timed out',
    EHOSTUNREACH: 'the host is unreachable',
    ENETUNREACH: 'the network is unreachable',
    UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
    UND_ERR_SOCKET: 'the connection broke',
    CERT_HAS_EXPIRED: 'the server TLS certificate has expired',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'the server uses a self-signed TLS certificate',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server TLS certificate cannot be verified',
  };
  if (code && Object.hasOwn(known, code)) return `${known[code]} (${code})`;
  const message = cause?.message ?? (error instanceof Error ? error.message : String(error));
  return code ? `${message} (${code})` : message;
}

function tooLarge(limit: number, size: number): string {
  return `the artifact is ${size} bytes, over the ${limit}-byte limit (raise it with --max-artifact-mb if this is expected)`;
}

async function defaultBlobToken(): Promise<string> {
  try {
    const { DefaultAzureCredential } = await import('@azure/identity');
    const token = await new DefaultAzureCredential().getToken('https://storage.azure.com/.default');
    return token.token;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new DownloadError(
      `this Azure Storage URL has no SAS, and no Azure identity is available to read it (${reason}). ` +
        'Add a SAS to the URL, or run where a managed identity or az login is available',
      false,
    );
  }
}
