/**
 * Uploads a file to a Windows VM over isobuild's WinRM client, at wire speed rather than Packer's
 * one-command-per-chunk pace: one PowerShell writer per byte range, fed through its stdin (WS-Man Send) in
 * envelopes as large as the server allows, each writer hashing what it writes. The upload resolves only
 * when every range's SHA-256, computed on the VM, matches the local file's. A failure or a cancel
 * terminates the writers, removes the partial file and deletes every shell, within a cleanup budget.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import {
  EnvelopeTooLargeError,
  WinRmClient,
  type CommandWithInput,
  type WinRmClientOptions,
} from './client.js';
import { decodeClixml, encodePowerShell } from './powershell.js';
import type { WinRmTarget } from './transport.js';
import {
  envelopeLimit,
  FALLBACK_ENVELOPE_BYTES,
  fileBytesPerSend,
  frameLines,
  splitRanges,
  stdinCapacity,
  type ByteRange,
} from './upload-framing.js';
import { checkRemotePath, parseWriterReport, removalScript, writerScript } from './upload-scripts.js';

export interface UploadProgress {
  readonly bytesDone: number;
  readonly totalBytes: number;
  /** Average since the upload started (shell and writer start-up included), for an honest ETA. */
  readonly bytesPerSecond: number;
  readonly elapsedMs: number;
}

export interface UploadOptions {
  readonly signal?: AbortSignal;
  /** After every acknowledged Send, and once at the end. */
  readonly onProgress?: (progress: UploadProgress) => void;
  /** Writers (each in a shell and on a connection of its own) for byte ranges of the file; see DEFAULT_PARALLEL. */
  readonly parallel?: number;
  /** What a failure or cancel may spend terminating writers, removing the partial file, deleting shells. */
  readonly cleanupTimeoutMs?: number;
  /** For the clients the upload opens itself (when given a target). */
  readonly client?: WinRmClientOptions;
}

export interface UploadResult {
  readonly bytes: number;
  /** Each range as written and hashed on the VM. */
  readonly ranges: readonly (ByteRange & { readonly sha256: string })[];
  /** The envelope limit the upload ended with, and how many Sends the server refused as too large. */
  readonly envelopeBytes: number;
  readonly envelopeFaults: number;
  readonly elapsedMs: number;
}

export type UploadFailure =
  'invalid-path' | 'hash-mismatch' | 'writer-failed' | 'envelope-too-small' | 'winrm';

export class UploadError extends Error {
  constructor(
    readonly kind: UploadFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UploadError';
  }
}

/**
 * Writers per file, by measurement (docs/benchmarks.md, "Windows File uploads over WinRM"): one shell's Sends
 * are sequential, so a second writer overlaps one's round trip with the other's work (1.3× on loopback);
 * more writers gained nothing consistent.
 */
export const DEFAULT_PARALLEL = 2;
/** Below this a range is not worth another PowerShell start (~0.4 s on Windows). */
export const MIN_RANGE_BYTES = 16 * 1024 * 1024;
const DEFAULT_CLEANUP_MS = 10_000;
/** How long a writer whose stdin broke may take to say why. */
const WRITER_VERDICT_MS = 5_000;

export async function uploadFile(
  connection: WinRmClient | WinRmTarget,
  localPath: string,
  remotePath: string,
  options: UploadOptions = {},
): Promise<UploadResult> {
  const problem = checkRemotePath(remotePath);
  if (problem) throw new UploadError('invalid-path', `cannot upload ${localPath}: ${problem}`);
  const { signal } = options;
  signal?.throwIfAborted();
  const started = performance.now();
  const opened: WinRmClient[] = [];
  const first = connection instanceof WinRmClient ? connection : new WinRmClient(connection, options.client);
  if (first !== connection) opened.push(first);
  let file: FileHandle;
  try {
    file = await open(localPath, 'r');
  } catch (error) {
    for (const client of opened) client.close();
    throw error;
  }
  const writers: CommandWithInput[] = [];
  const stop = new AbortController();
  const halt = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  try {
    const size = (await file.stat()).size;
    const envelope = new EnvelopeBudget(envelopeLimit(await first.serverMaxEnvelopeBytes(halt)));
    const ranges = splitRanges(size, options.parallel ?? DEFAULT_PARALLEL, MIN_RANGE_BYTES);
    const meter = new ProgressMeter(size, started, options.onProgress);
    const job: RangeJob = { file, localPath, remotePath, size, envelope, meter, writers, signal: halt };
    const outcomes = await Promise.allSettled(
      ranges.map(async (range, index) => {
        const client = index === 0 ? first : first.sibling();
        if (client !== first) opened.push(client);
        try {
          return await writeRange(client, range, job);
        } catch (error) {
          stop.abort(error); // the other ranges stop too: the file fails as a whole
          throw error;
        }
      }),
    );
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failure) throw failure.reason;
    meter.finish();
    return {
      bytes: size,
      ranges: outcomes.map((o) => (o as PromiseFulfilledResult<ByteRange & { sha256: string }>).value),
      envelopeBytes: envelope.bytes,
      envelopeFaults: envelope.faults,
      elapsedMs: performance.now() - started,
    };
  } catch (error) {
    await removeLeftovers(first, writers, remotePath, options.cleanupTimeoutMs ?? DEFAULT_CLEANUP_MS);
    if (signal?.aborted) throw signal.reason;
    throw asUploadError(error, localPath, remotePath);
  } finally {
    await file.close();
    for (const client of opened) client.close();
  }
}

interface RangeJob {
  readonly file: FileHandle;
  readonly localPath: string;
  readonly remotePath: string;
  readonly size: number;
  readonly envelope: EnvelopeBudget;
  readonly meter: ProgressMeter;
  /** Every writer started, for the cleanup. */
  readonly writers: CommandWithInput[];
  readonly signal: AbortSignal;
}

/** One writer: start it, stream its range (reading ahead while a Send is out), check its hash, close it. */
async function writeRange(
  client: WinRmClient,
  range: ByteRange,
  job: RangeJob,
): Promise<ByteRange & { sha256: string }> {
  const { signal, envelope } = job;
  const script = writerScript({ path: job.remotePath, ...range, fileLength: job.size });
  const writer = await client.startWithInput(encodePowerShell(script), signal);
  job.writers.push(writer);
  const hash = createHash('sha256');
  const end = range.offset + range.length;
  const plan = (at: number): number =>
    Math.min(end - at, fileBytesPerSend(stdinCapacity(envelope.bytes, writer.sendOverheadBytes)));
  let position = range.offset;
  let next: Promise<Buffer> = readAt(job.file, position, plan(position));
  for (;;) {
    const piece = await next;
    position += piece.length;
    const last = position >= end;
    if (!last) next = readAt(job.file, position, plan(position));
    hash.update(piece);
    try {
      await sendPiece(writer, piece, last, envelope, signal);
    } catch (error) {
      next.catch(() => undefined); // the read ahead is not needed any more; its failure is no news

      if (error instanceof UploadError || signal.aborted) throw error;
      throw await writerVerdict(writer, job.remotePath, error);
    }
    job.meter.add(piece.length);
    if (last) break;
  }
  const result = await writer.finish({ signal });
  const report = parseWriterReport(result.stdout);
  if (result.exitCode !== 0 || !report) throw writerFailed(job.remotePath, result);
  const sha256 = hash.digest('hex');
  if (report.sha256 !== sha256 || report.bytes !== range.length) {
    throw new UploadError(
      'hash-mismatch',
      `${job.localPath} arrived altered at ${job.remotePath}: for bytes ${range.offset}–${end} the VM computed sha256 ${report.sha256} over ${report.bytes} bytes, the local file has ${sha256} over ${range.length}. The VM's copy was removed; upload it again.`,
    );
  }
  await writer.close();
  return { ...range, sha256 };
}

/** One piece of the file in as few Sends as the envelope limit allows, shrinking it once on a refusal. */
async function sendPiece(
  writer: CommandWithInput,
  piece: Buffer,
  last: boolean,
  envelope: EnvelopeBudget,
  signal: AbortSignal,
): Promise<void> {
  let at = 0;
  do {
    const limit = envelope.bytes;
    const room = fileBytesPerSend(stdinCapacity(limit, writer.sendOverheadBytes));
    if (room <= 0) throw envelope.tooSmall();
    const part = piece.subarray(at, at + room);
    const end = last && at + part.length >= piece.length;
    try {
      await writer.send(frameLines(part), end, signal);
      at += part.length;
    } catch (error) {
      if (!(error instanceof EnvelopeTooLargeError)) throw error;
      envelope.refused(limit); // the server took nothing: send the same bytes again, smaller
    }
  } while (at < piece.length);
}

/** The envelope limit all ranges share: from the server or Windows' default, one step down after a refusal. */
class EnvelopeBudget {
  faults = 0;
  constructor(public bytes: number) {}

  refused(triedWith: number): void {
    this.faults++;
    if (triedWith > this.bytes) return; // another range shrank it already
    if (this.bytes <= FALLBACK_ENVELOPE_BYTES) throw this.tooSmall();
    this.bytes = FALLBACK_ENVELOPE_BYTES;
  }

  tooSmall(): UploadError {
    return new UploadError(
      'envelope-too-small',
      `the VM's WinRM refuses envelopes of ${Math.round(this.bytes / 1024)} KiB (its MaxEnvelopeSizekb is lower). Raise it on the VM, e.g. Set-Item WSMan:\\localhost\\MaxEnvelopeSizekb 500.`,
    );
  }
}

class ProgressMeter {
  private done = 0;
  constructor(
    private readonly total: number,
    private readonly started: number,
    private readonly onProgress?: (progress: UploadProgress) => void,
  ) {}

  add(bytes: number): void {
    this.done += bytes;
    this.report();
  }

  finish(): void {
    if (this.total === 0) this.report();
  }

  private report(): void {
    if (!this.onProgress) return;
    const elapsedMs = performance.now() - this.started;
    this.onProgress({
      bytesDone: this.done,
      totalBytes: this.total,
      bytesPerSecond: elapsedMs > 0 ? (this.done * 1000) / elapsedMs : 0,
      elapsedMs,
    });
  }
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0)
      throw new Error(`the file ended at byte ${position + filled}: it changed during the upload`);
    filled += bytesRead;
  }
  return buffer;
}

/** A Send failed for another reason than its size: a writer that died says why on its stderr. */
async function writerVerdict(
  writer: CommandWithInput,
  remotePath: string,
  sendError: unknown,
): Promise<unknown> {
  try {
    const result = await writer.finish({ signal: AbortSignal.timeout(WRITER_VERDICT_MS) });
    return result.exitCode !== 0 ? writerFailed(remotePath, result) : sendError;
  } catch {
    return sendError;
  }
}

function writerFailed(
  remotePath: string,
  result: { exitCode: number; stdout: string; stderr: string },
): UploadError {
  const said = (decodeClixml(result.stderr).trim() || result.stdout.trim())
    .split(/\r?\n/)
    .slice(0, 5)
    .join(' ');
  return new UploadError(
    'writer-failed',
    `writing ${remotePath} on the VM failed (exit code ${result.exitCode})${said ? `: ${said}` : ''}`,
  );
}

/** Terminates every writer, deletes their shells, then removes the partial file, all within one budget. */
async function removeLeftovers(
  client: WinRmClient,
  writers: readonly CommandWithInput[],
  remotePath: string,
  budgetMs: number,
): Promise<void> {
  const budget = AbortSignal.timeout(budgetMs);
  // Writers first: one still starting could otherwise create the file again after its removal.
  await Promise.allSettled(writers.map((writer) => writer.close(budget)));
  try {
    await client.runPowerShell(removalScript(remotePath), { signal: budget });
  } catch {
    // The VM is gone or the budget is spent; the caller's staging cleanup is the next line of defence.
  }
}

function asUploadError(error: unknown, localPath: string, remotePath: string): unknown {
  if (error instanceof UploadError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new UploadError('winrm', `uploading ${localPath} to ${remotePath} failed: ${message}`, {
    cause: error,
  });
}
