/**
 * Everything of one run that goes to the log store, under `<runId>/` in the container: the live
 * customization.log and validation.log (append blobs, rolled over when large), status.json (replaced on
 * every change, latest wins), build-bundle.tar.gz and the run's records (the SBOM, the inventory before
 * customizing, the provenance record). Nothing here ever waits on storage in the build's
 * path; close() drains within its own budget and says exactly what did not make it.
 *
 * status.json is written with ETag conditions (each upload must replace the version we last stored), so
 * an abandoned upload that reaches storage late can never overwrite a newer status, such as the final one.
 */
import { readFile } from 'node:fs/promises';
import { AppendUploader, describeStorageError, errorCode, type UploadResult } from './append-uploader.js';
import { ensureContainer, type BlobStore } from './blob-store.js';

export const LOG_BLOBS = {
  customization: 'customization.log',
  validation: 'validation.log',
  status: 'status.json',
  bundle: 'build-bundle.tar.gz',
  sbom: 'sbom.cdx.json',
  baseline: 'inventory-before.json',
  provenance: 'provenance.json',
} as const;

/** The files uploaded whole (not streamed), and their content types. */
export type RecordBlob = 'bundle' | 'sbom' | 'baseline' | 'provenance';
const CONTENT_TYPES: Record<RecordBlob, string> = {
  bundle: 'application/gzip',
  sbom: 'application/vnd.cyclonedx+json',
  baseline: 'application/json',
  provenance: 'application/vnd.in-toto+json',
};

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

export interface DrainResult {
  /** Every log byte and the bundle reached storage. */
  readonly complete: boolean;
  /** Set when something is missing in storage: what, and why. */
  readonly problem?: string;
}

export interface UploadSummary extends DrainResult {
  /** Set when the final status could not be stored (the stored one is then an earlier, less final one). */
  readonly statusProblem?: string;
}

export function blobUrls(store: BlobStore, runId: string): Record<keyof typeof LOG_BLOBS, string> {
  const url = (name: keyof typeof LOG_BLOBS): string => store.blobUrl(`${runId}/${LOG_BLOBS[name]}`);
  return {
    customization: url('customization'),
    validation: url('validation'),
    status: url('status'),
    bundle: url('bundle'),
    sbom: url('sbom'),
    baseline: url('baseline'),
    provenance: url('provenance'),
  };
}

export class RunUploads {
  private readonly logs: { readonly name: string; readonly uploader: AppendUploader }[];
  private statusText: string | undefined;
  private statusSent: string | undefined;
  /** ETag of the status version we last stored; undefined before the first. */
  private statusEtag: string | undefined;
  private statusLoop: Promise<void> | undefined;
  private containerReady = false;
  /** Ends the live status uploads when the final one takes over. */
  private readonly statusStop = new AbortController();
  /** Ends the bundle upload when the drain time is over. */
  private readonly drainStop = new AbortController();
  /** The newest upload of each whole file; it settles after every older one of the same blob. */
  private readonly fileUploads = new Map<RecordBlob, Promise<string | undefined>>();
  /** Cancels the newest upload of each whole file when a newer one is queued. */
  private readonly fileUploadStops = new Map<RecordBlob, AbortController>();
  private summary: Promise<UploadSummary> | undefined;

  constructor(private readonly options: RunUploadsOptions) {
    const { store, runId, files } = options;
    const uploader = (file: string, blob: string): AppendUploader =>
      new AppendUploader({
        store,
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
    if (this.statusStop.signal.aborted) return;
    this.statusText = text;
    this.statusLoop ??= this.sendStatus().finally(() => (this.statusLoop = undefined));
  }

  /**
   * Uploads a whole file (the bundle, a record) in the background; close() waits for it. A newer upload of
   * the same blob cancels the older one and starts once it has settled, so the newest file is what storage
   * keeps and a large bundle is not sent twice.
   */
  uploadFile(kind: RecordBlob, path: string): void {
    const { store, runId } = this.options;
    const name = LOG_BLOBS[kind];
    const blob = store.container.getBlockBlobClient(`${runId}/${name}`);
    this.fileUploadStops.get(kind)?.abort();
    const stop = new AbortController();
    this.fileUploadStops.set(kind, stop);
    const previous = this.fileUploads.get(kind) ?? Promise.resolve(undefined);
    const upload = previous.then(() =>
      readFile(path)
        .then((data) =>
          store.deadlines.run(
            (abortSignal) =>
              blob.uploadData(data, {
                blobHTTPHeaders: { blobContentType: CONTENT_TYPES[kind] },
                abortSignal,
              }),
            { signal: AbortSignal.any([this.drainStop.signal, stop.signal]), bytes: data.length },
          ),
        )
        .then(
          () => undefined,
          (error: unknown) =>
            `${name}: ${this.drainStop.signal.aborted ? 'not stored within the drain time' : describeStorageError(error)}`,
        ),
    );
    this.fileUploads.set(kind, upload);
  }

  /**
   * Drains the logs and the bundle within `budgetMs`, then stores the final status, which
   * `finalStatus` writes from the drain's result: a status that says everything is stored only ever
   * follows the last byte. The final status has a budget of its own (one request deadline, twice).
   */
  close(
    budgetMs: number,
    finalStatus: (drained: DrainResult) => string | Promise<string>,
  ): Promise<UploadSummary> {
    this.summary ??= this.finish(budgetMs, finalStatus);
    return this.summary;
  }

  private async finish(
    budgetMs: number,
    finalStatus: (drained: DrainResult) => string | Promise<string>,
  ): Promise<UploadSummary> {
    const timer = setTimeout(() => this.drainStop.abort(), budgetMs);
    let results: UploadResult[];
    let sideProblems: (string | undefined)[];
    try {
      [results, sideProblems] = await Promise.all([
        Promise.all(this.logs.map((log) => log.uploader.close(budgetMs))),
        Promise.all(this.fileUploads.values()),
      ]);
    } finally {
      clearTimeout(timer);
    }
    const problems = [
      ...results.flatMap((result, i) =>
        result.complete ? [] : [describeIncomplete(this.logs[i]!.name, result)],
      ),
      ...sideProblems.filter((p): p is string => p !== undefined),
    ];
    const drained: DrainResult =
      problems.length === 0 ? { complete: true } : { complete: false, problem: problems.join('; ') };
    const statusProblem = await this.storeFinalStatus(await finalStatus(drained));
    return statusProblem ? { ...drained, statusProblem } : drained;
  }

  /** Replaces whatever live upload is in flight (the ETag condition keeps a late one from winning). */
  private async storeFinalStatus(text: string): Promise<string | undefined> {
    this.statusStop.abort();
    const budgetMs = 2 * this.options.store.deadlines.timeoutMs;
    const budget = AbortSignal.timeout(budgetMs);
    let lastError = `no reply from storage within ${(budgetMs / 1000).toFixed(1)} s`;
    while (!budget.aborted) {
      try {
        await this.putStatus(text, budget);
        return undefined;
      } catch (error) {
        if (budget.aborted) break; // cut short by the budget: the last complete failure says more
        lastError = describeStorageError(error);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    return `${LOG_BLOBS.status}: the final status was not stored (${lastError})`;
  }

  private async sendStatus(): Promise<void> {
    while (this.statusText !== undefined && this.statusText !== this.statusSent) {
      try {
        await this.putStatus(this.statusText, this.statusStop.signal);
      } catch {
        return; // storage is down; the next change or close() tries again
      }
    }
  }

  /**
   * Stores one status version: it must replace the version we stored last (or create the blob). A
   * conflict means an upload of ours that we gave up on landed after all: take its ETag and go again.
   */
  private async putStatus(text: string, signal: AbortSignal): Promise<void> {
    const { store, runId } = this.options;
    const blob = store.container.getBlockBlobClient(`${runId}/${LOG_BLOBS.status}`);
    const upload = (etag: string | undefined) =>
      store.deadlines.run(
        (abortSignal) =>
          blob.upload(text, Buffer.byteLength(text), {
            blobHTTPHeaders: { blobContentType: 'application/json', blobCacheControl: 'no-cache' },
            conditions: etag ? { ifMatch: etag } : { ifNoneMatch: '*' },
            abortSignal,
          }),
        { signal },
      );
    if (!this.containerReady)
      await store.deadlines.run((abortSignal) => ensureContainer(store.container, abortSignal), { signal });
    this.containerReady = true;
    let reply;
    try {
      reply = await upload(this.statusEtag);
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'ConditionNotMet' && code !== 'BlobAlreadyExists') throw error;
      const current = await store.deadlines.run((abortSignal) => blob.getProperties({ abortSignal }), {
        signal,
      });
      reply = await upload(current.etag);
    }
    this.statusEtag = reply.etag;
    this.statusSent = text;
  }
}

function describeIncomplete(name: string, result: UploadResult): string {
  return `${name}: ${result.backlogBytes} byte(s) not stored${result.lastError ? ` (${result.lastError})` : ''}`;
}
