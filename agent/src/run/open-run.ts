/**
 * Opening and closing a run: claiming the run id, the run's logs and status.json, the log store joined to
 * them; and at the end the final status, written locally and stored, with the logs drained.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretMasker } from '../mask-secrets.js';
import { openLogStore, type OpenedLogStore } from '../logstore/open-log-store.js';
import { LOG_BLOBS } from '../logstore/run-uploads.js';
import { configSecrets } from '../settings/build-config.js';
import { attachLogStore } from './attach-log-store.js';
import { structuredBuildEvents } from './build-events.js';
import { BuildLog } from './build-log.js';
import { logReference, runIdTaken, type Verdict } from './failure-messages.js';
import { Progress } from './progress.js';
import { writeProvenance } from './provenance-record.js';
import type { PreparedRun, RunContext } from './run-context.js';
import type { ResumePlan } from './resume-plan.js';
import { initialStatus, StatusFile, type RunStatus, type RunTarget } from './run-status.js';

/** How long the log store may still take to open and take the final status after a cancel. */
const STORE_CLEANUP_BUDGET_MS = 15_000;
/** How long the final message may wait for the store to open, so that it names the stored log. */
const STORE_SETTLE_BUDGET_MS = 10_000;

export async function openRun(prepared: PreparedRun): Promise<RunContext> {
  const { config, template, options, runDir } = prepared;
  // Creating the run directory is what claims the run id: two builds with one id cannot both get here.
  await mkdir(runDir).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'EEXIST' ? runIdTaken(runDir) : error;
  });
  const storeMayLoad = deferred();
  const storeOpening = startStoreOpening(prepared, storeMayLoad.promise);
  const secrets = [...configSecrets(config), ...template.secureValues];
  options.registerSecrets?.(secrets);
  const masker = new SecretMasker(secrets);
  const mask = (text: string): string => masker.mask(text);
  options.report(
    `validate template ${options.templateFile} ✓ (${template.os}, ${template.customize.length} customizer(s), ${template.validate.inVMValidations.length} validator(s))`,
  );
  const tmpDir = join(runDir, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  const logFiles = {
    customization: join(runDir, 'customization.log'),
    validation: join(runDir, 'validation.log'),
  };
  const status = initialStatus(
    config.runId,
    options.templateFile,
    template,
    logFiles,
    runTarget(prepared),
    config.sbom,
  );
  const statusFile = new StatusFile(join(runDir, 'status.json'), mask);
  warnOnceOnStatusWriteFailure(statusFile, options.report);
  const logs = {
    customization: new BuildLog(logFiles.customization, config.runId, mask),
    validation: new BuildLog(logFiles.validation, config.runId, mask),
  };
  const store = attachLogStore({
    opening: storeOpening,
    runId: config.runId,
    logs: logFiles,
    customizationLog: logs.customization,
    validationLog: logs.validation,
    statusFile,
    status,
    spoolLimitBytes: config.logSpoolBytes,
    maxBlocksPerBlob: config.logMaxBlocks,
    report: options.report,
  });
  const events = structuredBuildEvents(options.logger, config.runId, logs, status.runSubState);
  const totalSteps = countSteps(prepared);
  const run: RunContext = {
    ...prepared,
    packerDir: join(runDir, 'packer'),
    tmpDir,
    timeoutMs: options.buildTimeoutMs ?? template.buildTimeoutInMinutes * 60_000,
    status,
    statusFile,
    logs,
    store,
    events,
    progress: new Progress(options.report, totalSteps),
    mask,
    problems: [],
    allowStoreLoad: storeMayLoad.resolve,
    update: async (changes) => {
      if (changes.runSubState && changes.runSubState !== status.runSubState)
        events.phase(changes.runSubState);
      Object.assign(status, changes);
      if (changes.message)
        logs.customization.write('ISOBUILD', `${status.runState}/${status.runSubState}: ${changes.message}`);
      await statusFile.write(status);
    },
    position: 0,
    totalSteps,
  };
  await run.update({ runSubState: 'Building', message: `run ${config.runId} started` });
  if (prepared.plan) await skipDoneSteps(run, prepared.plan);
  return run;
}

/** A resumed run: the steps before its start are recorded as skipped (with the run that did them), and said so. */
async function skipDoneSteps(run: RunContext, plan: ResumePlan): Promise<void> {
  const { status } = run;
  for (const skipped of plan.skipped) {
    const step =
      skipped.kind === 'deprovision step'
        ? status.deprovision
        : (skipped.kind === 'customizer' ? status.customizers : status.validators)[skipped.index];
    if (!step) continue;
    step.outcome = 'skipped';
    if (skipped.doneIn) step.doneIn = skipped.doneIn;
    const why = skipped.doneIn ? `done in ${skipped.doneIn}` : '--from-step';
    run.options.report(`[${skipped.position}/${run.totalSteps}] ${skipped.label} skipped (${why})`);
  }
  run.position = plan.fromStep - 1;
  const start = `step ${plan.fromStep}/${run.totalSteps}${plan.start ? ` ${plan.start.label}` : ''}`;
  const message = plan.resumedFrom
    ? `run ${run.config.runId} continues run ${plan.resumedFrom.runId} from ${start}`
    : `run ${run.config.runId} starts at ${start} (--from-step)`;
  if (plan.resumedFrom) status.resumedFrom = plan.resumedFrom;
  run.options.report(message);
  await run.update({ message });
}

/** Ends the run: the final status (naming the stored log), logs closed, the run's tmp dir gone, logs drained. */
export async function closeRun(run: RunContext, verdict: Verdict): Promise<void> {
  run.progress.stopHeartbeat();
  run.allowStoreLoad();
  await run.store.settled(STORE_SETTLE_BUDGET_MS); // the message below names the stored log
  await run.store.announce(0); // a build that ends before its first step still says where its logs are
  run.status.endTime = new Date().toISOString();
  // Failure messages say which run and where its full log is (the stored one when there is a store).
  const log = run.status.logStore?.[verdict.log] || run.status.logs[verdict.log];
  const reference = verdict.runState === 'Succeeded' ? '' : logReference(run.config.runId, log);
  if (run.status.sbom.state === 'pending') {
    run.status.sbom.state = 'not collected';
    run.status.sbom.detail = 'the run ended before the inventory after customizing';
  }
  await run.update({ runState: verdict.runState, message: `${verdict.message}${reference}` });
  await writeProvenance(run).catch((error: unknown) => {
    const detail = run.mask((error as Error).message);
    run.status.provenance = { state: 'failed', detail };
    run.options.report(
      `warning: no provenance record: ${detail}. The build's outcome stands; status.json (provenance) says so.`,
    );
  });
  await run.statusFile.write(run.status);
  await Promise.all([run.logs.customization.close(), run.logs.validation.close()]);
  await rm(run.tmpDir, { recursive: true, force: true });
  await run.store.close(run.config.logDrainMs);
  await removeAbandonedBundles(run.runDir);
}

/** A bundle packing given up for its budget may still be writing its temporary file: it is not the run's. */
async function removeAbandonedBundles(runDir: string): Promise<void> {
  const names = await readdir(runDir).catch(() => []);
  await Promise.all(
    names
      .filter((name) => name.startsWith(`${LOG_BLOBS.bundle}.`) && name.endsWith('.tmp'))
      .map((name) => rm(join(runDir, name), { force: true })),
  );
}

/**
 * The embedded Azurite starts now, in its own process; for a configured store the storage SDK loads once
 * the Packer files are rendered (or the run ends first). The run never waits for the store: uploads follow
 * the local logs from their first byte whenever it is ready.
 */
function startStoreOpening(
  { config, options }: PreparedRun,
  mayLoad: Promise<void>,
): Promise<OpenedLogStore> | undefined {
  if (config.localLogsOnly) return undefined;
  // A cancel must not stop the store from opening: the cancelled run's status still belongs there. The
  // opening gets its own budget after a cancel instead.
  const opening = openLogStore(
    config.store,
    config.storeContainer,
    config.workDir,
    afterAbortWithin(options.signal, STORE_CLEANUP_BUDGET_MS),
    // With the embedded Azurite the SDK loads while Azurite starts; it is needed as soon as it is up.
    config.store ? mayLoad : undefined,
    config.storageTimeoutMs,
  );
  opening.catch(() => undefined); // handled where it is awaited
  return opening;
}

function warnOnceOnStatusWriteFailure(statusFile: StatusFile, report: (line: string) => void): void {
  let warned = false;
  statusFile.onError = (error) => {
    if (warned) return; // once is enough; the next successful write catches up
    warned = true;
    report(
      `warning: could not write ${statusFile.path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); the build goes on and retries with the next change`,
    );
  };
}

/** Steps the progress lines count: customizers (unless only the source is validated), validators, deprovision. */
function countSteps({ config, template }: PreparedRun): number {
  const validation = template.validate;
  return (
    (validation.sourceValidationOnly ? 0 : template.customize.length) +
    validation.inVMValidations.length +
    (deprovisions({ config, template }) ? 1 : 0)
  );
}

/** How this run reaches its VM, recorded for `isobuild shell` and `--resume`. */
function runTarget({ vmPath, config }: PreparedRun): RunTarget {
  return {
    os: vmPath.os,
    host: config.host,
    port: vmPath.port,
    topology: vmPath.topology,
    ...(vmPath.hop.kind === 'proxy' ? { proxyHost: vmPath.hop.host } : {}),
    user: vmPath.user,
  };
}

/** Whether the run ends with AIB's deprovision step. */
export function deprovisions({ config, template }: Pick<PreparedRun, 'config' | 'template'>): boolean {
  return !config.skipDeprovision && !template.validate.sourceValidationOnly;
}

/** A signal that aborts `budgetMs` after `signal` does: cleanup work gets a fresh, bounded budget. */
function afterAbortWithin(signal: AbortSignal, budgetMs: number): AbortSignal {
  const controller = new AbortController();
  const arm = (): void => {
    setTimeout(() => controller.abort(signal.reason), budgetMs).unref();
  };
  if (signal.aborted) arm();
  else signal.addEventListener('abort', arm, { once: true });
  return controller.signal;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export type { RunStatus };
