/**
 * Runs one rendered Packer file and follows its steps: the step marker in Packer's output starts a step
 * (status, progress, logs), the next marker or Packer's exit ends it. When Packer ends without success the
 * run learns where it stopped (`run.unfinished`), a failing step's last lines are shown, and a failure
 * becomes a StepFailed that says which step failed and why. The remote cleanup that follows lives here too.
 */
import { join } from 'node:path';
import { readPackerLine } from '../packer/packer-output.js';
import { runPacker } from '../packer/run-packer.js';
import { cleanUpRemoteRun } from './remote-cleanup.js';
import { sshTarget } from '../vm-path/vm-probe.js';
import { seconds } from '../format-seconds.js';
import { packerStopped, StepFailed } from './failure-messages.js';
import { stopKind } from './phase-runner.js';
import { TAIL_LINES } from './progress.js';
import type { BuildLog } from './build-log.js';
import type { RunContext, StepKind, UnfinishedPhase } from './run-context.js';
import { endStep, startStep, type StepOutcome, type StepResult } from './run-status.js';

export interface PackerSteps {
  /** The rendered file (in the run's packer directory). */
  readonly file: string;
  readonly kind: StepKind;
  /** The steps of this file, in order, with the tags their markers print. */
  readonly steps: readonly StepResult[];
  readonly tags: readonly string[];
  readonly log: BuildLog;
  /** errorHandling for this phase: abort leaves the VM as it is for inspection. */
  readonly onError: 'cleanup' | 'abort';
}

/**
 * Resolves when Packer ran every step; throws StepFailed when a step failed, or the stop's reason when
 * the run was stopped. Either way `run.unfinished` says which step was running.
 */
export async function runPackerSteps(
  run: RunContext,
  phase: PackerSteps,
  signal: AbortSignal,
): Promise<void> {
  const connection = run.connection;
  if (!connection) throw new Error(`${phase.kind}s need the connect phase first`);
  const tracker = new StepTracker(run, phase);
  let packerError: string | undefined;
  const result = await runPacker({
    packerPath: run.config.packerPath,
    file: join(run.packerDir, phase.file),
    variables: connection.variables,
    onError: phase.onError,
    tmpDir: run.tmpDir,
    killGraceMs: run.config.killGraceMs,
    signal,
    onLine: (stream, line) => {
      phase.log.write(stream === 'out' ? 'PACKER OUT' : 'PACKER ERR', line);
      if (stream !== 'out') return;
      const read = readPackerLine(line);
      if (read.kind === 'step') tracker.begin(read.tag);
      else if (read.kind === 'error') packerError = read.message;
      if ((read.kind === 'error' || read.kind === 'output') && read.text !== undefined)
        tracker.remember(read.text);
    },
  });
  if (result.exitCode === 0 && !result.cancelled) {
    tracker.finish('succeeded');
    return;
  }
  const outcome: UnfinishedPhase['outcome'] = !result.cancelled
    ? 'failed'
    : stopKind(signal) === 'timedOut'
      ? 'timedOut'
      : 'canceled';
  const step = tracker.finish(outcome);
  run.unfinished = { kind: phase.kind, onError: phase.onError, outcome, ...(step ? { step } : {}) };
  if (outcome === 'failed' && step) run.progress.tail(tracker.label(step), tracker.tail);
  if (result.cancelled) signal.throwIfAborted();
  throw new StepFailed(
    run.unfinished,
    run.mask(packerError ?? packerStopped(result, run.config.killGraceMs)),
  );
}

/** Whether a resumed run still has any of these steps (by JSON path) to run. */
export function anyLeftToRun(run: RunContext, paths: readonly string[]): boolean {
  if (!run.plan) return true; // a fresh build runs each phase, even one without steps, as it always did
  const skipped = new Set(run.plan?.skipped.map((step) => step.path));
  return paths.some((path) => !skipped.has(path));
}

/**
 * Nothing of this run may keep running on the VM: after a cancel always, after a failure or a timeout
 * unless errorHandling says abort. Linux only (WinRM shells end with their connection). Runs once.
 */
export async function cleanUpAfterPacker(run: RunContext, log: BuildLog): Promise<void> {
  const unfinished = run.unfinished;
  const connection = run.connection;
  if (!unfinished || !connection || !needsRemoteCleanup(run, unfinished) || cleanedUp.has(unfinished)) return;
  cleanedUp.add(unfinished);
  if (run.vmPath.protocol !== 'SSH') return;
  try {
    const stopped = await cleanUpRemoteRun(sshTarget(run.vmPath, connection.relay), run.config.runId);
    log.write(
      'ISOBUILD',
      `remote cleanup: stopped ${stopped} session(s) of run ${run.config.runId} and removed its scripts`,
    );
  } catch (error) {
    log.write('ISOBUILD', `remote cleanup failed: ${(error as Error).message}`);
    run.options.report(`warning: could not clean up on the build VM: ${(error as Error).message}`);
  }
}

const cleanedUp = new WeakSet<UnfinishedPhase>();

function needsRemoteCleanup(run: RunContext, unfinished: UnfinishedPhase): boolean {
  return (
    run.template.os === 'linux' && (unfinished.outcome === 'canceled' || unfinished.onError === 'cleanup')
  );
}

/** Follows which step runs: status, progress (with a heartbeat that shows the step's last line), logs. */
class StepTracker {
  private current: StepResult | undefined;
  private position = 0;
  tail: string[] = [];
  private readonly byTag: Map<string, StepResult>;

  constructor(
    private readonly run: RunContext,
    private readonly phase: PackerSteps,
  ) {
    this.byTag = new Map(phase.tags.map((tag, i) => [tag, phase.steps[i]!]));
  }

  label(step: StepResult): string {
    return `${step.type} ${JSON.stringify(step.name)}`;
  }

  begin(tag: string): void {
    const step = this.byTag.get(tag);
    if (!step) return;
    this.finish('succeeded');
    const { run, phase } = this;
    this.current = step;
    this.position = ++run.position;
    this.tail = [];
    startStep(step);
    run.events.step(this.position, step);
    phase.log.write(
      'PACKER ERR',
      `(telemetry) Starting provisioner ${step.type === 'Shell' ? 'shell' : step.type.toLowerCase()}`,
    );
    phase.log.write('ISOBUILD', `step ${this.position}/${run.totalSteps}: ${this.label(step)} started`);
    run.progress.stepStarted(this.position, this.label(step), () => this.tail[this.tail.length - 1]);
    void run.statusFile.write(run.status);
  }

  remember(text: string): void {
    this.tail.push(this.run.mask(text));
    if (this.tail.length > TAIL_LINES) this.tail.shift();
  }

  /** Ends the running step (if any) with `outcome` and returns it. */
  finish(outcome: StepOutcome): StepResult | undefined {
    const step = this.current;
    if (!step) return undefined;
    this.current = undefined;
    const { run, phase } = this;
    endStep(step, outcome);
    const took = step.durationMs ?? 0;
    run.progress.stepFinished(this.position, this.label(step), took, outcome);
    phase.log.write(
      'ISOBUILD',
      `step ${this.position}/${run.totalSteps}: ${this.label(step)} ${outcome} after ${seconds(took)}`,
    );
    void run.statusFile.write(run.status);
    return step;
  }
}
