/**
 * Downloads one artifact (https, http, file or Azure Blob Storage) to a file while hashing it, within the
 * limits that keep a hostile or stuck server from hanging the agent or filling the disk: a size cap; per
 * attempt an overall deadline and a stall deadline with a minimum of progress; up to 10 attempts with
 * backoff (as AIB does), all within a total deadline. Failures that no retry can fix end at once.
 */
import { createHash } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { open, realpath, rm } from 'node:fs/promises';
import { pseudoFilesystem } from '../pseudo-fs.js';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { hideUrlSecrets } from '../hide-query.js';
import { AttemptWatchdog } from './attempt-watchdog.js';
import { DownloadError, HINTS, formatDuration, networkError, statusError } from './download-error.js';
import { getFollowingRedirects } from './http-get.js';

export { DownloadError } from './download-error.js';

export interface DownloadLimits {
  readonly maxBytes: number;
  /** An attempt fails when less than `progressBytes` arrive for this long (the wait for a response included). */
  readonly stallTimeoutMs: number;
  /** What counts as progress within one stall window: a server dripping less is stalled. */
  readonly progressBytes: number;
  /** Bound on one attempt: connect, redirects, response and body. */
  readonly attemptTimeoutMs: number;
  /** Bound on all attempts together, the waits between them included. */
  readonly totalTimeoutMs: number;
  readonly maxAttempts: number;
  /** First retry delay; doubles per attempt up to 8 s. */
  readonly backoffMs: number;
}

/** The limits users set: --download-timeout, --download-stall-timeout, --download-total-timeout. */
export type DownloadDeadlines = Pick<
  DownloadLimits,
  'attemptTimeoutMs' | 'stallTimeoutMs' | 'totalTimeoutMs'
>;

export const DEFAULT_LIMITS: DownloadLimits = {
  maxBytes: 512 * 1024 * 1024,
  stallTimeoutMs: 60_000,
  progressBytes: 1024,
  attemptTimeoutMs: 5 * 60_000,
  totalTimeoutMs: 15 * 60_000,
  maxAttempts: 10,
  backoffMs: 500,
};

const MAX_BACKOFF_MS = 8000;

export interface DownloadResult {
  readonly sha256: string;
  readonly bytes: number;
  readonly attempts: number;
}

/** Gets a bearer token for Azure Blob Storage; it should stop when `signal` aborts. */
export type TokenProvider = (signal: AbortSignal) => Promise<string>;

export interface DownloadOptions {
  readonly limits?: Partial<DownloadLimits>;
  readonly signal?: AbortSignal;
  /** Bearer token source for Azure Blob Storage URLs without a SAS (DefaultAzureCredential by default). */
  readonly blobToken?: TokenProvider;
  readonly onRetry?: (attempt: number, error: DownloadError, delayMs: number) => void;
}

type Downloaded = Omit<DownloadResult, 'attempts'>;

/**
 * Rejects with the caller's abort reason on abort, else with a DownloadError whose message says what
 * happened on the last attempt, how many attempts over how long, why isobuild stopped, and what to do.
 */
export async function downloadArtifact(
  url: string,
  destination: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const signal = options.signal ?? new AbortController().signal;
  const started = Date.now();
  const totalDeadline = started + limits.totalTimeoutMs;
  const total = `the ${formatDuration(limits.totalTimeoutMs)} total download deadline`;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    let failure: DownloadError;
    try {
      const result = await attemptOnce(url, destination, limits, totalDeadline, signal, options.blobToken);
      return { ...result, attempts: attempt };
    } catch (error) {
      await rm(destination, { force: true });
      if (signal.aborted) throw signal.reason;
      if (!(error instanceof DownloadError)) throw error;
      failure = error;
    }
    const stop = (reason?: string): DownloadError =>
      finalError(failure, attempt, Date.now() - started, reason);
    if (!failure.retryable) throw stop();
    if (attempt >= limits.maxAttempts)
      throw stop(`the limit is ${limits.maxAttempts} attempt${limits.maxAttempts === 1 ? '' : 's'}`);
    const remaining = totalDeadline - Date.now();
    if (remaining <= 0) throw stop(`${total} passed`);
    const backoff = Math.min(limits.backoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
    const delay = Math.max(backoff, failure.retryAfterMs ?? 0);
    // Never sleep into the total deadline: stop now, and say so.
    if (delay >= remaining) {
      throw stop(
        delay > backoff
          ? `the server asked to wait ${formatDuration(delay)} (Retry-After), past ${total}`
          : `the next attempt, ${formatDuration(delay)} away, would start past ${total}`,
      );
    }
    options.onRetry?.(attempt, failure, delay);
    await sleep(delay, signal);
  }
}

function finalError(
  failure: DownloadError,
  attempts: number,
  elapsedMs: number,
  stop?: string,
): DownloadError {
  const tally = `${attempts} attempt${attempts === 1 ? '' : 's'} in ${formatDuration(elapsedMs)}`;
  const outcome =
    stop === undefined
      ? `a retry cannot fix this, so isobuild stopped after ${tally}`
      : `isobuild gave up after ${tally}: ${stop}`;
  const hint = failure.hint ? ` ${failure.hint}` : '';
  return new DownloadError(`${failure.message}; ${outcome}.${hint}`, false, failure.hint);
}

/** One attempt under its own watchdog; every failure comes out as a DownloadError (or the abort reason). */
async function attemptOnce(
  url: string,
  destination: string,
  limits: DownloadLimits,
  totalDeadline: number,
  signal: AbortSignal,
  blobToken: TokenProvider | undefined,
): Promise<Downloaded> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError(
      `${JSON.stringify(hideUrlSecrets(url))} is not a valid URL (check --rewrite-uri targets)`,
      false,
    );
  }
  if (parsed.protocol !== 'file:' && parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new DownloadError(`the ${parsed.protocol} scheme is not supported; use https, http or file`, false);
  }
  const attemptDeadline = Date.now() + limits.attemptTimeoutMs;
  const watchdog = new AttemptWatchdog(signal, {
    deadlineAt: Math.min(attemptDeadline, totalDeadline),
    deadlineText:
      totalDeadline < attemptDeadline
        ? `the ${formatDuration(limits.totalTimeoutMs)} total download deadline passed during this attempt`
        : `the attempt did not finish within ${formatDuration(limits.attemptTimeoutMs)}`,
    stallTimeoutMs: limits.stallTimeoutMs,
    progressBytes: limits.progressBytes,
  });
  try {
    return parsed.protocol === 'file:'
      ? await copyLocalFile(parsed, destination, limits, watchdog)
      : await fetchHttp(parsed, destination, limits, watchdog, blobToken);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof DownloadError) throw error;
    if (watchdog.failure) throw watchdog.failure;
    if (watchdog.phase === 'receiving') {
      const code = (error as { code?: string }).code;
      throw new DownloadError(
        `${watchdog.peer} broke off the transfer after ${watchdog.received()}${code ? ` (${code})` : ''}`,
        true,
        HINTS.network,
      );
    }
    throw networkError(error, watchdog.peer);
  } finally {
    watchdog.dispose();
  }
}

async function fetchHttp(
  url: URL,
  destination: string,
  limits: DownloadLimits,
  watchdog: AttemptWatchdog,
  blobToken: TokenProvider | undefined,
): Promise<Downloaded> {
  const headers: OutgoingHttpHeaders = { 'user-agent': 'isobuild' };
  // A bearer token only ever travels over https, to the storage account the template names.
  let bearer: string | undefined;
  if (url.protocol === 'https:' && isAzureBlobUrl(url) && !url.searchParams.has('sig')) {
    watchdog.enter('signing-in', url.host);
    bearer = await untilAborted((blobToken ?? defaultBlobToken)(watchdog.signal), watchdog.signal);
  }
  const headersFor = (hop: URL): OutgoingHttpHeaders =>
    bearer !== undefined && hop.origin === url.origin
      ? { ...headers, authorization: `Bearer ${bearer}`, 'x-ms-version': '2023-11-03' }
      : headers;
  const response = await getFollowingRedirects(url, headersFor, watchdog);
  const status = response.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    const detail = await storageErrorDetail(
      response,
      Math.min(limits.stallTimeoutMs, ERROR_BODY_WAIT_MS),
      watchdog.signal,
    );
    throw statusError(status, response.statusMessage ?? '', detail, firstHeader(response, 'retry-after'));
  }
  const declared = Number(response.headers['content-length'] ?? NaN);
  if (declared > limits.maxBytes) {
    response.destroy();
    throw new DownloadError(tooLarge(limits.maxBytes, declared), false);
  }
  watchdog.expect(Number.isFinite(declared) ? declared : undefined);
  return writeHashed(response, destination, limits, watchdog);
}

async function copyLocalFile(
  url: URL,
  destination: string,
  limits: DownloadLimits,
  watchdog: AttemptWatchdog,
): Promise<Downloaded> {
  const path = fileURLToPath(url);
  watchdog.enter('receiving', path);
  // Opened non-blocking and checked on the descriptor: a FIFO swapped in after a check cannot block us.
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DownloadError(
      code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path} (${code ?? 'error'})`,
      false,
    );
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) {
      throw new DownloadError(
        `${path} is a directory; a File step copies exactly one file (zip directories and expand them in a script)`,
        false,
      );
    }
    // Kernel and device files (/proc/self/environ, /dev/zero) are never artifacts, and could leak the
    // agent's secrets: judged by where the file really is, so a link in a mirror cannot point there.
    if (!info.isFile() || (await pseudoFilesystem(await realpath(path))) !== undefined) {
      throw new DownloadError(
        `${path} is not a regular file that can be an artifact; point the URL at a script or file`,
        false,
      );
    }
    if (info.size > limits.maxBytes) throw new DownloadError(tooLarge(limits.maxBytes, info.size), false);
    watchdog.expect(info.size);
    const stream = handle.createReadStream({ autoClose: true });
    handle = undefined; // the stream owns it now
    return await writeHashed(stream, destination, limits, watchdog);
  } finally {
    await handle?.close();
  }
}

/** Streams into `destination`, hashing and counting; stops at the size cap or when the watchdog aborts. */
async function writeHashed(
  source: Readable,
  destination: string,
  limits: DownloadLimits,
  watchdog: AttemptWatchdog,
): Promise<Downloaded> {
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      bytes += chunk.length;
      if (bytes > limits.maxBytes) {
        callback(new DownloadError(tooLarge(limits.maxBytes, bytes), false));
        return;
      }
      watchdog.progress(chunk.length);
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  await pipeline(source, meter, createWriteStream(destination, { mode: 0o644 }), {
    signal: watchdog.signal,
  });
  return { sha256: hash.digest('hex'), bytes };
}

export function isAzureBlobUrl(url: URL): boolean {
  return /\.blob\.core\.(windows\.net|usgovcloudapi\.net|chinacloudapi\.cn)$/i.test(url.hostname);
}

function firstHeader(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Azure Storage explains failures in an XML body (<Code>, <Message>); show the code, never the whole body. */
async function storageErrorDetail(
  response: IncomingMessage,
  waitMs: number,
  signal: AbortSignal,
): Promise<string> {
  const code = firstHeader(response, 'x-ms-error-code');
  const text = await readErrorBody(response, waitMs, signal);
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
const ERROR_BODY_WAIT_MS = 5000;

/**
 * The start of an error body, read for at most `waitMs`: the body is only a hint, so a huge or stalled one
 * must neither fill memory nor hang the attempt, and whatever arrived is used when the attempt ends.
 */
async function readErrorBody(
  response: IncomingMessage,
  waitMs: number,
  signal: AbortSignal,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      response.off('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= ERROR_BODY_BYTES) done();
    };
    const timer = setTimeout(done, waitMs);
    if (signal.aborted) return done();
    signal.addEventListener('abort', done, { once: true });
    response.on('data', onData).once('end', done).once('error', done).once('close', done);
  });
  response.destroy();
  return Buffer.concat(chunks).subarray(0, ERROR_BODY_BYTES).toString('utf8');
}

function tooLarge(limit: number, size: number): string {
  return `the artifact is ${size} bytes, over the ${limit}-byte limit (raise it with --max-artifact-mb if this is expected)`;
}

/** Waits for `promise`, but rejects with the abort reason as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Like timers/promises' setTimeout, but rejecting with the caller's abort reason. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function defaultBlobToken(signal: AbortSignal): Promise<string> {
  try {
    const { DefaultAzureCredential } = await import('@azure/identity');
    const token = await new DefaultAzureCredential().getToken('https://storage.azure.com/.default', {
      abortSignal: signal,
    });
    return token.token;
  } catch (error) {
    // A deadline or a cancel, not a missing identity: the caller words those.
    if (signal.aborted) throw error;
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new DownloadError(
      `this Azure Storage URL has no SAS, and no Azure identity is available to read it (${reason}). ` +
        'Add a SAS to the URL, or run where a managed identity or az login is available',
      false,
    );
  }
}
