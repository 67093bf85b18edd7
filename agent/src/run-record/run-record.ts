/**
 * An earlier run, as later commands need it (`isobuild shell`, `isobuild build --resume`, `isobuild diff`):
 * its outcome, its steps with their digests, how it reached its build VM, and the records it wrote (SBOM,
 * inventory before customizing, provenance). Read from the run directory in the work dir, else from the
 * configured log store. Never holds a credential: those come from the same
 * configuration sources as `build`, each time.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IsobuildError } from '../errors.js';
import { openConfiguredLogStore } from '../logstore/open-log-store.js';
import { describeStorageError } from '../logstore/append-uploader.js';
import { readStoredFile, readStoredStatus } from '../logstore/log-reader.js';
import { LOG_BLOBS } from '../logstore/run-uploads.js';
import type { RunStatus } from '../run/run-status.js';
import type { LogStoreConfig } from '../settings/build-config.js';
import { RUN_ID_PATTERN } from '../settings/build-config.js';

/** The records a run writes besides its status and logs. */
export type RunFile = 'sbom' | 'baseline' | 'provenance';

export interface RunRecord {
  readonly status: RunStatus;
  /** Where it was found, for messages: the status file's path, or the store's blob. */
  readonly source: string;
  /** The records asked for that the run has, each with where it was read. */
  readonly files: Partial<Record<RunFile, { readonly text: string; readonly source: string }>>;
  /** Records that exist but could not be read, and why: they are optional, so reading them never fails. */
  readonly unreadable: Partial<Record<RunFile, string>>;
}

type Files = { -readonly [F in RunFile]?: { text: string; source: string } };
type Unreadable = { -readonly [F in RunFile]?: string };

/**
 * @throws IsobuildError 'runNotFound' (exit 2) naming where it looked; 'usage' for a malformed run id;
 *   'storeUnavailable' (exit 4) when the configured store cannot be read.
 */
export async function readRunRecord(
  runId: string,
  store: LogStoreConfig,
  signal?: AbortSignal,
  files: readonly RunFile[] = [],
): Promise<RunRecord> {
  if (!RUN_ID_PATTERN.test(runId))
    throw new IsobuildError(
      'usage',
      `"${runId}" is not a run id: run ids are 1–64 letters, digits, -, _ or . (starting with a letter or digit).`,
    );
  const runDir = join(store.workDir, runId);
  const file = join(runDir, LOG_BLOBS.status);
  const local = await readLocalStatus(file);
  if (local) return { status: local, source: file, ...(await readLocalFiles(runDir, files)) };
  if (store.store) {
    const stored = await readFromStore(runId, store, files, signal);
    if (stored) return stored;
  }
  throw new IsobuildError(
    'runNotFound',
    `there is no run ${runId} in ${join(store.workDir, runId)}${store.store ? ' or in the configured log store' : ''}: pass the --work-dir (or the store settings) the run used, or check the id (isobuild logs lists what a run wrote).`,
  );
}

async function readLocalStatus(file: string): Promise<RunStatus | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IsobuildError('runNotFound', `cannot read ${file}: ${(error as Error).message}.`);
  }
  return parseStatus(text, file);
}

async function readLocalFiles(
  runDir: string,
  wanted: readonly RunFile[],
): Promise<Pick<RunRecord, 'files' | 'unreadable'>> {
  const files: Files = {};
  const unreadable: Unreadable = {};
  for (const name of wanted) {
    const source = join(runDir, LOG_BLOBS[name]);
    try {
      files[name] = { text: await readFile(source, 'utf8'), source };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        unreadable[name] = `cannot read ${source}: ${(error as Error).message}`;
    }
  }
  return { files, unreadable };
}

async function readFromStore(
  runId: string,
  config: LogStoreConfig,
  wanted: readonly RunFile[],
  signal?: AbortSignal,
): Promise<RunRecord | undefined> {
  let opened;
  try {
    opened = await openConfiguredLogStore(config, signal);
  } catch (error) {
    throw new IsobuildError(
      'storeUnavailable',
      `the log store could not be opened to find run ${runId}: ${(error as Error).message}`,
    );
  }
  const where = opened.store.displayUrl;
  try {
    const status = await readStoredStatus(opened.store, runId, signal).catch((error: unknown) => {
      throw new IsobuildError(
        'storeUnavailable',
        `cannot read run ${runId}'s status.json from ${where}: ${describeStorageError(error)}. Check the store settings and that it is reachable.`,
      );
    });
    if (!status) return undefined;
    const source = `${where}/${runId}/status.json`;
    const files: Files = {};
    const unreadable: Unreadable = {};
    for (const name of wanted) {
      const blob = `${where}/${runId}/${LOG_BLOBS[name]}`;
      try {
        const data = await readStoredFile(opened.store, runId, LOG_BLOBS[name], signal);
        if (data) files[name] = { text: data.toString('utf8'), source: blob };
      } catch (error) {
        signal?.throwIfAborted();
        unreadable[name] = `cannot read ${blob}: ${describeStorageError(error)}`;
      }
    }
    return { status: parseStatus(JSON.stringify(status), source), source, files, unreadable };
  } finally {
    await opened.close();
  }
}

function parseStatus(text: string, source: string): RunStatus {
  try {
    const status = JSON.parse(text) as RunStatus;
    if (
      typeof status.runId === 'string' &&
      typeof status.runState === 'string' &&
      Array.isArray(status.customizers)
    )
      return status;
  } catch {
    // reported below
  }
  throw new IsobuildError(
    'runNotFound',
    `${source} is not a status.json isobuild wrote; it cannot be used to find the run.`,
  );
}
