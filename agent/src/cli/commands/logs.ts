/** `isobuild logs <runId>`: a run's status and log from the log store, live with --follow. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { loadLogStoreConfig, parseDuration, storeSecrets } from '../../build/build-config.js';
import { EXIT_CODES, IsobuildError } from '../../errors.js';
import { describeStorageError } from '../../logstore/append-uploader.js';
import { BUNDLE_LIMITS, unpackBundle } from '../../logstore/bundle.js';
import { readLog, readStoredStatus, type StoredStatus } from '../../logstore/log-reader.js';
import { openLogStore, type OpenedLogStore } from '../../logstore/open-log-store.js';
import { LOG_BLOBS } from '../../logstore/run-uploads.js';
import type { CommandIo } from '../command.js';

/** How long `--follow` waits for a run that has not written its status yet. */
const FOLLOW_WAIT_MS = 10 * 60_000;

export const LOGS_HELP = `Usage: isobuild logs <runId> [--follow] [--validation] [--bundle DIR] [options]

Prints a run's status (stderr), then its customization log (stdout) from the log store a build wrote
to. With --follow it keeps printing new lines as the build writes them and exits when the run ends.

Options:
  -f, --follow             tail the log until the run finishes (waits up to 10 minutes for a run that
                           has not started yet)
  --validation             the validation log instead of the customization log
  --bundle DIR             fetch the build bundle (rendered Packer files, artifacts with their sha256,
                           the effective configuration) and unpack it into DIR instead of printing the log
  --interval DUR           how often --follow looks for new lines (default 500ms)
  --work-dir DIR           the build's work directory, where the embedded store keeps its data
                           (default .work/runs)                                    ISOBUILD_WORK_DIR
  --storage-connection-string S, --storage-sas-url URL, --storage-account-url URL, --storage-container NAME
                           the same store settings as "isobuild build" (and the same ISOBUILD_STORAGE_*
                           variables); with none, the embedded Azurite under --work-dir
  -h, --help               show this help

Exit codes: 0 printed (with --follow: the run succeeded), 1 with --follow: the run failed or was
canceled, 2 bad arguments or no such run, 4 the log store cannot be reached.`;

export async function runLogs(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      follow: { type: 'boolean', short: 'f' },
      validation: { type: 'boolean' },
      bundle: { type: 'string' },
      interval: { type: 'string' },
      'work-dir': { type: 'string' },
      'storage-connection-string': { type: 'string' },
      'storage-sas-url': { type: 'string' },
      'storage-account-url': { type: 'string' },
      'storage-container': { type: 'string' },
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
  const intervalMs = values.interval === undefined ? 500 : parseDuration(values.interval);
  if (intervalMs === undefined || intervalMs <= 0)
    throw new IsobuildError('usage', `--interval ${values.interval}: write a duration such as 500ms or 2s.`);
  const config = loadLogStoreConfig(values, process.env);
  io.registerSecrets(storeSecrets(config.store));

  let opened: OpenedLogStore;
  try {
    opened = await openLogStore(config.store, config.storeContainer, config.workDir, io.signal);
  } catch (error) {
    throw unreachable(
      error,
      config.store ? 'the configured log store' : `the embedded store in ${config.workDir}`,
    );
  }
  try {
    const { container } = opened.store;
    const where = opened.embedded
      ? `the embedded store of ${config.workDir} (pass the build's --work-dir)`
      : opened.store.displayUrl;
    let status: StoredStatus | undefined;
    // With --follow, a run that has not started yet is waited for (a container may still be starting).
    const waitUntil = Date.now() + (values.follow ? FOLLOW_WAIT_MS : 0);
    for (let waiting = false; ; waiting = true) {
      try {
        status = await readStoredStatus(container, runId, io.signal);
      } catch (error) {
        throw unreachable(error, opened.store.displayUrl);
      }
      if (status || Date.now() >= waitUntil) break;
      if (!waiting)
        io.err(`isobuild logs: waiting for run ${runId} to start (up to ${FOLLOW_WAIT_MS / 60_000} min)…`);
      await sleep(intervalMs, undefined, { signal: io.signal });
    }
    if (!status)
      throw new IsobuildError(
        'runNotFound',
        `no run "${runId}" in ${where}: check the run id (it is printed by "isobuild build") and the store settings.`,
      );
    io.err(describeStatus(status));

    if (values.bundle !== undefined) return await fetchBundle(opened, runId, values.bundle, io);

    const decoder = new StringDecoder('utf8');
    const log = values.validation ? 'validation' : 'customization';
    try {
      for await (const chunk of readLog(container, runId, log, {
        follow: values.follow === true,
        intervalMs,
        signal: io.signal,
        onTrouble: (detail) =>
          io.err(
            detail
              ? `isobuild logs: the log store is unreachable (${detail}); retrying…`
              : 'isobuild logs: the log store is reachable again.',
          ),
      })) {
        io.stream(decoder.write(chunk));
      }
    } catch (error) {
      if (io.signal.aborted) throw error;
      throw unreachable(error, opened.store.displayUrl);
    }
    io.stream(decoder.end());
    if (!values.follow) return EXIT_CODES.ok;
    const final = await readStoredStatus(container, runId, io.signal);
    if (final) io.err(describeStatus(final));
    return final?.runState === 'Succeeded' ? EXIT_CODES.ok : EXIT_CODES.buildFailed;
  } finally {
    await opened.close();
  }
}

function describeStatus(status: StoredStatus): string {
  const times = [
    status.startTime ? `started ${status.startTime}` : '',
    status.endTime ? `ended ${status.endTime}` : '',
  ].filter(Boolean);
  return `Run ${status.runId}: ${status.runState}/${status.runSubState}: ${status.message}${times.length ? ` (${times.join(', ')})` : ''}`;
}

async function fetchBundle(
  opened: OpenedLogStore,
  runId: string,
  dir: string,
  io: CommandIo,
): Promise<number> {
  const blob = opened.store.container.getBlobClient(`${runId}/${LOG_BLOBS.bundle}`);
  const properties = await blob.getProperties({ abortSignal: io.signal }).catch(() => undefined);
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
    await blob.downloadToFile(file, 0, undefined, { abortSignal: io.signal });
    const entries = await unpackBundle(file, dir);
    io.out(`Unpacked the build bundle of run ${runId} into ${dir} (${entries} entries).`);
    return EXIT_CODES.ok;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

function unreachable(error: unknown, where: string): Error {
  if (error instanceof IsobuildError) return error;
  return new IsobuildError(
    'storeUnavailable',
    `cannot read ${where}: ${describeStorageError(error)}. Check the store settings and that it is reachable.`,
  );
}
