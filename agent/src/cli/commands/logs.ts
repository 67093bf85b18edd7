/**
 * `isobuild logs <runId>`: a run's status and log from the log store, live with --follow. It says so,
 * and exits 4, when the stored log is not the whole log (the run's status tells how much was written).
 */
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { loadLogStoreConfig, RUN_ID_PATTERN, storeSecrets } from '../../settings/build-config.js';
import { combinedOptionHelp, optionHelp } from '../../settings/option-help.js';
import { processEnvironment } from '../../settings/process-environment.js';
import { commandOptions } from '../../settings/settings-table.js';
import { readDuration } from '../../duration.js';
import { EXIT_CODES, IsobuildError, isIsobuildError } from '../../errors.js';
import { describeStorageError } from '../../logstore/append-uploader.js';
import { BUNDLE_LIMITS, unpackBundle } from '../../logstore/bundle.js';
import { azuriteDataDir } from '../../logstore/embedded-azurite.js';
import {
  readLog,
  readStoredFile,
  readStoredStatus,
  storedLogProblem,
  type LogKind,
  type StoredStatus,
} from '../../logstore/log-reader.js';
import { openConfiguredLogStore, type OpenedLogStore } from '../../logstore/open-log-store.js';
import { LOG_BLOBS } from '../../logstore/run-uploads.js';
import { summaryLine } from '../../run/sbom-record.js';
import type { CommandIo } from '../command.js';

/** How long `--follow` waits for a run that has not written its status yet. */
const FOLLOW_WAIT_MS = 10 * 60_000;

export const LOGS_HELP = `Usage: isobuild logs <runId> [--follow] [--validation] [--bundle DIR] [--sbom | --provenance] [options]

Prints a run's status (stderr), then its customization log (stdout) from the log store a build wrote
to. With --follow it keeps printing new lines as the build writes them and exits when the run ends.

Options:
  -f, --follow             tail the log until the run finishes (waits up to 10 minutes for a run that
                           has not started yet)
  --validation             the validation log instead of the customization log
  --bundle DIR             fetch the build bundle (rendered Packer files, artifacts with their sha256,
                           the effective configuration) and unpack it into DIR instead of printing the log
  --sbom                   print the run's SBOM (CycloneDX JSON) instead of the log
  --provenance             print the run's provenance record (in-toto statement, SLSA provenance v1)
  --interval DUR           how often --follow looks for new lines (default 500ms)
${optionHelp('logs', ['workDir'])}
${combinedOptionHelp(
  ['storageConnectionString', 'storageSasUrl', 'storageAccountUrl', 'storageContainer'],
  [
    'the same store settings as "isobuild build" (and the same ISOBUILD_STORAGE_*',
    'variables); with none, the embedded Azurite under --work-dir',
  ],
)}
${optionHelp('logs', ['storageTimeout'])}
  -h, --help               show this help

Exit codes: 0 printed (with --follow: the run succeeded), 1 with --follow: the run failed or was
canceled, 2 bad arguments or no such run, 4 the log store cannot be reached, or the stored log is
incomplete (a warning says what is missing; the run directory has the full log).`;

export async function runLogs(argv: string[], io: CommandIo): Promise<number> {
  try {
    return await printLogs(argv, io);
  } catch (error) {
    // SIGINT/SIGTERM interrupt a wait or a read: say so (exit 130 / 143), not "internal error".
    const reason: unknown = io.signal.reason;
    if (!io.signal.aborted || !isIsobuildError(reason)) throw error;
    io.err(`isobuild logs: ${reason.message}`);
    return /SIGTERM/.test(reason.message) ? EXIT_CODES.terminated : EXIT_CODES.interrupted;
  }
}

async function printLogs(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      follow: { type: 'boolean', short: 'f' },
      validation: { type: 'boolean' },
      bundle: { type: 'string' },
      sbom: { type: 'boolean' },
      provenance: { type: 'boolean' },
      interval: { type: 'string' },
      ...commandOptions('logs'),
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(LOGS_HELP);
    return 0;
  }
  const runId = positionals[0];
  if (!runId || positionals.length > 1)
    throw new IsobuildError('usage', 'logs needs one run id: isobuild logs <runId> [--follow].');
  if (!RUN_ID_PATTERN.test(runId))
    throw new IsobuildError(
      'usage',
      `"${runId}" is not a run id: run ids are 1–64 letters, digits, -, _ or . starting with a letter or digit, as "isobuild build" prints them.`,
    );
  const records = (['bundle', 'sbom', 'provenance'] as const).filter(
    (flag) => values[flag] !== undefined && values[flag] !== false,
  );
  if (records.length > 1 || (records.length > 0 && values.follow))
    throw new IsobuildError(
      'usage',
      `--${[...records, ...(values.follow ? ['follow'] : [])].join(' and --')} cannot be combined: logs prints one thing at a time (run it once for each).`,
    );
  const interval = values.interval === undefined ? { ms: 500 } : readDuration(values.interval);
  if ('problem' in interval) throw new IsobuildError('usage', `--interval: ${interval.problem}`);
  if (interval.ms <= 0)
    throw new IsobuildError('usage', `--interval ${values.interval}: write a duration such as 500ms or 2s.`);
  const intervalMs = interval.ms;
  const config = loadLogStoreConfig(values, processEnvironment());
  io.registerSecrets(storeSecrets(config.store));
  // With --follow, a run that has not started yet is waited for (a container may still be starting).
  const waitUntil = Date.now() + (values.follow ? FOLLOW_WAIT_MS : 0);
  let said = false;
  const sayWaiting = (): void => {
    if (!said)
      io.err(`isobuild logs: waiting for run ${runId} to start (up to ${FOLLOW_WAIT_MS / 60_000} min)…`);
    said = true;
  };
  // The embedded store is only opened where a build has used one: `logs` never creates a work directory.
  if (!config.store) await awaitEmbeddedStore(config.workDir, runId, waitUntil, intervalMs, sayWaiting, io);

  let opened: OpenedLogStore;
  try {
    opened = await openConfiguredLogStore(config, io.signal);
  } catch (error) {
    throw unreachable(
      error,
      config.store ? 'the configured log store' : `the embedded store in ${config.workDir}`,
    );
  }
  try {
    const { store } = opened;
    const where = opened.embedded
      ? `the embedded store of ${config.workDir} (pass the build's --work-dir)`
      : opened.store.displayUrl;
    let status: StoredStatus | undefined;
    for (;;) {
      try {
        status = await readStoredStatus(store, runId, io.signal);
      } catch (error) {
        throw unreachable(error, opened.store.displayUrl);
      }
      if (status || Date.now() >= waitUntil) break;
      sayWaiting();
      await sleep(intervalMs, undefined, { signal: io.signal });
    }
    if (!status)
      throw new IsobuildError(
        'runNotFound',
        `no run "${runId}" in ${where}: check the run id (it is printed by "isobuild build") and the store settings.`,
      );
    io.err(describeStatus(status));

    if (values.bundle !== undefined) return await fetchBundle(opened, runId, values.bundle, io);
    if (values.sbom) return await printRecord(opened, status, 'sbom', io);
    if (values.provenance) return await printRecord(opened, status, 'provenance', io);

    const decoder = new StringDecoder('utf8');
    const log: LogKind = values.validation ? 'validation' : 'customization';
    let storedBytes = 0;
    try {
      for await (const chunk of readLog(store, runId, log, {
        follow: values.follow === true,
        intervalMs,
        signal: io.signal,
        onTrouble: (detail) =>
          io.err(
            detail
              ? `isobuild logs: the log store is unreachable (${detail}); retrying…`
              : 'isobuild logs: the log store is reachable again.',
          ),
        onOverdue: (overdue) =>
          io.err(
            `isobuild logs: warning: run ${runId}'s status should have been updated by ${overdue.logStore?.refreshBy}; the build may have stopped or lost the store. Still following for a while…`,
          ),
      })) {
        storedBytes += chunk.length;
        io.stream(decoder.write(chunk));
      }
    } catch (error) {
      if (io.signal.aborted) throw error;
      throw unreachable(error, opened.store.displayUrl);
    }
    io.stream(decoder.end());
    let final = status;
    if (values.follow) {
      final = (await readStoredStatus(store, runId, io.signal).catch(() => undefined)) ?? status;
      io.err(describeStatus(final));
    }
    const problem = storedLogProblem(final, log, storedBytes);
    if (problem) {
      const local = final.logs?.[log];
      throw new IsobuildError(
        'logIncomplete',
        `the stored log of run ${runId} is incomplete: ${problem}. The full log is ${local ? `${local} ` : 'in the run directory '}on the machine that ran the build.`,
      );
    }
    if (!values.follow) return EXIT_CODES.ok;
    return final.runState === 'Succeeded' ? EXIT_CODES.ok : EXIT_CODES.buildFailed;
  } finally {
    await opened.close();
  }
}

/**
 * With no store configured, runs live in the embedded store under the work directory. A directory no
 * build has used holds no runs (and is not created by looking); --follow waits for a build to start there.
 */
async function awaitEmbeddedStore(
  workDir: string,
  runId: string,
  waitUntil: number,
  intervalMs: number,
  sayWaiting: () => void,
  io: CommandIo,
): Promise<void> {
  const present = (path: string): Promise<boolean> =>
    access(path).then(
      () => true,
      () => false,
    );
  while (!(await present(azuriteDataDir(workDir)))) {
    if (Date.now() >= waitUntil)
      throw new IsobuildError(
        'runNotFound',
        `no runs in ${workDir}: ${(await present(workDir)) ? 'no build has stored logs there' : 'the directory does not exist'}. Pass the --work-dir the build used (its last lines say "read it with: isobuild logs ${runId} --work-dir …"), or the store settings it used.`,
      );
    sayWaiting();
    await sleep(intervalMs, undefined, { signal: io.signal });
  }
}

function describeStatus(status: StoredStatus): string {
  const times = [
    status.startTime ? `started ${status.startTime}` : '',
    status.endTime ? `ended ${status.endTime}` : '',
  ].filter(Boolean);
  const resumed = status.resumedFrom
    ? `\nRun ${status.runId} continues run ${status.resumedFrom.runId} from step ${status.resumedFrom.fromStep} ${status.resumedFrom.step}; the steps before it were done there.`
    : '';
  return `Run ${status.runId}: ${status.runState}/${status.runSubState}: ${status.message}${times.length ? ` (${times.join(', ')})` : ''}${resumed}${describeSbom(status)}`;
}

/** One line on the run's SBOM, once it is collected or failed (`--sbom` prints the document). */
function describeSbom({ runId, sbom }: StoredStatus): string {
  if (sbom?.state === 'collected')
    return `\n${summaryLine(sbom, sbom.baseline)}; print it with: isobuild logs ${runId} --sbom`;
  if (sbom?.state === 'failed') return `\nNo SBOM: ${sbom.detail ?? 'the inventory could not be collected'}`;
  return '';
}

async function fetchBundle(
  opened: OpenedLogStore,
  runId: string,
  dir: string,
  io: CommandIo,
): Promise<number> {
  const { deadlines } = opened.store;
  const blob = opened.store.container.getBlobClient(`${runId}/${LOG_BLOBS.bundle}`);
  const properties = await deadlines
    .run((abortSignal) => blob.getProperties({ abortSignal }), { signal: io.signal })
    .catch((error: unknown) => {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw unreachable(error, opened.store.displayUrl);
    });
  if (!properties)
    throw new IsobuildError(
      'runNotFound',
      `run "${runId}" has no build bundle in the store: the build ended before its Packer files were rendered.`,
    );
  if ((properties.contentLength ?? 0) > BUNDLE_LIMITS.maxBytes)
    throw new IsobuildError(
      'artifactFailed',
      `the build bundle of run "${runId}" is ${properties.contentLength} bytes, over the ${BUNDLE_LIMITS.maxBytes}-byte limit; download it yourself with a storage tool.`,
    );
  const temp = await mkdtemp(join(tmpdir(), 'isobuild-bundle-'));
  try {
    const file = join(temp, LOG_BLOBS.bundle);
    await deadlines
      .run((abortSignal) => blob.downloadToFile(file, 0, undefined, { abortSignal }), {
        signal: io.signal,
        bytes: properties.contentLength ?? 0,
      })
      .catch((error: unknown) => {
        throw unreachable(error, opened.store.displayUrl);
      });
    const entries = await unpackBundle(file, dir);
    io.out(`Unpacked the build bundle of run ${runId} into ${dir} (${entries} entries).`);
    return EXIT_CODES.ok;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/** Prints one of the run's records (stdout), as stored. */
async function printRecord(
  opened: OpenedLogStore,
  status: StoredStatus,
  record: 'sbom' | 'provenance',
  io: CommandIo,
): Promise<number> {
  const { runId } = status;
  const name = LOG_BLOBS[record];
  const data = await readStoredFile(opened.store, runId, name, io.signal).catch((error: unknown) => {
    throw unreachable(error, opened.store.displayUrl);
  });
  if (data) {
    io.out(data.toString('utf8').replace(/\n$/, ''));
    return EXIT_CODES.ok;
  }
  if (status.logStore?.state === 'incomplete')
    throw new IsobuildError(
      'logIncomplete',
      `run "${runId}" has no ${name} in the store: not everything it wrote was stored (${status.logStore.detail ?? 'see its status'}). The run directory on the machine that built it has the file.`,
    );
  const why =
    status.runState === 'Running'
      ? `the run is still going; the ${record === 'sbom' ? 'SBOM is written after its last validator' : 'provenance record is written when it ends'}`
      : record === 'sbom'
        ? `its SBOM is ${status.sbom?.state ?? 'not recorded'}${status.sbom?.detail ? ` (${status.sbom.detail})` : ''}: built with --no-sbom, the inventory could not be collected, or the run ended before its last step`
        : 'it ended before its Packer files were rendered, or was built by an isobuild without provenance records';
  throw new IsobuildError('runNotFound', `run "${runId}" has no ${name} in the store: ${why}.`);
}

function unreachable(error: unknown, where: string): Error {
  if (error instanceof IsobuildError) return error;
  return new IsobuildError(
    'storeUnavailable',
    `cannot read ${where}: ${describeStorageError(error)}. Check the store settings and that it is reachable.`,
  );
}
