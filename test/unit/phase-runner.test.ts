/** The phase runner: order, reverse cleanup on every ending, one decision of how the run ended, the budget. */
/* eslint-disable @typescript-eslint/require-await -- phases are async by contract; most test phases do no I/O */
import { describe, expect, it } from 'vitest';
import {
  PhaseFailure,
  runPhases,
  stopKind,
  type Phase,
  type PhaseRunOptions,
} from '../../agent/src/run/phase-runner.js';

type Journal = string[];

/** A phase that records its run and cleanup in the journal; `behaviour` decides what its run does. */
function phase(
  name: string,
  behaviour: (signal: AbortSignal) => Promise<void> = async () => undefined,
  cleanup: ((journal: Journal, signal: AbortSignal) => Promise<void>) | false = async () => undefined,
): Phase<Journal> {
  return {
    name,
    run: async (journal, signal) => {
      journal.push(`run ${name}`);
      await behaviour(signal);
    },
    ...(cleanup === false
      ? {}
      : {
          cleanup: async (journal, signal) => {
            journal.push(`cleanup ${name}`);
            await cleanup(journal, signal);
          },
        }),
  };
}

/** Resolves when the signal aborts, rejecting with its reason (what a well-behaved phase does). */
const untilStopped = (signal: AbortSignal): Promise<void> =>
  new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });

function options(overrides: Partial<PhaseRunOptions> = {}): PhaseRunOptions {
  return {
    cancel: new AbortController().signal,
    deadline: new AbortController().signal,
    cleanupBudgetMs: 5_000,
    ...overrides,
  };
}

describe('runPhases', () => {
  it('runs phases in order and cleans up in reverse order after success', async () => {
    const journal: Journal = [];
    const end = await runPhases([phase('a'), phase('b', undefined, false), phase('c')], journal, options());
    expect(end).toEqual({ kind: 'succeeded' });
    expect(journal).toEqual(['run a', 'run b', 'run c', 'cleanup c', 'cleanup a']);
  });

  it('stops at a failing phase, cleans up it and those before it, and never runs the rest', async () => {
    const journal: Journal = [];
    const boom = new Error('boom');
    const end = await runPhases(
      [
        phase('a'),
        phase('b', async () => {
          throw boom;
        }),
        phase('c'),
      ],
      journal,
      options(),
    );
    expect(end).toEqual({ kind: 'failed', phase: 'b', error: boom });
    expect(journal).toEqual(['run a', 'run b', 'cleanup b', 'cleanup a']);
  });

  it('a cancel during a phase ends the run as cancelled, with the reason, and still cleans up', async () => {
    const journal: Journal = [];
    const cancel = new AbortController();
    const reason = new Error('SIGTERM');
    const end = await runPhases(
      [
        phase('a'),
        phase('b', (signal) => {
          setTimeout(() => cancel.abort(reason), 20);
          return untilStopped(signal);
        }),
        phase('c'),
      ],
      journal,
      options({ cancel: cancel.signal }),
    );
    expect(end).toEqual({ kind: 'cancelled', phase: 'b', reason });
    expect(journal).toEqual(['run a', 'run b', 'cleanup b', 'cleanup a']);
  });

  it('a phase told to stop by a cancel sees a cancel', async () => {
    const cancel = new AbortController();
    let seenByPhase: string | undefined;
    await runPhases(
      [
        phase('a', async (signal) => {
          cancel.abort();
          seenByPhase = stopKind(signal);
        }),
      ],
      [],
      options({ cancel: cancel.signal, deadline: AbortSignal.timeout(60_000) }),
    );
    expect(seenByPhase).toBe('cancelled');
  });

  it('a deadline during a phase ends the run as timed out, not cancelled; the phase can tell too', async () => {
    const journal: Journal = [];
    let seenByPhase: string | undefined;
    const end = await runPhases(
      [
        phase('a'),
        phase('b', async (signal) => {
          await untilStopped(signal).catch(() => (seenByPhase = stopKind(signal)));
          signal.throwIfAborted();
        }),
      ],
      journal,
      options({ deadline: AbortSignal.timeout(30) }),
    );
    expect(end).toEqual({ kind: 'timedOut', phase: 'b' });
    expect(seenByPhase).toBe('timedOut');
    expect(journal).toEqual(['run a', 'run b', 'cleanup b', 'cleanup a']);
  });

  it('whichever signal fired first decides: a cancel after the deadline is still a timeout', async () => {
    const cancel = new AbortController();
    const deadline = new AbortController();
    const end = await runPhases(
      [
        phase('a', (signal) => {
          deadline.abort();
          cancel.abort();
          return untilStopped(signal);
        }),
      ],
      [],
      options({ cancel: cancel.signal, deadline: deadline.signal }),
    );
    expect(end.kind).toBe('timedOut');
  });

  it('and a deadline that passes while a cancel is being handled does not turn it into a timeout', async () => {
    const cancel = new AbortController();
    const deadline = new AbortController();
    const end = await runPhases(
      [
        phase('a', (signal) => {
          cancel.abort();
          deadline.abort();
          return untilStopped(signal);
        }),
      ],
      [],
      options({ cancel: cancel.signal, deadline: deadline.signal }),
    );
    expect(end.kind).toBe('cancelled');
  });

  it('a stop noticed only after the last phase succeeded leaves the run succeeded (the work is done)', async () => {
    const cancel = new AbortController();
    const end = await runPhases(
      [phase('a', async () => cancel.abort())],
      [],
      options({ cancel: cancel.signal }),
    );
    expect(end.kind).toBe('succeeded');
  });

  it('a phase that succeeds although the stop came stops the run before the next phase', async () => {
    const journal: Journal = [];
    const cancel = new AbortController();
    const end = await runPhases(
      [phase('a', async () => cancel.abort()), phase('b')],
      journal,
      options({ cancel: cancel.signal }),
    );
    expect(end).toMatchObject({ kind: 'cancelled', phase: 'b' });
    expect(journal).toEqual(['run a', 'cleanup a']);
  });

  it('an error thrown because of the stop counts as the stop, not as a failure', async () => {
    const cancel = new AbortController();
    const end = await runPhases(
      [
        phase('a', async () => {
          cancel.abort();
          throw new Error('Packer exited with code 1');
        }),
      ],
      [],
      options({ cancel: cancel.signal }),
    );
    expect(end.kind).toBe('cancelled');
  });

  it('already cancelled: no phase runs and nothing needs cleaning up', async () => {
    const journal: Journal = [];
    const cancel = new AbortController();
    cancel.abort();
    const end = await runPhases([phase('a')], journal, options({ cancel: cancel.signal }));
    expect(end).toMatchObject({ kind: 'cancelled', phase: 'a' });
    expect(journal).toEqual([]);
  });

  it('cleanups get a budget that does not depend on the run signals, and a failing cleanup is only reported', async () => {
    const journal: Journal = [];
    const cancel = new AbortController();
    const reported: string[] = [];
    let budgetAbortedDuringCleanup: boolean | undefined;
    const end = await runPhases(
      [
        phase('a', undefined, async (_, signal) => {
          budgetAbortedDuringCleanup = signal.aborted;
        }),
        phase(
          'b',
          (signal) => {
            cancel.abort();
            return untilStopped(signal);
          },
          async () => {
            throw new Error('VM gone');
          },
        ),
      ],
      journal,
      options({
        cancel: cancel.signal,
        onCleanupError: (name, error) => reported.push(`${name}: ${(error as Error).message}`),
      }),
    );
    expect(end.kind).toBe('cancelled');
    expect(journal).toEqual(['run a', 'run b', 'cleanup b', 'cleanup a']);
    expect(budgetAbortedDuringCleanup).toBe(false);
    expect(reported).toEqual(['b: VM gone']);
  });

  it('a cleanup that overruns the budget is abandoned; the ones after it still run', async () => {
    const journal: Journal = [];
    const reported: string[] = [];
    let lateSignalAborted: boolean | undefined;
    const started = Date.now();
    const end = await runPhases(
      [
        phase('a', undefined, async (_, signal) => {
          lateSignalAborted = signal.aborted;
        }),
        phase('slow', undefined, async (_, signal) => {
          if (signal.aborted) await new Promise((resolve) => setTimeout(resolve, 1_000));
        }),
        phase('b', undefined, () => new Promise<void>(() => undefined)), // never settles
      ],
      journal,
      options({
        cleanupBudgetMs: 100,
        onCleanupError: (name, error) => reported.push(`${name}: ${(error as Error).message}`),
      }),
    );
    expect(end.kind).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(journal).toEqual(['run a', 'run slow', 'run b', 'cleanup b', 'cleanup slow', 'cleanup a']);
    // Told that no time is left, a cleanup does only what is instant, and that still counts as done.
    expect(lateSignalAborted).toBe(true);
    expect(reported).toEqual([
      'b: the cleanup of b did not finish within the cleanup budget',
      'slow: the cleanup of slow had no time left',
    ]);
  });

  it('a skipped phase is passed over without a stop check; a reporting phase runs after a late stop', async () => {
    const journal: Journal = [];
    const cancel = new AbortController();
    const end = await runPhases(
      [
        phase('work', async () => cancel.abort()),
        { ...phase('nothing-to-do'), skip: () => true },
        { ...phase('report'), reportsOnly: true },
      ],
      journal,
      options({ cancel: cancel.signal }),
    );
    expect(end.kind).toBe('succeeded');
    expect(journal).toEqual(['run work', 'run report', 'cleanup report', 'cleanup work']);
  });

  it("a phase's own failure stands even when a stop arrives while it winds down", async () => {
    const cancel = new AbortController();
    const failure = new PhaseFailure('customizer 2 failed');
    const end = await runPhases(
      [
        phase('a', async () => {
          cancel.abort();
          throw failure;
        }),
      ],
      [],
      options({ cancel: cancel.signal }),
    );
    expect(end).toEqual({ kind: 'failed', phase: 'a', error: failure });
  });

  it("leaves no listener on the caller's signals", async () => {
    const cancel = new AbortController();
    const deadline = new AbortController();
    let added = 0;
    let removed = 0;
    for (const s of [cancel.signal, deadline.signal]) {
      const add = s.addEventListener.bind(s);
      const remove = s.removeEventListener.bind(s);
      s.addEventListener = (...args: Parameters<typeof add>) => {
        added++;
        add(...args);
      };
      s.removeEventListener = (...args: Parameters<typeof remove>) => {
        removed++;
        remove(...args);
      };
    }
    await runPhases([phase('a')], [], options({ cancel: cancel.signal, deadline: deadline.signal }));
    expect(added).toBeGreaterThan(0);
    expect(removed).toBe(added);
  });
});
