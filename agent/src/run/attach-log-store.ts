/**
 * Joins a build to its log store: once the store is open, the run's logs stream to it live, status.json
 * follows every change, and the build bundle and the run's records are stored next to them. The build never waits for any of
 * this; a store that cannot be opened or reached is reported (terminal, log, status) and never silent.
 *
 * The stored status never claims more than is true. While the run goes on it is refreshed regularly and
 * says by when the next one is due (`refreshBy`), so a reader can tell a build that went silent from a
 * live one. At the end it first says `uploading` with each log's final size; only after the drain does
 * the final status say `stored` (every byte confirmed) or `incomplete` (what is missing).
 */
import { rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { OpenedLogStore } from '../logstore/open-log-store.js';
import { packBundle, writeEffectiveConfig } from '../logstore/bundle.js';
import { blobUrls, LOG_BLOBS, RunUploads, type RecordBlob } from '../logstore/run-uploads.js';
import { describeStorageError } from '../logstore/append-uploader.js';
import type { BuildConfig } from '../settings/build-config.js';
import type { BuildLog, SpoolGate } from './build-log.js';
import type { LogStoreStatus, RunStatus, StatusFile } from './run-status.js';

/** The live status is refreshed this many request timeouts apart (60 s with the default 15 s). */
const HEARTBEATS_PER_REQUEST_TIMEOUT = 4;

export interface AttachOptions {
  readonly opening: Promise<OpenedLogStore> | undefined;
  readonly runId: string;
  readonly logs: RunStatus['logs'];
  readonly customizationLog: BuildLog;
  readonly validationLog: BuildLog;
  readonly statusFile: StatusFile;
  readonly status: RunStatus;
  readonly spoolLimitBytes: number;
  readonly report: (line: string) => void;
  /** Blocks per log blob before it rolls over. */
  readonly maxBlocksPerBlob?: number;
}

export interface AttachedLogStore {
  /** Waits (at most `budgetMs`) until the store is open or has failed, so final messages can name it. */
  settled(budgetMs: number): Promise<void>;
  /**
   * Prints where the logs stream (or why they do not) at this point of the output, waiting at most
   * `budgetMs` for the store: the line has a fixed place instead of wherever the store happened to open.
   */
  announce(budgetMs: number): Promise<void>;
  /**
   * Packs the build bundle (the Packer files, plus `extra` files of the run directory such as the SBOM) and
   * uploads it in the background. Resolves with the bundle's path, or undefined when it could not be packed
   * (said as a warning). A later bundle replaces an earlier one, locally and in the store; one that takes over
   * `budgetMs` to pack is given up, and the earlier one stays.
   */
  bundle(
    runDir: string,
    config: BuildConfig,
    extra?: readonly string[],
    budgetMs?: number,
  ): Promise<string | undefined>;
  /** The newest bundle's path once it is packed (undefined when none was). */
  currentBundle(): Promise<string | undefined>;
  /** Uploads one of the run's records (in the background, or once the store is open). */
  storeRecord(kind: Exclude<RecordBlob, 'bundle'>, file: string): void;
  /** Drains everything within `budgetMs`, records the outcome in status, releases the store. */
  close(budgetMs: number): Promise<void>;
}

export function attachLogStore(options: AttachOptions): AttachedLogStore {
  return new RunLogStore(options);
}

class RunLogStore implements AttachedLogStore {
  private opened: OpenedLogStore | undefined;
  private uploads: RunUploads | undefined;
  /** Files to upload once the store is open (the newest of each kind). */
  private readonly pendingFiles = new Map<RecordBlob, string>();
  private bundleWork: Promise<string | undefined> = Promise.resolve(undefined);
  private packings = 0;
  /** The records' blob URLs, once the store is open. */
  private recordUrls: Record<Exclude<RecordBlob, 'bundle'>, string> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Until announce(), the store's opening lines wait for their place in the output. */
  private held: string[] | undefined = [];
  private readonly ready: Promise<void> | undefined;

  constructor(private readonly options: AttachOptions) {
    this.ready = options.opening?.then(
      (store) => this.joined(store),
      (error: unknown) => this.unavailable(error),
    );
  }

  async settled(budgetMs: number): Promise<void> {
    if (!this.ready) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.ready, new Promise((resolve) => (timer = setTimeout(resolve, budgetMs)))]);
    clearTimeout(timer);
  }

  async announce(budgetMs: number): Promise<void> {
    if (!this.held) return; // said already
    await this.settled(budgetMs);
    const lines = this.held;
    this.held = undefined;
    if (this.ready && lines.length === 0)
      this.options.report(
        'the log store is not open yet; the logs are kept locally and uploaded from their first line once it is',
      );
    for (const line of lines) this.options.report(line);
  }

  bundle(
    runDir: string,
    config: BuildConfig,
    extra: readonly string[] = [],
    budgetMs?: number,
  ): Promise<string | undefined> {
    const file = join(runDir, LOG_BLOBS.bundle);
    const temp = `${file}.${++this.packings}.tmp`;
    const previous = this.bundleWork;
    let outcome: 'packing' | 'kept' | 'abandoned' = 'packing';
    const pack = async (): Promise<string | undefined> => {
      const before = await previous; // one packing at a time, in order
      try {
        await writeEffectiveConfig(join(runDir, 'packer', 'effective-config.json'), config);
        await packBundle(temp, runDir, ['packer', ...extra]);
      } catch (error) {
        this.note(`warning: the build bundle could not be packed: ${(error as Error).message}`);
        await rm(temp, { force: true });
        return before;
      }
      // Decided once: either this bundle replaces the older one, or the budget ran out and it never will.
      if (outcome === 'abandoned') {
        await rm(temp, { force: true });
        return before;
      }
      outcome = 'kept';
      // Renamed into place: an upload still reading the older bundle keeps reading whole bytes.
      await rename(temp, file);
      this.upload('bundle', file);
      return file;
    };
    const packed = pack();
    this.bundleWork =
      budgetMs === undefined
        ? packed
        : Promise.race([
            packed,
            sleep(budgetMs, undefined, { ref: false }).then(() => {
              if (outcome !== 'packing') return packed;
              outcome = 'abandoned';
              this.note(
                `warning: packing the build bundle once more took over ${budgetMs / 1000} s; the stored bundle is the one packed before the build, without the SBOM (the SBOM is stored on its own)`,
              );
              return previous;
            }),
          ]);
    return this.bundleWork;
  }

  currentBundle(): Promise<string | undefined> {
    return this.bundleWork;
  }

  storeRecord(kind: Exclude<RecordBlob, 'bundle'>, file: string): void {
    this.upload(kind, file);
  }

  private upload(kind: RecordBlob, file: string): void {
    if (!this.uploads) {
      this.pendingFiles.set(kind, file);
      return;
    }
    this.uploads.uploadFile(kind, file);
    // The stored status names a record's blob only once the run has written that record.
    const { logStore } = this.options.status;
    if (kind !== 'bundle' && logStore && this.recordUrls) logStore[kind] = this.recordUrls[kind];
  }

  async close(budgetMs: number): Promise<void> {
    await this.bundleWork;
    await this.ready;
    clearInterval(this.heartbeat);
    this.options.statusFile.onWrite = undefined;
    if (this.uploads && this.opened && this.options.status.logStore)
      await this.drain(this.uploads, this.opened, this.options.status.logStore, budgetMs);
    await this.opened?.close();
  }

  /** The store is open: logs, status and the bundle follow the run from here. */
  private joined(store: OpenedLogStore): void {
    const { status, statusFile, customizationLog, validationLog } = this.options;
    this.opened = store;
    const urls = blobUrls(store.store, this.options.runId);
    const timeoutMs = store.store.deadlines.timeoutMs;
    const heartbeatMs = HEARTBEATS_PER_REQUEST_TIMEOUT * timeoutMs;
    const refreshBy = (): string => new Date(Date.now() + 2 * heartbeatMs + timeoutMs).toISOString();
    const { sbom, baseline, provenance, ...streamed } = urls;
    this.recordUrls = { sbom, baseline, provenance };
    status.logStore = { ...streamed, state: 'streaming', refreshBy: refreshBy() };
    const uploads = this.startUploads(store);
    customizationLog.setSpoolGate(this.spoolGate('customization'));
    validationLog.setSpoolGate(this.spoolGate('validation'));
    // A finished run's status goes up in close(), after the last log lines.
    statusFile.onWrite = (text) => {
      if (status.runState === 'Running') uploads.publishStatus(text);
    };
    void statusFile.write(status);
    this.heartbeat = setInterval(() => {
      if (status.runState !== 'Running' || !status.logStore) return;
      status.logStore.refreshBy = refreshBy();
      void statusFile.write(status);
    }, heartbeatMs);
    this.heartbeat.unref();
    this.announceLine(`logs stream to ${urls.customization}`);
    for (const [kind, file] of this.pendingFiles) this.upload(kind, file);
    this.pendingFiles.clear();
  }

  private startUploads(store: OpenedLogStore): RunUploads {
    this.uploads = new RunUploads({
      store: store.store,
      runId: this.options.runId,
      files: this.options.logs,
      ...(this.options.maxBlocksPerBlob ? { maxBlocksPerBlob: this.options.maxBlocksPerBlob } : {}),
      onHealthChange: (healthy, detail) =>
        this.note(
          healthy
            ? 'log storage is reachable again; the spooled lines are being uploaded in order'
            : detail.startsWith('log upload stopped')
              ? `warning: ${detail}; the logs stay on local disk only`
              : `log storage is unreachable (${detail}); lines are spooled to local disk and uploaded when it is back`,
        ),
    });
    return this.uploads;
  }

  private spoolGate(file: 'customization' | 'validation'): SpoolGate {
    const limitBytes = this.options.spoolLimitBytes;
    return {
      limitBytes,
      backlog: (written: number) => this.uploads?.backlog(file, written) ?? 0,
      onFull: () =>
        this.options.report(
          `warning: the ${file} log spool reached its bound (${limitBytes} bytes) while storage is unreachable; new lines are dropped and counted until it drains`,
        ),
    };
  }

  /** The store could not be opened: the run goes on with local logs, and says so. */
  private unavailable(error: unknown): void {
    const detail = error instanceof Error ? error.message : describeStorageError(error);
    this.options.status.logStore = {
      customization: '',
      validation: '',
      status: '',
      bundle: '',
      state: 'unavailable',
      detail,
    };
    const line = `warning: logs are kept on local disk only; the log store could not be opened: ${detail}`;
    this.options.customizationLog.write('ISOBUILD', line);
    this.announceLine(line);
  }

  /** The end: the outcome goes up as `uploading`, then the last lines, then `stored` or `incomplete`. */
  private async drain(
    uploads: RunUploads,
    opened: OpenedLogStore,
    logStore: LogStoreStatus,
    budgetMs: number,
  ): Promise<void> {
    const { status, statusFile, customizationLog, validationLog, report } = this.options;
    const timeoutMs = opened.store.deadlines.timeoutMs;
    logStore.state = 'uploading';
    logStore.written = {
      customization: customizationLog.bytesWritten,
      validation: validationLog.bytesWritten,
    };
    logStore.refreshBy = new Date(Date.now() + budgetMs + 3 * timeoutMs).toISOString();
    uploads.publishStatus(await statusText(statusFile, status));
    const summary = await uploads.close(budgetMs, (drained) => {
      delete logStore.refreshBy;
      logStore.state = drained.complete ? 'stored' : 'incomplete';
      if (drained.problem) {
        logStore.detail = drained.problem;
        report(
          `warning: not everything reached the log store within ${seconds(budgetMs)} (--log-drain-timeout): ${drained.problem}. The status says so (logStore.state: incomplete); the full logs are in the run directory.`,
        );
      }
      return statusText(statusFile, status);
    });
    if (summary.statusProblem) {
      logStore.state = 'incomplete';
      logStore.detail = [summary.problem, summary.statusProblem].filter(Boolean).join('; ');
      report(
        `warning: ${summary.statusProblem}; the stored status.json still shows an earlier state (it never says "stored"), and ${statusFile.path} has the outcome.`,
      );
      await statusFile.write(status);
    }
  }

  private note(line: string): void {
    this.options.report(line);
    this.options.customizationLog.write('ISOBUILD', line);
  }

  private announceLine(line: string): void {
    if (this.held) this.held.push(line);
    else this.options.report(line);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}

/** The status document as StatusFile writes it (masked), without writing the local file twice. */
async function statusText(statusFile: StatusFile, status: RunStatus): Promise<string> {
  let text = '';
  statusFile.onWrite = (t) => (text = t);
  await statusFile.write(status);
  statusFile.onWrite = undefined;
  return text;
}
