/**
 * Reads a run's logs back from the store, for `isobuild logs`: the status document, and a log as a
 * stream of chunks by range reads from the last offset, across rolled-over parts. The end of a blob
 * looks different on Azure (416 InvalidRange) and Azurite (200 with an empty body); both mean "nothing
 * new yet" (packer-notes §5.4). Following stops once the run is final and everything is read. Every
 * read has its own deadline (the store's). `storedLogProblem` says whether what was read is the whole log.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobClient } from '@azure/storage-blob';
import { errorCode, partName } from './append-uploader.js';
import type { BlobStore } from './blob-store.js';
import { LOG_BLOBS } from './run-uploads.js';

/** At most this much per range read, so a large log streams instead of landing in memory at once. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** How long --follow keeps waiting on a status that is overdue before it gives up. */
export const DEFAULT_STALE_GRACE_MS = 10 * 60_000;

export type LogKind = 'customization' | 'validation';

/** What `isobuild logs` reads from a stored status.json (run-status.ts writes it). */
export interface StoredStatus {
  readonly runId: string;
  readonly runState: string;
  readonly runSubState: string;
  readonly message: string;
  readonly startTime?: string;
  readonly endTime?: string;
  readonly logs?: { readonly customization?: string; readonly validation?: string };
  /** A resumed run: the run it continues and the step (1-based) it started from. */
  readonly resumedFrom?: { readonly runId: string; readonly fromStep: number; readonly step: string };
  /** The SBOM's state and summary (as run/run-status.ts's SbomStatus has them). */
  readonly sbom?: {
    readonly state?: string;
    readonly detail?: string;
    readonly packages?: number;
    readonly changes?: {
      readonly added: number;
      readonly removed: number;
      readonly upgraded: number;
      readonly downgraded: number;
    };
    readonly baseline?: {
      readonly source: 'collected' | 'earlier run' | 'unavailable';
      readonly detail?: string;
    };
  };
  readonly logStore?: {
    readonly state?: string;
    readonly detail?: string;
    readonly written?: { readonly customization?: number; readonly validation?: number };
    readonly refreshBy?: string;
  };
}

export function isFinished(status: StoredStatus | undefined): boolean {
  return status !== undefined && status.runState !== 'Running';
}

/** The writer is done with this status: the run ended and the drain's outcome is recorded. */
export function isFinal(status: StoredStatus | undefined): boolean {
  return isFinished(status) && status?.logStore?.state !== 'uploading';
}

/** A status that is not final but was due to be replaced by now: its writer stopped or lost the store. */
export function isOverdue(status: StoredStatus | undefined, now = Date.now()): boolean {
  const due = status?.logStore?.refreshBy;
  return !isFinal(status) && due !== undefined && Date.parse(due) < now;
}

export async function readStoredStatus(
  store: BlobStore,
  runId: string,
  signal?: AbortSignal,
): Promise<StoredStatus | undefined> {
  const data = await readStoredFile(store, runId, LOG_BLOBS.status, signal);
  return data === undefined ? undefined : (JSON.parse(data.toString('utf8')) as StoredStatus);
}

/** One of a run's blobs, whole; undefined when the run (or the blob) is not in the store. */
export async function readStoredFile(
  store: BlobStore,
  runId: string,
  name: string,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  const blob = store.container.getBlobClient(`${runId}/${name}`);
  try {
    // One GET returns one version. downloadToBuffer asks for the size first and then the bytes, so a
    // blob replaced in between (the build rewrites status.json often) came back cut off mid-document.
    return await store.deadlines.run(
      async (abortSignal) => {
        const reply = await blob.download(0, undefined, { abortSignal });
        const parts: Buffer[] = [];
        for await (const chunk of reply.readableStreamBody ?? []) parts.push(chunk as Buffer);
        return Buffer.concat(parts);
      },
      { signal },
    );
  } catch (error) {
    const code = errorCode(error);
    if (code === 'BlobNotFound' || code === 'ContainerNotFound') return undefined;
    throw error;
  }
}

/** Bytes from `offset` to at most `offset + max`; empty at or past the end, or if the blob is missing. */
export async function readRange(
  store: BlobStore,
  blob: BlobClient,
  offset: number,
  max = READ_CHUNK_BYTES,
  signal?: AbortSignal,
): Promise<Buffer> {
  try {
    // The deadline covers the body too: a reply that stops halfway is as stuck as one that never came.
    return await store.deadlines.run(
      async (abortSignal) => {
        const reply = await blob.download(offset, max, { abortSignal });
        if (!reply.contentLength || !reply.readableStreamBody) return Buffer.alloc(0);
        const parts: Buffer[] = [];
        for await (const chunk of reply.readableStreamBody) parts.push(chunk as Buffer);
        return Buffer.concat(parts);
      },
      { signal, bytes: max },
    );
  } catch (error) {
    const code = errorCode(error);
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 416 || code === 'InvalidRange' || code === 'BlobNotFound') return Buffer.alloc(0);
    throw error;
  }
}

export interface FollowOptions {
  /** Keep reading until the run is final; otherwise stop at the current end. */
  readonly follow: boolean;
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  /** A read failed (storage unreachable): said once per outage; reading resumes when it is back. */
  readonly onTrouble?: (detail: string | undefined) => void;
  /** The run's status is overdue (its writer went silent): said once, with the status. */
  readonly onOverdue?: (status: StoredStatus) => void;
  /** How long past its refreshBy an overdue status is waited for before following stops. */
  readonly staleGraceMs?: number;
}

/**
 * Yields the log's bytes in order, part after part (customization.log, customization.1.log, …). With
 * `follow`, it ends when the run's status is final, when a run that has ended has all its bytes stored,
 * or when the status has been overdue for longer than `staleGraceMs`.
 */
export async function* readLog(
  store: BlobStore,
  runId: string,
  log: LogKind,
  options: FollowOptions,
): AsyncGenerator<Buffer> {
  const { container } = store;
  const first = `${runId}/${LOG_BLOBS[log]}`;
  const graceMs = options.staleGraceMs ?? DEFAULT_STALE_GRACE_MS;
  let part = 0;
  let offset = 0;
  let total = 0;
  let lastPass = false;
  let troubled = false;
  let warnedOverdue = false;
  while (true) {
    options.signal?.throwIfAborted();
    let chunk: Buffer;
    let nextExists: boolean;
    try {
      chunk = await readRange(
        store,
        container.getBlobClient(partName(first, part)),
        offset,
        undefined,
        options.signal,
      );
      nextExists =
        chunk.length === 0 &&
        (await store.deadlines.run(
          (abortSignal) => container.getBlobClient(partName(first, part + 1)).exists({ abortSignal }),
          { signal: options.signal },
        ));
      if (troubled) options.onTrouble?.(undefined);
      troubled = false;
    } catch (error) {
      if (options.signal?.aborted || !options.follow) throw error;
      if (!troubled) options.onTrouble?.((error as Error).message.split('\n')[0]);
      troubled = true;
      await sleep(options.intervalMs ?? 500, undefined, { signal: options.signal });
      continue;
    }
    if (chunk.length > 0) {
      offset += chunk.length;
      total += chunk.length;
      yield chunk;
      continue;
    }
    if (nextExists) {
      // The writer only starts a new part once the previous one is complete.
      part++;
      offset = 0;
      continue;
    }
    if (!options.follow || lastPass) return;
    const status = await readStoredStatus(store, runId, options.signal).catch(() => undefined);
    // The final status is stored after the last log line: once it is there, one more pass reads the rest.
    const written = status?.logStore?.written?.[log];
    if (isFinal(status) || (isFinished(status) && written !== undefined && total >= written)) {
      lastPass = true;
      continue;
    }
    if (status && isOverdue(status)) {
      if (!warnedOverdue) options.onOverdue?.(status);
      warnedOverdue = true;
      if (Date.parse(status.logStore!.refreshBy!) + graceMs < Date.now()) return;
    }
    await sleep(options.intervalMs ?? 500, undefined, { signal: options.signal });
  }
}

/**
 * Whether `storedBytes` read from the store is the whole log, judged by the run's stored status: a
 * sentence saying what is missing or doubtful, or undefined when nothing is. A live run (its status not
 * overdue) is not judged: its log is still growing.
 */
export function storedLogProblem(
  status: StoredStatus,
  log: LogKind,
  storedBytes: number,
  now = Date.now(),
): string | undefined {
  const store = status.logStore;
  if (!store) return undefined;
  const name = LOG_BLOBS[log];
  const written = store.written?.[log];
  const short =
    written !== undefined && storedBytes < written
      ? `the stored ${name} has ${storedBytes} of its ${written} bytes`
      : undefined;
  if (store.state === 'incomplete')
    return `the build recorded that not everything reached the store (${store.detail ?? 'no detail'})${short ? `; ${short}` : ''}`;
  if (short && isFinal(status)) return short;
  if (isOverdue(status, now)) {
    const since = `its status should have been replaced by ${store.refreshBy}`;
    if (store.state === 'uploading')
      return short
        ? `${short}: the run ended, but its final status never reached the store (${since}), so the rest never came`
        : undefined;
    return `the run is shown as ${status.runState}, but ${since}: the build stopped or lost the store, and the stored log may end early`;
  }
  if (short && store.state === 'uploading')
    return `${short}: the run has ended and its last lines are still being uploaded (until ${store.refreshBy}); try again then, or use --follow`;
  return undefined;
}
