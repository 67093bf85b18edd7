// One way for tests to run a child process to its end: output collected, killed (SIGKILL) at a deadline so a
// hung child fails its test instead of the whole run.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';

export interface ProcessResult {
  /** The exit code; null when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Milliseconds from the call until the process closed its output. */
  readonly ms: number;
  /** True when the deadline killed it. */
  readonly timedOut: boolean;
}

export interface RunProcessOptions {
  readonly cwd?: string;
  /** The whole environment of the child (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Killed with SIGKILL after this many milliseconds (default 60 s). */
  readonly deadlineMs?: number;
  /** Sent `signal` once, after `ms` (e.g. SIGTERM to test a graceful stop). */
  readonly signalAfter?: { readonly signal: NodeJS.Signals; readonly ms: number };
}

const DEFAULT_DEADLINE_MS = 60_000;

/** Spawns `file` with `args` (stdin closed) and waits for it to end. Rejects only when it cannot start. */
export function runProcess(
  file: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): Promise<ProcessResult> {
  const spawnOptions: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env };
  if (options.cwd !== undefined) spawnOptions.cwd = options.cwd;
  return processResult(spawn(file, args, spawnOptions), {
    ...options,
    deadlineMs: options.deadlineMs ?? DEFAULT_DEADLINE_MS,
  });
}

/** Collects the output of an already started `child` until it closes; killed at `deadlineMs` only if given. */
export function processResult(
  child: ChildProcess,
  options: Pick<RunProcessOptions, 'deadlineMs' | 'signalAfter'> = {},
): Promise<ProcessResult> {
  const started = Date.now();
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  // Decoders, not chunk.toString(): a UTF-8 character may be split across chunks. (setEncoding would change
  // what the caller's own listeners receive.)
  const outText = new StringDecoder('utf8');
  const errText = new StringDecoder('utf8');
  child.stdout?.on('data', (chunk: Buffer) => (stdout += outText.write(chunk)));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += errText.write(chunk)));
  const { signalAfter } = options;
  const signalTimer = signalAfter
    ? setTimeout(() => child.kill(signalAfter.signal), signalAfter.ms)
    : undefined;
  const { deadlineMs } = options;
  const killTimer =
    deadlineMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, deadlineMs);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(signalTimer);
      clearTimeout(killTimer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(signalTimer);
      clearTimeout(killTimer);
      stdout += outText.end();
      stderr += errText.end();
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}
