/**
 * Reads a run's logs back from the store, for `isobuild logs`: the status document, and a log as a
 * stream of chunks by range reads from the last offset, across rolled-over parts. The end of a blob
 * looks different on Azure (416 InvalidRange) and Azurite (200 with an empty body); both mean "nothing
 * new yet" (packer-notes §5.4). Following stops once the run is finished and everything is read.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobClient, ContainerClient } from '@azure/storage-blob';
import { errorCode, partName } from './append-uploader.js';
import { LOG_BLOBS } from './run-uploads.js';

/** At most this much per range read, so a large log streams instead of landing in memory at once. */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

export interface StoredStatus {
  readonly runId: string;
  readonly runState: string;
  readonly runSubState: string;
  readonly message: string;
  readonly startTime?: string;
  readonly endTime?: string;
}

export function isFinished(status: StoredStatus | undefined): boolean {
  return status !== undefined && status.runState !== 'Running';
}

export async function readStoredStatus(
  container: ContainerClient,
  runId: string,
  signal?: AbortSignal,
): Promise<StoredStatus | undefined> {
  const blob = container.getBlobClient(`${runId}/${LOG_BLOBS.status}`);
  try {
    const data = await blob.downloadToBuffer(0, undefined, { abortSignal: signal });
    return JSON.parse(data.toString('utf8')) as StoredStatus;
  } catch (error) {
    const code = errorCode(error);
    if (code === 'BlobNotFound' || code === 'ContainerNotFound') return undefined;
    throw error;
  }
}

/** Bytes from `offset` to at most `offset + max`; empty at or past the end, or if the blob is missing. */
export async function readRange(
  blob: BlobClient,
  offset: number,
  max = READ_CHUNK_BYTES,
  signal?: AbortSignal,
): Promise<Buffer> {
  try {
    const reply = await blob.download(offset, max, { abortSignal: signal });
    if (!reply.contentLength || !reply.readableStreamBody) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for await (const chunk of reply.readableStreamBody) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  } catch (error) {
    const code = errorCode(error);
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 416 || code === 'InvalidRange' || code === 'BlobNotFound') return Buffer.alloc(0);
    throw error;
  }
}

export interface FollowOptions {
  /** Keep reading until the run finishes; otherwise stop at the current end. */
  readonly follow: boolean;
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  /** A read failed (storage unreachable): said once per outage; reading resumes when it is back. */
  readonly onTrouble?: (detail: string | undefined) => void;
}

/** Yields the log's bytes in order, part after part (customization.log, customization.1.log, …). */
export async function* readLog(
  container: ContainerClient,
  runId: string,
  log: 'customization' | 'validation',
  options: FollowOptions,
): AsyncGenerator<Buffer> {
  const first = `${runId}/${LOG_BLOBS[log]}`;
  let part = 0;
  let offset = 0;
  let lastPass = false;
  let troubled = false;
  while (true) {
    options.signal?.throwIfAborted();
    let chunk: Buffer;
    let nextExists: boolean;
    try {
      chunk = await readRange(
        container.getBlobClient(partName(first, part)),
        offset,
        undefined,
        options.signal,
      );
      nextExists =
        chunk.length === 0 &&
        (await container.getBlobClient(partName(first, part + 1)).exists({ abortSignal: options.signal }));
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
    // The final status is stored after the last log line: once it is there, one more pass reads the rest.
    if (isFinished(await readStoredStatus(container, runId, options.signal).catch(() => undefined))) {
      lastPass = true;
      continue;
    }
    await sleep(options.intervalMs ?? 500, undefined, { signal: options.signal });
  }
}
