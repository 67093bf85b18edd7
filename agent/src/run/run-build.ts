/**
 * One image build, in AIB's phases. Every input is checked first (prepare), then the run is opened
 * (run id, logs, status.json, log store) and its phases run in order: render (artifacts and HCL, before
 * any VM contact), resume-check (a resumed run skips only unchanged steps), connect (relay and readiness),
 * the inventory before customizing, staging (Windows File sources, uploaded by isobuild), customize, the
 * staging's removal, validate, the inventory after (the SBOM), deprovision,
 * distribute; the provenance record is written as the run closes. The phase runner undoes what the phases started in reverse
 * order, and decides once whether the run succeeded, failed, timed out or was cancelled; the final status
 * says what happened, where, and what to do.
 */
import { closeRun, openRun } from './open-run.js';
import { judgeRun } from './failure-messages.js';
import { runPhases, type Phase } from './phase-runner.js';
import { connectPhase } from './phases/connect.js';
import { customizePhase } from './phases/customize.js';
import { deprovisionPhase } from './phases/deprovision.js';
import { inventoryAfterPhase, inventoryBeforePhase } from './phases/inventory.js';
import { distributePhase } from './phases/distribute.js';
import { prepareRun } from './phases/prepare.js';
import { renderPhase } from './phases/render.js';
import { resumeCheckPhase } from './phases/resume-check.js';
import { stageFilesPhase, unstagePhase } from './phases/stage-files.js';
import { validatePhase } from './phases/validate.js';
import type { BuildOptions, BuildOutcome, RunContext } from './run-context.js';

export type { BuildOptions, BuildOutcome } from './run-context.js';

/** The phases after the run is opened, in order. */
export const BUILD_PHASES: readonly Phase<RunContext>[] = [
  renderPhase,
  resumeCheckPhase,
  connectPhase,
  inventoryBeforePhase,
  stageFilesPhase,
  customizePhase,
  unstagePhase,
  validatePhase,
  inventoryAfterPhase,
  deprovisionPhase,
  distributePhase,
];

/** Time the cleanups of all phases get together (the remote cleanup alone may take 30 s). */
const CLEANUP_BUDGET_MS = 60_000;

export async function runBuild(options: BuildOptions): Promise<BuildOutcome> {
  const started = Date.now();
  const prepared = await prepareRun(options); // bad input throws here: nothing exists yet
  const run = await openRun(prepared);
  const end = await runPhases(BUILD_PHASES, run, {
    cancel: options.signal,
    deadline: AbortSignal.timeout(run.timeoutMs),
    cleanupBudgetMs: CLEANUP_BUDGET_MS,
    onCleanupError: (phase, error) =>
      options.report(
        `warning: the cleanup after ${phase} failed: ${run.mask(error instanceof Error ? error.message : String(error))}`,
      ),
  });
  const verdict = judgeRun(end, run, started);
  // An internal error is the news: a failure while closing must not replace it.
  const closing = closeRun(run, verdict);
  await (verdict.internal ? closing.catch(() => undefined) : closing);
  // Whatever went wrong, status.json does not claim the run is still going; then the error goes on up.
  if (verdict.internal !== undefined) throw verdict.internal;
  return { status: run.status, exitCode: verdict.exitCode, runDir: run.runDir, problems: run.problems };
}
