/**
 * Runs a build's phases in order, the way Packer's multistep runs steps: a phase's cleanup is registered
 * before the phase runs, and the registered cleanups run in reverse order whatever happened (success,
 * failure, timeout or cancel), on a fresh time budget of their own. How the run ended is decided once,
 * here, from which signal fired first: the build's deadline means "timed out", the caller's means "cancelled".
 */

export interface Phase<C> {
  readonly name: string;
  /** Does the phase's work. Throws to fail the run; must stop promptly once `signal` aborts. */
  run(context: C, signal: AbortSignal): Promise<void>;
  /** Undoes what `run` started, even if `run` failed half-way. `signal` aborts when the budget is spent. */
  cleanup?(context: C, signal: AbortSignal): Promise<void>;
}

export type PhaseEnd =
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'failed'; readonly phase: string; readonly error: unknown }
  | { readonly kind: 'timedOut'; readonly phase: string }
  | { readonly kind: 'cancelled'; readonly phase: string; readonly reason: unknown };

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
  const firstToFire = firstAbort(options.cancel, options.deadline);
  const signal = AbortSignal.any([options.cancel, options.deadline]);
  const stopped = (phase: string): PhaseEnd =>
    firstToFire() === options.deadline
      ? { kind: 'timedOut', phase }
      : { kind: 'cancelled', phase, reason: options.cancel.reason };
  const registered: Phase<C>[] = [];
  let end: PhaseEnd = { kind: 'succeeded' };
  for (const phase of phases) {
    if (signal.aborted) {
      end = stopped(phase.name);
      break;
    }
    if (phase.cleanup) registered.push(phase);
    try {
      await phase.run(context, signal);
    } catch (error) {
      // A phase that fails because it was stopped ended by the stop, not by its own error.
      end = signal.aborted ? stopped(phase.name) : { kind: 'failed', phase: phase.name, error };
      break;
    }
  }
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

/** Remembers which of the signals aborted first (an already aborted one counts as first, in order). */
function firstAbort(...signals: AbortSignal[]): () => AbortSignal | undefined {
  let first = signals.find((s) => s.aborted);
  for (const s of signals) s.addEventListener('abort', () => (first ??= s), { once: true });
  return () => first;
}
