// A command the fake Windows VM emulates outright (an echo-append, a connect check) as a process that has
// already finished, without spawning one: a Node start-up per command (~60 ms here) would make the fake
// slower than Windows per command, and so Packer's chunked uploads slower than they are. What such a
// command costs on Windows is charged by the server (FakeWindowsVmOptions.costs), the same for every command.
// An emulated command that takes a while (hashing a staged file) is an emulatedProcess: it ends when its work
// does, and a kill (Signal, Delete) aborts the work.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';

/** Emitted on a command's process once a Receive has told the client it exited (the fake's shutdown waits for it). */
export const EXIT_REPORTED = 'exit-reported';

export interface EmulatedOutcome {
  readonly exitCode: number;
  readonly stdout?: string;
  readonly stderr?: string;
}

export function finishedProcess(exitCode: number, stdout = '', stderr = ''): ChildProcess {
  const { child, finish } = processStandIn(() => false);
  setImmediate(() => finish({ exitCode, stdout, stderr }));
  return child;
}

/** A process whose output and exit are `work`'s outcome; killing it aborts `work` and ends it by SIGKILL. */
export function emulatedProcess(work: (signal: AbortSignal) => Promise<EmulatedOutcome>): ChildProcess {
  const abort = new AbortController();
  const { child, finish } = processStandIn(() => {
    if (abort.signal.aborted) return false;
    abort.abort();
    return true;
  });
  work(abort.signal).then(
    (outcome) => finish(abort.signal.aborted ? 'SIGKILL' : outcome),
    (error: unknown) =>
      finish(abort.signal.aborted ? 'SIGKILL' : { exitCode: 1, stderr: `${String(error)}\r\n` }),
  );
  return child;
}

function processStandIn(kill: () => boolean): {
  child: ChildProcess;
  finish: (outcome: EmulatedOutcome | 'SIGKILL') => void;
} {
  const child = Object.assign(new EventEmitter(), {
    stdin: new Writable({ write: (_chunk, _encoding, done) => done() }),
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    pid: undefined,
    exitCode: null as number | null,
    kill,
  });
  const finish = (outcome: EmulatedOutcome | 'SIGKILL'): void => {
    const [code, signal] = outcome === 'SIGKILL' ? [null, 'SIGKILL'] : [outcome.exitCode, null];
    let open = 2;
    // 'close' comes after both streams have ended, as for a real child, so the output is never behind it.
    const ended = (): void => {
      if (--open > 0) return;
      child.exitCode = code;
      child.emit('exit', code, signal);
      child.emit('close', code, signal);
    };
    child.stdout.once('end', ended);
    child.stderr.once('end', ended);
    child.stdout.end(outcome === 'SIGKILL' ? '' : (outcome.stdout ?? ''));
    child.stderr.end(outcome === 'SIGKILL' ? '' : (outcome.stderr ?? ''));
  };
  return { child: child as unknown as ChildProcess, finish };
}
