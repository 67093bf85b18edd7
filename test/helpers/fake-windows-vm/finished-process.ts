// A command the fake Windows VM emulates outright (an echo-append, a connect check) as a process that has
// already finished, without spawning one: a Node start-up per command (~60 ms here) would make the fake
// slower than Windows per command, and so Packer's chunked uploads slower than they are. What such a
// command costs on Windows is charged by the server (FakeWindowsVmOptions.costs), the same for every command.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';

/** Emitted on a command's process once a Receive has told the client it exited (the fake's shutdown waits for it). */
export const EXIT_REPORTED = 'exit-reported';

export function finishedProcess(exitCode: number, stdout = '', stderr = ''): ChildProcess {
  const child = Object.assign(new EventEmitter(), {
    stdin: new Writable({ write: (_chunk, _encoding, done) => done() }),
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    pid: undefined,
    exitCode: null as number | null,
    kill: () => false,
  });
  let open = 2;
  // 'close' comes after both streams have ended, as for a real child, so the output is never behind it.
  const ended = (): void => {
    if (--open > 0) return;
    child.exitCode = exitCode;
    child.emit('exit', exitCode, null);
    child.emit('close', exitCode, null);
  };
  child.stdout.once('end', ended);
  child.stderr.once('end', ended);
  setImmediate(() => {
    child.stdout.end(stdout);
    child.stderr.end(stderr);
  });
  return child as unknown as ChildProcess;
}
