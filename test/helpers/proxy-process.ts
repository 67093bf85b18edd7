// Starts the built isobuild-proxy as a real process and waits until it listens.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

export const PROXY_CLI = resolve('dist/proxy/src/main.js');

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly ports: { readonly ssh: number; readonly winrm: number };
  readonly healthPort: number;
  logs(): string;
  stop(): Promise<void>;
}

/** Starts isobuild-proxy, inside network namespace `netns` when given. */
export async function startProxyProcess(args: string[], netns?: string): Promise<ProxyProcess> {
  const command = [process.execPath, PROXY_CLI, ...args];
  const child = netns
    ? spawn('ip', ['netns', 'exec', netns, ...command], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(command[0] ?? '', command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const started = await new Promise<{ ports: { ssh: number; winrm: number }; healthPort: number }>(
    (done, fail) => {
      const timer = setTimeout(() => fail(new Error(`isobuild-proxy did not start: ${out}${err}`)), 5000);
      const check = (): void => {
        const line = out.split('\n').find((l) => l.includes('"proxy listening"'));
        if (line) {
          clearTimeout(timer);
          done(JSON.parse(line) as { ports: { ssh: number; winrm: number }; healthPort: number });
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
      if (child.exitCode !== null) return;
      child.kill('SIGKILL');
      await new Promise((done) => child.once('exit', done));
    },
  };
}
