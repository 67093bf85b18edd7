// Starts the built isobuild-proxy as a real process, the way Dockerfile.proxy does (with its Node flags).
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { PROXY_NODE_FLAGS } from '../../proxy/src/runtime.js';
import { runProcess } from './run-process.js';

export const PROXY_CLI = resolve('dist/proxy/src/main.js');

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly ports: { readonly ssh: number; readonly winrm: number };
  /** Undefined when the health check is off (--health-port -1). */
  readonly healthPort: number | undefined;
  logs(): string;
  stop(): Promise<void>;
}

export interface ProxyRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ProxyArgs {
  /** Default 127.0.0.1. */
  readonly listen?: string;
  /** Listening ports; default 0 (any free port). */
  readonly sshPort?: number;
  readonly winrmPort?: number;
  /** The health check on a free port (default: off). */
  readonly health?: boolean;
  /** The build VM; default 127.0.0.1. */
  readonly target?: string;
  readonly targetSshPort?: number;
  readonly targetWinrmPort?: number;
}

/** isobuild-proxy's command-line arguments for `options`, in the order the tests have always passed them. */
export function proxyArgs(options: ProxyArgs = {}): string[] {
  return [
    '--listen',
    options.listen ?? '127.0.0.1',
    '--ssh-port',
    String(options.sshPort ?? 0),
    '--winrm-port',
    String(options.winrmPort ?? 0),
    ...(options.health ? ['--health-port', '0'] : ['--health-port=-1']),
    '--target',
    options.target ?? '127.0.0.1',
    ...(options.targetSshPort === undefined ? [] : ['--target-ssh-port', String(options.targetSshPort)]),
    ...(options.targetWinrmPort === undefined
      ? []
      : ['--target-winrm-port', String(options.targetWinrmPort)]),
  ];
}

/** The command line that starts isobuild-proxy with `args`, inside network namespace `netns` when given. */
function command(args: readonly string[], netns?: string, prefix: readonly string[] = []): string[] {
  const proxy = [...prefix, process.execPath, ...PROXY_NODE_FLAGS, PROXY_CLI, ...args];
  return netns ? ['ip', 'netns', 'exec', netns, ...proxy] : proxy;
}

/**
 * Starts isobuild-proxy, inside network namespace `netns` when given, with `prefix` before node when given
 * (e.g. prlimit to lower its file limit).
 */
export async function startProxyProcess(
  args: string[],
  netns?: string,
  prefix?: string[],
): Promise<ProxyProcess> {
  const [file = '', ...rest] = command(args, netns, prefix);
  const child = spawn(file, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const started = await new Promise<{ ports: { ssh: number; winrm: number }; healthPort?: number }>(
    (done, fail) => {
      const timer = setTimeout(() => fail(new Error(`isobuild-proxy did not start: ${out}${err}`)), 5000);
      const check = (): void => {
        const line = out.split('\n').find((l) => l.includes('"proxy listening"'));
        if (line) {
          clearTimeout(timer);
          done(JSON.parse(line) as { ports: { ssh: number; winrm: number }; healthPort?: number });
        }
      };
      child.stdout.on('data', check);
      child.once('exit', () => {
        clearTimeout(timer);
        fail(new Error(`isobuild-proxy exited: ${out}${err}`));
      });
    },
  );
  return {
    child,
    ports: started.ports,
    healthPort: started.healthPort,
    logs: () => out,
    stop: async () => {
      // A killed child has a signalCode and no exitCode: waiting for its 'exit' again would never end.
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await new Promise((done) => child.once('exit', done));
    },
  };
}

/**
 * Runs isobuild-proxy until it exits on its own (configuration and listen failures), with `env` as its whole
 * environment and `prefix` before node (e.g. setpriv to drop root). Killed and reported after `deadlineMs`.
 */
export async function runProxyToExit(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; prefix?: string[]; deadlineMs?: number } = {},
): Promise<ProxyRun> {
  const [file = '', ...rest] = command(args, undefined, options.prefix);
  const deadlineMs = options.deadlineMs ?? 5000;
  const run = await runProcess(file, rest, { env: options.env ?? {}, deadlineMs });
  if (run.timedOut)
    throw new Error(`isobuild-proxy did not exit within ${deadlineMs} ms: ${run.stdout}${run.stderr}`);
  return { code: run.code, stdout: run.stdout, stderr: run.stderr };
}
