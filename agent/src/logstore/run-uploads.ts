/**
 * Everything of one run that goes to the log store, under `<runId>/` in the container: the live
 * customization.log and validation.log (append blobs, rolled over when large), status.json (replaced on
 * every change, latest wins) and build-bundle.tar.gz. Nothing here ever waits on storage in the build's
 * path; close() drains within its own budget and says exactly what did not make it.
 */
import { readFile } from 'node:fs/promises';
import { AppendUploader, describeStorageError, type UploadResult } from './append-uploader.js';
import { ensureContainer, type BlobStore } from './blob-store.js';

export const LOG_BLOBS = {
  customization: 'customization.log',
  validation: 'validation.log',
  status: 'status.json',
  bundle: 'build-bundle.tar.gz',
} as const;

export interface RunUploadsOptions {
  readonly store: BlobStore;
  readonly runId: string;
  readonly files: { readonly customization: string; readonly validation: string };
  /** Rolls logs over after this many blocks (tests force low values). */
  readonly maxBlocksPerBlob?: number;
  readonly flushIntervalMs?: number;
  /** Storage went away or came back: one line for the log and the terminal. */
  readonly onHealthChange?: (healthy: boolean, detail: string) => void;
}

export interface UploadSummary {
  readonly complete: boolean;
  /** Set when something is missing in storage: what, and why. */
  readonly problem?: string;
}

export function blobUrls(store: BlobStore, runId: string): Record<keyof typeof LOG_BLOBS, string> {
  return {
    customization: store.blobUrl(`${runId}/${LOG_BLOBS.customization}`),
    validation: store.blobUrl(`${runId}/${LOG_BLOBS.validation}`),
    status: store.blobUrl(`${runId}/${LOG_BLOBS.status}`),
    bundle: store.blobUrl(`${runId}/${LOG_BLOBS.bundle}`),
  };
}

export class RunUploads {
  private readonly logs: { readonly name: string; readonly uploader: AppendUploader }[];
  private statusText: string | undefined;
  private statusSent: string | undefined;
  private statusLoop: Promise<void> | undefined;
  private readonly side: Promise<string | undefined>[] = [];
  private closed = false;

  constructor(private readonly options: RunUploadsOptions) {
    const { store, runId, files } = options;
    const uploader = (file: string, blob: string): AppendUploader =>
      new AppendUploader({
        container: store.container,
        file,
        blobName: `${runId}/${blob}`,
        ...(options.maxBlocksPerBlob ? { maxBlocksPerBlob: options.maxBlocksPerBlob } : {}),
        ...(options.flushIntervalMs ? { flushIntervalMs: options.flushIntervalMs } : {}),
        ...(options.onHealthChange ? { onHealthChange: options.onHealthChange } : {}),
      });
    this.logs = [
      { name: LOG_BLOBS.customization, uploader: uploader(files.customization, LOG_BLOBS.customization) },
      { name: LOG_BLOBS.validation, uploader: uploader(files.validation, LOG_BLOBS.validation) },
    ];
    for (const log of this.logs) log.uploader.start();
  }

  /** Bytes written locally but not yet in storage, for the spool bound. */
  backlog(file: 'customization' | 'validation', writtenBytes: number): number {
    const log = this.logs[file === 'customization' ? 0 : 1];
    return Math.max(0, writtenBytes - (log?.uploader.uploadedBytes ?? 0));
  }

  /** Queues the (already masked) status document; only the newest one is sent. */
  publishStatus(text: string): void {
    this.statusText = text;
    this.statusLoop ??= this.sendStatus().finally(() => (this.statusLoop = undefined));
  }

  /** Uploads the build bundle in the background; close() waits for it. */
  uploadBundle(path: string): void {
    const blob = this.options.store.container.getBlockBlobClient(`${this.options.runId}/${LOG_BLOBS.bundle}`);
    this.side.push(
      readFile(path)
        .then((data) => blob.uploadData(data, { blobHTTPHeaders: { blobContentType: 'application/gzip' } }))
        .then(
          () => undefined,
          (error: unknown) => `${LOG_BLOBS.bundle}: ${describeStorageError(error)}`,
        ),
    );
  }

  /**
   * Drains the logs, then sends the final status (so a reader that sees a finished run has every log
   * line already), then waits for the bundle, all within `budgetMs`.
   */
  async close(budgetMs: number, finalStatus: string): Promise<UploadSummary> {
    if (this.closed) return { complete: true };
    this.closed = true;
    const started = Date.now();
    const results = await Promise.all(this.logs.map((log) => log.uploader.close(budgetMs)));
    this.statusText = finalStatus;
    const left = Math.max(1_000, budgetMs - (Date.now() - started));
    const statusProblem = await withBudget(
      this.flushStatus(),
      left,
      `${LOG_BLOBS.status}: no reply from storage`,
    );
    const sideProblems = await Promise.all(
      this.side.map((p) => withBudget(p, left, `${LOG_BLOBS.bundle}: no reply from storage`)),
    );
    const problems = [
      ...results.flatMap((result, i) =>
        result.complete ? [] : [describeIncomplete(this.logs[i]!.name, result)],
      ),
      ...(statusProblem ? [statusProblem] : []),
      ...sideProblems.filter((p): p is string => p !== undefined),
    ];
    return problems.length === 0 ? { complete: true } : { complete: false, problem: problems.join('; ') };
  }

  private async flushStatus(): Promise<string | undefined> {
    await this.statusLoop;
    if (this.statusText !== undefined && this.statusText !== this.statusSent) {
      try {
        await this.putStatus(this.statusText);
      } catch (error) {
        return `${LOG_BLOBS.status}: ${describeStorageError(error)}`;
      }
    }
    return undefined;
  }

  private async sendStatus(): Promise<void> {
    while (this.statusText !== undefined && this.statusText !== this.statusSent) {
      try {
        await this.putStatus(this.statusText);
      } catch {
        return; // storage is down; the next change or close() tries again
      }
    }
  }

  private async putStatus(text: string): Promise<void> {
    const blob = this.options.store.container.getBlockBlobClient(`${this.options.runId}/${LOG_BLOBS.status}`);
    await ensureContainer(this.options.store.container);
    await blob.upload(text, Buffer.byteLength(text), {
      blobHTTPHeaders: { blobContentType: 'application/json', blobCacheControl: 'no-cache' },
    });
    this.statusSent = text;
  }
}

function describeIncomplete(name: string, result: UploadResult): string {
  return `${name}: ${result.backlogBytes} byte(s) not stored${result.lastError ? ` (${result.lastError})` : ''}`;
}

async function withBudget(
  work: Promise<string | undefined>,
  ms: number,
  late: string,
): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(late), ms)));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
