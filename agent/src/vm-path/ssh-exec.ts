/** Runs one command on the build VM over SSH (through the relay), within a time budget, and returns its stdout. */
import { loadSsh2 } from '../readiness/load-ssh2.js';
import { sshLogin, type SshProbeTarget } from '../readiness/ssh-probe.js';

/** The command did not finish (connect, login and run) within the budget. */
export class SshCommandTimeout extends Error {
  constructor(
    /** The target's label, or host:port. */
    readonly where: string,
    readonly budgetMs: number,
  ) {
    super(`the command on ${where} did not finish within ${budgetMs / 1000} s`);
    this.name = 'SshCommandTimeout';
  }
}

export interface SshExecOptions {
  /** For connect, login and the command together, in ms. */
  readonly budgetMs: number;
  /** Aborting ends the connection and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Resolves with the command's stdout once its channel closes (whatever its exit status; stderr is drained).
 * @throws SshCommandTimeout after `budgetMs`; ssh2's error when the connection or login fails.
 */
export async function sshExec(
  target: SshProbeTarget,
  command: string,
  options: SshExecOptions,
): Promise<string> {
  const { signal, budgetMs } = options;
  signal?.throwIfAborted();
  const { Client } = await loadSsh2();
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const settle = (outcome: { readonly error: Error } | { readonly output: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      client.end();
      if ('output' in outcome) resolve(outcome.output);
      else reject(outcome.error);
    };
    const onAbort = (): void => settle({ error: signal?.reason as Error });
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () =>
        settle({ error: new SshCommandTimeout(target.label ?? `${target.host}:${target.port}`, budgetMs) }),
      budgetMs,
    );
    client
      .once('ready', () => {
        client.exec(command, (error, stream) => {
          if (error) return settle({ error });
          let output = '';
          stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
          stream.stderr.resume();
          stream.once('close', () => settle({ output }));
        });
      })
      // ssh2 may emit more than one error for a broken connection: every one must be handled.
      .on('error', (error) => settle({ error }))
      .connect({
        ...sshLogin(target),
        readyTimeout: budgetMs,
      });
  });
}
