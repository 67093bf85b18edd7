/**
 * Every message a run ends with, built in one place: what happened, where (the step, the hop), and what
 * was done about it. `judgeRun` turns how the phases ended into the run's final state and exit code.
 */
import { EXIT_CODES, IsobuildError, StopRequest, type ExitCode } from '../errors.js';
import { seconds } from '../format-seconds.js';
import type { RunState, StepResult } from './run-status.js';
import { PhaseFailure, type PhaseEnd } from './phase-runner.js';
import type { RunContext, StepKind, UnfinishedPhase } from './run-context.js';

export type LogKind = 'customization' | 'validation';

/**
 * A step that failed: which one, and Packer's reason. Its message is built when the run ends, after the
 * cleanups: a remote cleanup that cannot get through is often what names the hop that broke.
 */
export class StepFailed extends PhaseFailure {
  constructor(
    readonly unfinished: UnfinishedPhase,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'StepFailed';
  }
}

export interface Verdict {
  readonly runState: Extract<RunState, 'Succeeded' | 'Failed' | 'Canceled'>;
  readonly message: string;
  readonly exitCode: ExitCode;
  /** The log the message points to (the validation log for validators). */
  readonly log: LogKind;
  /** An error isobuild did not expect: recorded in status, then rethrown. */
  readonly internal?: Error;
}

/** The phases after which a stop is reported as stopping remote work (Packer had the VM). */
const PACKER_PHASES = new Set(['customize', 'validate', 'deprovision']);

export function judgeRun(end: PhaseEnd, run: RunContext, startedAt: number): Verdict {
  switch (end.kind) {
    case 'succeeded':
      if (run.deferredFailure) return failed(run.deferredFailure, run);
      return {
        runState: 'Succeeded',
        message: `the build succeeded in ${seconds(Date.now() - startedAt)}.`,
        exitCode: EXIT_CODES.ok,
        log: 'customization',
      };
    case 'failed':
      return failed(end.error, run);
    case 'timedOut':
    case 'cancelled':
      return stopped(end, run);
  }
}

function failed(error: unknown, run: RunContext): Verdict {
  if (error instanceof StepFailed) return stepFailed(error, run);
  if (error instanceof IsobuildError) {
    const problems = error.problems.map((p) => `${p.path}: ${p.message}`).join(' ');
    return {
      runState: 'Failed',
      message: `${error.message}${problems ? ` ${problems}` : ''}`,
      exitCode: error.exitCode,
      log: 'customization',
    };
  }
  const text = error instanceof Error ? error.message : String(error);
  return {
    runState: 'Failed',
    message: `internal error: ${run.mask(text)}`,
    exitCode: EXIT_CODES.internal,
    log: 'customization',
    internal: error instanceof Error ? error : new Error(text),
  };
}

function stopped(end: Extract<PhaseEnd, { kind: 'timedOut' | 'cancelled' }>, run: RunContext): Verdict {
  const log: LogKind = end.phase === 'validate' ? 'validation' : 'customization';
  const packerHadTheVm = PACKER_PHASES.has(end.phase);
  const where = packerHadTheVm ? whileRunning(run.unfinished) : ' before any customizer ran';
  if (end.kind === 'timedOut') {
    const kept = packerHadTheVm ? keptForInspection(run.unfinished) : '';
    return {
      runState: 'Failed',
      message: `the build timed out after ${seconds(run.timeoutMs)} (buildTimeoutInMinutes)${where}.${kept}`,
      exitCode: EXIT_CODES.timedOut,
      log,
    };
  }
  return {
    runState: 'Canceled',
    message: packerHadTheVm
      ? `the build was cancelled${where}; its remote processes were stopped.`
      : `the build was cancelled${where}.`,
    exitCode: cancelExitCode(end.reason),
    log,
  };
}

/** A failed step's message: which step, Packer's reason, the hop that broke (if it did), what was kept. */
function stepFailed({ unfinished, reason }: StepFailed, run: RunContext): Verdict {
  const which = unfinished.step
    ? stepLabel(unfinished.kind, unfinished.step)
    : `the ${unfinished.kind} phase`;
  // When the connection broke, say which hop broke it (Packer only says "disconnected").
  const network = run.connection?.relay.lastFailure();
  const hopNote =
    network && network !== run.connection?.failureBeforePacker ? ` The network path failed: ${network}.` : '';
  return {
    runState: 'Failed',
    message: `${which} failed: ${reason}.${hopNote}${keptForInspection(unfinished)}`,
    exitCode: EXIT_CODES.buildFailed,
    log: unfinished.kind === 'validator' ? 'validation' : 'customization',
  };
}

/** Why Packer stopped without success, when it did not say (its "Build errored" line is the usual reason). */
export function packerStopped(result: { exitCode: number | null; killed: boolean }, graceMs: number): string {
  return result.killed
    ? `Packer did not stop within the ${seconds(graceMs)} grace period and was killed`
    : `Packer exited with code ${result.exitCode}`;
}

/** The line that follows a failed run's message: which run, and where its whole log is. */
export function logReference(runId: string, log: string): string {
  return ` Run ${runId}, full log: ${log}`;
}

/** The error a build started after a cancel throws: nothing was created, so nothing needs cleaning up. */
export function cancelledBeforeStart(runId: string): IsobuildError {
  return new IsobuildError(
    'cancelled',
    `cancelled before run ${runId} started: nothing was created or contacted, and the run id is still unused.`,
  );
}

/** Another run has this id (its directory exists): input error, nothing of the other run is touched. */
export function runIdTaken(runDir: string): IsobuildError {
  return new IsobuildError(
    'usage',
    `the run directory ${runDir} already exists: run ids must be unique. Pick another --run-id or remove it.`,
  );
}

/** SIGTERM's stop exits 143, SIGINT's (and any other cancel) 130. */
export function cancelExitCode(reason: unknown): ExitCode {
  return reason instanceof StopRequest && reason.signalName === 'SIGTERM'
    ? EXIT_CODES.terminated
    : EXIT_CODES.interrupted;
}

function stepLabel(kind: StepKind, step: StepResult): string {
  return `${kind} ${step.index + 1} ${step.type} ${JSON.stringify(step.name)}`;
}

function whileRunning(unfinished: UnfinishedPhase | undefined): string {
  const step = unfinished?.step;
  return step
    ? ` while ${stepLabel(unfinished.kind, step)} had been running for ${seconds(step.durationMs ?? 0)}`
    : '';
}

function keptForInspection(unfinished: UnfinishedPhase | undefined): string {
  return unfinished?.onError === 'abort'
    ? ' The build VM was left as it is for inspection (errorHandling: abort).'
    : '';
}
