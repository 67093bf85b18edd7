/**
 * Runs a build's phases in order, the way Packer's multistep runs steps: a phase's cleanup is registered
 * before the phase runs, and the registered cleanups run in reverse order whatever happened (success,
 * failure, timeout or cancel), on a fresh time budget of their own. How the run ended is decided once,
 * here, from which signal fired first: the build's deadline means "timed out", the caller's means "cancelled".
 */

export interface Phase<C> {
  readonly name: string;
  /** Whether there is nothing for the phase to do in this run: it is passed over, without a stop check. */
  skip?(context: C): boolean;
  /** A phase that only reports on work already done runs even after a late stop (the work stands). */
  readonly reportsOnly?: boolean;
  /** Does the phase's work. Throws to fail the run; must stop promptly once `signal` aborts. */
  run(context: C, signal: AbortSignal): Promise<void>;
  /** Undoes what `run` started, even if `run` failed half-way. `signal` aborts when the budget is spent. */
  cleanup?(context: C, signal: AbortSignal): Promise<void>;
}

/**
 * A failure a phase found on its own (a step that failed): it stands even when a stop arrives while the
 * phase is winding down, instead of being reported as the stop.
 */
export class PhaseFailure extends Error {
  override name = 'PhaseFailure';
}

export type PhaseEnd =
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'failed'; readonly phase: string; readonly error: unknown }
  | { readonly kind: 'timedOut'; readonly phase: string }
  | { readonly kind: 'cancelled'; readonly phase: string; readonly reason: unknown };

/**
 * The reason the phases' signal aborts with: which signal fired first. Phases read it (`stopKind`) to
 * record a step as timed out or cancelled; the runner's own verdict comes from the same decision.
 */
export class RunStopped extends Error {
  constructor(
    readonly kind: 'timedOut' | 'cancelled',
    /** The reason of the signal that fired (the caller's cancel reason, or the deadline's). */
    readonly reason: unknown,
  ) {
    super(kind === 'timedOut' ? 'the build timed out' : 'the build was cancelled');
    this.name = 'RunStopped';
  }
}

/** How the phases' signal was stopped, once it has aborted. */
export function stopKind(signal: AbortSignal): RunStopped['kind'] {
  return signal.reason instanceof RunStopped ? signal.reason.kind : 'cancelled';
}

export interface PhaseRunOptions {
  /** The caller's cancel (SIGINT/SIGTERM). */
  readonly cancel: AbortSignal;
  /** The build's own time limit. */
  readonly deadline: AbortSignal;
  /** Time all cleanups get together, counted from when the first one starts. */
  readonly cleanupBudgetMs: number;
  /** A cleanup that fails or overruns never changes how the run ended; it is only reported. */
  readonly onCleanupError?: (phase: string, error: unknown) => void;
}

export async function runPhases<C>(
  phases: readonly Phase<C>[],
  context: C,
  options: PhaseRunOptions,
): Promise<PhaseEnd> {
  const { signal, dispose } = stopSignal(options.cancel, options.deadline);
  const stopped = (phase: string): PhaseEnd => {
    const stop = signal.reason as RunStopped;
    return stop.kind === 'timedOut'
      ? { kind: 'timedOut', phase }
      : { kind: 'cancelled', phase, reason: stop.reason };
  };
  const registered: Phase<C>[] = [];
  let end: PhaseEnd = { kind: 'succeeded' };
  for (const phase of phases) {
    if (phase.skip?.(context)) continue;
    if (signal.aborted && !phase.reportsOnly) {
      end = stopped(phase.name);
      break;
    }
    if (phase.cleanup) registered.push(phase);
    try {
      await phase.run(context, signal);
    } catch (error) {
      // A phase that fails because it was stopped ended by the stop, not by its own error.
      const byTheStop = signal.aborted && !(error instanceof PhaseFailure);
      end = byTheStop ? stopped(phase.name) : { kind: 'failed', phase: phase.name, error };
      break;
    }
  }
  dispose();
  await runCleanups(registered.reverse(), context, options);
  return end;
}

async function runCleanups<C>(
  phases: readonly Phase<C>[],
  context: C,
  options: PhaseRunOptions,
): Promise<void> {
  if (phases.length === 0) return;
  const budget = AbortSignal.timeout(options.cleanupBudgetMs);
  for (const phase of phases) {
    try {
      // Each cleanup is awaited only while budget remains; later ones still run, with a spent budget.
      await untilAborted(phase.cleanup!(context, budget), budget, phase.name);
    } catch (error) {
      options.onCleanupError?.(phase.name, error);
    }
  }
}

/**
 * Settles with `work`, or rejects when `signal` aborts first (the work is left to finish on its own). With
 * the budget already spent, work that finishes at once (closing a listener, say) still counts as done.
 */
function untilAborted(work: Promise<void>, signal: AbortSignal, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const giveUp = (message: string): void => reject(new Error(`the cleanup of ${name} ${message}`));
    const onAbort = (): void => giveUp('did not finish within the cleanup budget');
    const spent = signal.aborted ? setImmediate(() => giveUp('had no time left')) : undefined;
    if (!spent) signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      clearImmediate(spent);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

/** Aborts, with a RunStopped naming it, when the first of the two signals does (in order, if both already have). */
function stopSignal(
  cancel: AbortSignal,
  deadline: AbortSignal,
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const stop = (kind: RunStopped['kind'], from: AbortSignal): void => {
    if (!controller.signal.aborted) controller.abort(new RunStopped(kind, from.reason));
  };
  const onCancel = (): void => stop('cancelled', cancel);
  const onDeadline = (): void => stop('timedOut', deadline);
  if (cancel.aborted) onCancel();
  else if (deadline.aborted) onDeadline();
  cancel.addEventListener('abort', onCancel, { once: true });
  deadline.addEventListener('abort', onDeadline, { once: true });
  const dispose = (): void => {
    cancel.removeEventListener('abort', onCancel);
    deadline.removeEventListener('abort', onDeadline);
  };
  return { signal: controller.signal, dispose };
}
