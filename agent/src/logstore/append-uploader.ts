/**
 * Streams a growing local log file to append blobs, live. The local file is the spool: Packer's output is
 * written there first (never blocked by storage), and this uploader follows it from the last confirmed
 * offset. One append is in flight at a time, each with an appendPosition condition, so a retried append
 * whose reply was lost gets a 412 instead of landing twice; the 412 is reconciled by comparing the bytes
 * the blob holds beyond our confirmed offset with the next bytes of our file (packer-notes §5.3).
 * Blocks stay ≤ 4 MiB and end at line breaks; a blob is rolled over (customization.log → customization.1.log → …) well before Azure's 50,000-block limit.
 * Storage outages only grow the backlog: the loop retries with backoff and catches up when storage is back.
 * Every request has its own deadline (request-deadline.ts): one that hangs on a dead path is abandoned
 * with its socket and tried again on a fresh connection, and the appendPosition check makes that safe
 * even if the abandoned request lands after all. While storage is failing, attempts carry small probe
 * blocks, so the first one after the path is back gets through quickly.
 */
import { open, stat } from 'node:fs/promises';
import type { AppendBlobClient } from '@azure/storage-blob';
import { ensureContainer, type BlobStore } from './blob-store.js';
import { isStorageTimeout } from './request-deadline.js';

/** Azure's documented append block limit for older service versions; Azurite does not enforce it. */
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024;
/** Azure refuses append #50,001; roll over with a wide margin. */
export const DEFAULT_MAX_BLOCKS = 40_000;

/** The block size while storage is failing: small enough to get through the moment it is back. */
const PROBE_BLOCK_BYTES = 64 * 1024;

export interface AppendUploaderOptions {
  readonly store: BlobStore;
  /** Local file to follow. */
  readonly file: string;
  /** Blob name of the first part, e.g. `<runId>/customization.log`; later parts insert .1, .2, … */
  readonly blobName: string;
  readonly flushIntervalMs?: number;
  readonly maxBlockBytes?: number;
  readonly maxBlocksPerBlob?: number;
  /** Called when the uploader starts failing or recovers (for warnings and status). */
  readonly onHealthChange?: (healthy: boolean, detail: string) => void;
}

export interface UploadResult {
  /** Everything in the local file reached storage. */
  readonly complete: boolean;
  readonly uploadedBytes: number;
  readonly backlogBytes: number;
  readonly parts: readonly string[];
  readonly lastError?: string;
}

/** The name of part `index` of a rolled-over log: customization.log, customization.1.log, … */
export function partName(blobName: string, index: number): string {
  if (index === 0) return blobName;
  const dot = blobName.lastIndexOf('.');
  return dot > blobName.lastIndexOf('/')
    ? `${blobName.slice(0, dot)}.${index}${blobName.slice(dot)}`
    : `${blobName}.${index}`;
}

interface Part {
  readonly index: number;
  readonly client: AppendBlobClient;
  /** Offset in the local file where this part begins. */
  readonly fileStart: number;
  created: boolean;
  blocks: number;
}

export class AppendUploader {
  private readonly flushIntervalMs: number;
  private readonly maxBlockBytes: number;
  private readonly maxBlocks: number;
  private readonly parts: Part[] = [];
  private uploaded = 0;
  private fileSize = 0;
  private closing = false;
  private healthy = true;
  private lastError: string | undefined;
  private readonly stopNow = new AbortController();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readBuffer: Buffer | undefined;

  constructor(private readonly options: AppendUploaderOptions) {
    this.flushIntervalMs = options.flushIntervalMs ?? 500;
    this.maxBlockBytes = Math.min(options.maxBlockBytes ?? 1024 * 1024, MAX_BLOCK_BYTES);
    this.maxBlocks = options.maxBlocksPerBlob ?? DEFAULT_MAX_BLOCKS;
    this.parts.push(this.newPart(0, 0));
  }

  start(): void {
    this.loop ??= this.run().catch((error: unknown) => {
      this.setHealth(false, `log upload stopped: ${describeStorageError(error)}`);
    });
  }

  /** Bytes confirmed in storage. */
  get uploadedBytes(): number {
    return this.uploaded;
  }

  /** Asks the loop to look at the file now instead of at its next tick. */
  nudge(): void {
    this.wake?.();
  }

  /**
   * Uploads what is left, then stops. Gives up when `budgetMs` runs out (storage down at the end of a
   * build) and says how much did not make it.
   */
  async close(budgetMs: number): Promise<UploadResult> {
    this.closing = true;
    this.start();
    this.nudge();
    const timer = setTimeout(() => this.stopNow.abort(), budgetMs);
    try {
      await this.loop;
    } finally {
      clearTimeout(timer);
    }
    const size = await fileSize(this.options.file);
    const complete = this.uploaded >= size;
    const lastError =
      this.lastError ?? (complete ? undefined : `not sent within the ${seconds(budgetMs)} drain time`);
    return {
      complete,
      uploadedBytes: this.uploaded,
      backlogBytes: Math.max(0, size - this.uploaded),
      parts: this.parts.filter((p) => p.created).map((p) => p.client.name),
      ...(lastError ? { lastError } : {}),
    };
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopNow.signal.aborted) {
      this.fileSize = await fileSize(this.options.file);
      if (this.fileSize > this.uploaded) {
        try {
          const progressed = await this.appendNext();
          failures = 0;
          this.setHealth(true, 'log upload recovered');
          if (progressed) continue;
        } catch (error) {
          if (this.stopNow.signal.aborted) break;
          // Another writer, or credentials storage refuses: retrying cannot help.
          if (error instanceof ConflictError || isRefused(error)) throw error;
          failures++;
          this.setHealth(false, describeStorageError(error));
          // Back off up to 10 s, except after a timeout, which has waited long enough already; a close()
          // still wakes the loop early.
          await this.pause(
            isStorageTimeout(error) ? 250 : Math.min(10_000, 250 * 2 ** Math.min(failures, 6)),
          );
          continue;
        }
      }
      if (this.closing && this.uploaded >= this.fileSize) break;
      await this.pause(this.flushIntervalMs);
    }
  }

  /** Appends the next block; false when only a partial line is waiting (it goes with the next one). */
  private async appendNext(): Promise<boolean> {
    const part = this.currentPart();
    if (!part.created) await this.create(part);
    const chunk = await this.readChunk();
    if (chunk.length === 0) return false;
    const position = this.uploaded - part.fileStart;
    try {
      const reply = await this.request(
        (abortSignal) =>
          part.client.appendBlock(chunk, chunk.length, {
            conditions: { appendPosition: position },
            abortSignal,
          }),
        chunk.length,
      );
      part.blocks = reply.blobCommittedBlockCount ?? part.blocks + 1;
    } catch (error) {
      const code = errorCode(error);
      if (code === 'AppendPositionConditionNotMet') {
        await this.reconcile(part, position);
        if (part.blocks >= this.maxBlocks) this.rollOver();
        return true;
      } else if (code === 'BlockCountExceedsLimit') {
        this.rollOver();
        return true;
      } else if (code === 'BlobNotFound' || code === 'ContainerNotFound') {
        // Storage lost the blob (an in-memory emulator restarted): write this part again from our spool.
        part.created = false;
        this.uploaded = part.fileStart;
        return true;
      } else {
        throw error;
      }
    }
    this.uploaded += chunk.length;
    if (part.blocks >= this.maxBlocks) this.rollOver();
    return true;
  }

  /**
   * After a 412 on append: the blob holds more than we know of. If the extra bytes are exactly the next
   * bytes of our file, they are ours: an append whose reply was lost (possibly a shorter block than the one
   * just tried, when lines arrived during an outage). Then count them as uploaded and go on; anything else
   * is another writer.
   */
  private async reconcile(part: Part, position: number): Promise<void> {
    const properties = await this.request((abortSignal) => part.client.getProperties({ abortSignal }));
    const length = properties.contentLength ?? 0;
    if (length <= position) throw new Error('append position mismatch reported, but the blob is not longer');
    const extra = length - position;
    if (extra <= this.fileSize - this.uploaded) {
      const stored = await this.request(
        (abortSignal) => part.client.downloadToBuffer(position, extra, { abortSignal }),
        extra,
      );
      if (stored.equals(await this.readFile(this.uploaded, extra))) {
        this.uploaded += extra;
        part.blocks = properties.blobCommittedBlockCount ?? part.blocks + 1;
        return;
      }
    }
    throw new ConflictError(
      `${part.client.name} was changed by another writer (it holds ${length} bytes, isobuild expected ${position}); is another isobuild using the same run id?`,
    );
  }

  private async readFile(offset: number, length: number): Promise<Buffer> {
    const handle = await open(this.options.file, 'r');
    try {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  private async create(part: Part): Promise<void> {
    await this.request((abortSignal) => ensureContainer(this.options.store.container, abortSignal));
    try {
      await this.request((abortSignal) =>
        part.client.create({ conditions: { ifNoneMatch: '*' }, abortSignal }),
      );
    } catch (error) {
      if (errorCode(error) === 'ContainerNotFound')
        throw new ConflictError(
          `the container ${this.options.store.container.containerName} does not exist and these credentials may not create it: create it, or use credentials that may`,
        );
      if (errorCode(error) !== 'BlobAlreadyExists') throw error;
      // Ours if it holds exactly what we uploaded so far (a create or append whose reply was lost).
      const length = (await this.request((abortSignal) => part.client.getProperties({ abortSignal })))
        .contentLength;
      if (length !== this.uploaded - part.fileStart)
        throw new ConflictError(
          `${part.client.name} already exists in storage with other content: logs of an earlier run with the same run id? Use a new --run-id.`,
        );
    }
    part.created = true;
  }

  /**
   * The next block: up to maxBlockBytes, ending at the last line break unless the build is over. It is
   * read into one reused buffer (one append is in flight at a time), so a flood does not churn memory.
   */
  private async readChunk(): Promise<Buffer> {
    const limit = this.healthy ? this.maxBlockBytes : Math.min(PROBE_BLOCK_BYTES, this.maxBlockBytes);
    const length = Math.min(this.fileSize - this.uploaded, limit);
    this.readBuffer ??= Buffer.allocUnsafe(this.maxBlockBytes);
    const handle = await open(this.options.file, 'r');
    let chunk: Buffer;
    try {
      const { bytesRead } = await handle.read(this.readBuffer, 0, length, this.uploaded);
      chunk = this.readBuffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
    if (this.closing) return chunk;
    const lastBreak = chunk.lastIndexOf(0x0a);
    // A block full of one endless line goes as it is; otherwise whole lines only.
    if (lastBreak < 0) return chunk.length >= limit ? chunk : Buffer.alloc(0);
    return chunk.subarray(0, lastBreak + 1);
  }

  /** One storage request with its own deadline, also ended by close()'s budget. */
  private request<T>(call: (signal: AbortSignal) => Promise<T>, bytes = 0): Promise<T> {
    return this.options.store.deadlines.run(call, { signal: this.stopNow.signal, bytes });
  }

  private currentPart(): Part {
    return this.parts[this.parts.length - 1]!;
  }

  private rollOver(): void {
    this.parts.push(this.newPart(this.currentPart().index + 1, this.uploaded));
  }

  private newPart(index: number, fileStart: number): Part {
    const client = this.options.store.container.getAppendBlobClient(partName(this.options.blobName, index));
    return { index, client, fileStart, created: false, blocks: 0 };
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.stopNow.signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
      this.stopNow.signal.addEventListener('abort', done, { once: true });
    });
  }

  private setHealth(healthy: boolean, detail: string): void {
    // Only a failure since the last success explains what is missing.
    this.lastError = healthy ? undefined : detail;
    if (healthy === this.healthy) return;
    this.healthy = healthy;
    this.options.onHealthChange?.(healthy, detail);
  }
}

class ConflictError extends Error {}

/** 401/403: the credentials (SAS, key, identity) do not allow this; no retry will change that. */
function isRefused(error: unknown): boolean {
  const status = (error as { statusCode?: number }).statusCode;
  return status === 401 || status === 403;
}

export function errorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; details?: { errorCode?: unknown } };
  if (typeof e?.details?.errorCode === 'string') return e.details.errorCode;
  return typeof e?.code === 'string' ? e.code : undefined;
}

/** One line about a storage failure: status, service error code or errno, and the message's first line. */
export function describeStorageError(error: unknown): string {
  if (isStorageTimeout(error)) return error.message;
  const e = error as { statusCode?: number; message?: string };
  const code = errorCode(error);
  const first = (e?.message ?? String(error)).split('\n')[0]?.trim() ?? '';
  return [e?.statusCode ? `HTTP ${e.statusCode}` : undefined, code, first]
    .filter((part) => part !== undefined && part !== '')
    .filter((part, index, all) => all.indexOf(part) === index)
    .join(' ');
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
