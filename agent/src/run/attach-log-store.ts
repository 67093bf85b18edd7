/**
 * Joins a build to its log store: once the store is open, the run's logs stream to it live, status.json
 * follows every change, and the build bundle is archived next to them. The build never waits for any of
 * this; a store that cannot be opened or reached is reported (terminal, log, status) and never silent.
 *
 * The stored status never claims more than is true. While the run goes on it is refreshed regularly and
 * says by when the next one is due (`refreshBy`), so a reader can tell a build that went silent from a
 * live one. At the end it first says `uploading` with each log's final size; only after the drain does
 * the final status say `stored` (every byte confirmed) or `incomplete` (what is missing).
 */
import { join } from 'node:path';
import type { OpenedLogStore } from '../logstore/open-log-store.js';
import { packBundle, writeEffectiveConfig } from '../logstore/bundle.js';
import { blobUrls, LOG_BLOBS, RunUploads } from '../logstore/run-uploads.js';
import { describeStorageError } from '../logstore/append-uploader.js';
import type { BuildConfig } from '../settings/build-config.js';
import type { BuildLog } from './build-log.js';
import type { RunStatus, StatusFile } from './run-status.js';

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
  /** Packs the build bundle and uploads it (in the background). */
  bundle(runDir: string, config: BuildConfig): void;
  /** Drains everything within `budgetMs`, records the outcome in status, releases the store. */
  close(budgetMs: number): Promise<void>;
}

export function attachLogStore(options: AttachOptions): AttachedLogStore {
  const { status, statusFile, customizationLog, validationLog, report } = options;
  let opened: OpenedLogStore | undefined;
  let uploads: RunUploads | undefined;
  let pendingBundle: string | undefined;
  let bundleWork: Promise<void> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  const note = (line: string): void => {
    report(line);
    customizationLog.write('ISOBUILD', line);
  };
  // Until announce(), the store's opening lines wait for their place in the output.
  let held: string[] | undefined = [];
  const announceLine = (line: string): void => {
    if (held) held.push(line);
    else report(line);
  };

  const ready = options.opening?.then(
    (store) => {
      opened = store;
      const urls = blobUrls(store.store, options.runId);
      const timeoutMs = store.store.deadlines.timeoutMs;
      const heartbeatMs = HEARTBEATS_PER_REQUEST_TIMEOUT * timeoutMs;
      const refreshBy = (): string => new Date(Date.now() + 2 * heartbeatMs + timeoutMs).toISOString();
      status.logStore = { ...urls, state: 'streaming', refreshBy: refreshBy() };
      uploads = new RunUploads({
        store: store.store,
        runId: options.runId,
        files: options.logs,
        ...(options.maxBlocksPerBlob ? { maxBlocksPerBlob: options.maxBlocksPerBlob } : {}),
        onHealthChange: (healthy, detail) =>
          note(
            healthy
              ? 'log storage is reachable again; the spooled lines are being uploaded in order'
              : detail.startsWith('log upload stopped')
                ? `warning: ${detail}; the logs stay on local disk only`
                : `log storage is unreachable (${detail}); lines are spooled to local disk and uploaded when it is back`,
          ),
      });
      const gate = (file: 'customization' | 'validation') => ({
        limitBytes: options.spoolLimitBytes,
        backlog: (written: number) => uploads?.backlog(file, written) ?? 0,
        onFull: () =>
          report(
            `warning: the ${file} log spool reached its bound (${options.spoolLimitBytes} bytes) while storage is unreachable; new lines are dropped and counted until it drains`,
          ),
      });
      customizationLog.setSpoolGate(gate('customization'));
      validationLog.setSpoolGate(gate('validation'));
      const live = uploads;
      // A finished run's status goes up in close(), after the last log lines.
      statusFile.onWrite = (text) => {
        if (status.runState === 'Running') live.publishStatus(text);
      };
      void statusFile.write(status);
      heartbeat = setInterval(() => {
        if (status.runState !== 'Running' || !status.logStore) return;
        status.logStore.refreshBy = refreshBy();
        void statusFile.write(status);
      }, heartbeatMs);
      heartbeat.unref();
      announceLine(`logs stream to ${urls.customization}`);
      if (pendingBundle) live.uploadBundle(pendingBundle);
    },
    (error: unknown) => {
      const detail = error instanceof Error ? error.message : describeStorageError(error);
      status.logStore = {
        customization: '',
        validation: '',
        status: '',
        bundle: '',
        state: 'unavailable',
        detail,
      };
      const line = `warning: logs are kept on local disk only; the log store could not be opened: ${detail}`;
      customizationLog.write('ISOBUILD', line);
      announceLine(line);
    },
  );

  const settled = async (budgetMs: number): Promise<void> => {
    if (!ready) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ready, new Promise((resolve) => (timer = setTimeout(resolve, budgetMs)))]);
    clearTimeout(timer);
  };

  return {
    async announce(budgetMs) {
      if (!held) return; // said already
      await settled(budgetMs);
      const lines = held;
      held = undefined;
      if (ready && lines.length === 0)
        report(
          'the log store is not open yet; the logs are kept locally and uploaded from their first line once it is',
        );
      for (const line of lines) report(line);
    },
    settled,
    bundle(runDir, config) {
      const file = join(runDir, LOG_BLOBS.bundle);
      const work = (async () => {
        await writeEffectiveConfig(join(runDir, 'packer', 'effective-config.json'), config);
        await packBundle(file, runDir, ['packer']);
        pendingBundle = file;
        uploads?.uploadBundle(file);
      })();
      work.catch((error: unknown) =>
        note(`warning: the build bundle could not be packed: ${(error as Error).message}`),
      );
      bundleWork = work.catch(() => undefined);
    },
    async close(budgetMs) {
      await bundleWork;
      await ready;
      clearInterval(heartbeat);
      statusFile.onWrite = undefined;
      const logStore = status.logStore;
      if (uploads && opened && logStore) {
        // The run's outcome goes up at once, saying that its last lines are still on their way.
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
      await opened?.close();
    },
  };
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
