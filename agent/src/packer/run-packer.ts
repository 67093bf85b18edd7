/**
 * Runs `packer build` on one rendered file and streams its output line by line. Packer gets a clean
 * environment (never isobuild's own, which may hold credentials), its own TMPDIR and process group.
 * Cancelling sends SIGTERM to the Packer process (its wrapper forwards it; SIGINT would be swallowed,
 * see packer-notes §1.6), waits `killGraceMs` for Packer's cleanup, then kills the whole group.
 */
import { spawn } from 'node:child_process';
import { basename, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { packerEnvironment } from './packer-environment.js';

export interface RunPackerOptions {
  readonly packerPath: string;
  /** Absolute path of the .pkr.hcl file. */
  readonly file: string;
  /** Values for the file's variables, passed as PKR_VAR_<name> environment variables. */
  readonly variables: Readonly<Record<string, string>>;
  readonly onError: 'cleanup' | 'abort';
  readonly tmpDir: string;
  readonly killGraceMs: number;
  readonly signal?: AbortSignal;
  /** Every line Packer writes: stdout is its UI, stderr its debug log (PACKER_LOG). */
  readonly onLine: (stream: 'out' | 'err', line: string) => void;
}

export interface PackerResult {
  readonly exitCode: number | null;
  /** True when the run was stopped through `signal`. */
  readonly cancelled: boolean;
  /** True when Packer had to be killed because it outlived the grace period. */
  readonly killed: boolean;
}

/** Process groups of running Packer builds, for a hard stop on a second SIGINT/SIGTERM. */
const running = new Set<number>();

/** SIGKILLs every running Packer process group (used only when the user insists on stopping now). */
export function killAllPacker(): void {
  for (const pid of running) signalProcess(-pid, 'SIGKILL');
}

/** How long to wait for Packer's output pipes to close after it exits (plugins may still hold them). */
const STDIO_GRACE_MS = 5000;

export function runPacker(options: RunPackerOptions): Promise<PackerResult> {
  options.signal?.throwIfAborted();
  const env = packerEnvironment({
    home: options.tmpDir,
    tmpDir: options.tmpDir,
    log: true,
    userPlugins: true, // WindowsUpdate steps need the windows-update plugin the user (or the image) installed
    variables: options.variables,
  });
  const child = spawn(
    options.packerPath,
    ['build', '-color=false', `-on-error=${options.onError}`, basename(options.file)],
    { cwd: dirname(options.file), env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (child.pid !== undefined) running.add(child.pid);
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) =>
    options.onLine('out', line),
  );
  createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) =>
    options.onLine('err', line),
  );

  let cancelled = false;
  let killed = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    cancelled = true;
    signalProcess(child.pid, 'SIGTERM');
    killTimer = setTimeout(() => {
      killed = true;
      signalProcess(child.pid === undefined ? undefined : -child.pid, 'SIGKILL');
    }, options.killGraceMs);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      options.signal?.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
      reject(error);
    });
    child.once('exit', (code) => {
      options.signal?.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
      // Plugins are Packer's children in the same group: make sure none outlives the run.
      if (child.pid !== undefined) {
        signalProcess(-child.pid, 'SIGKILL');
        running.delete(child.pid);
      }
      const stdioTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, STDIO_GRACE_MS);
      child.once('close', () => {
        clearTimeout(stdioTimer);
        resolve({ exitCode: code, cancelled, killed });
      });
    });
  });
}

function signalProcess(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}
