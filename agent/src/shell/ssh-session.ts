/**
 * A shell session on a Linux build VM over SSH (ssh2), through the relay: one command (`exec`), an
 * interactive shell with a PTY (the user's terminal in raw mode, resizes forwarded), or a shell without a
 * PTY reading piped stdin. Resolves with the remote exit status; whatever happens, the terminal mode is
 * restored, stdin is let go and the connection is closed.
 */
import { randomUUID } from 'node:crypto';
import type { Client, ClientChannel } from 'ssh2';
import { IsobuildError } from '../errors.js';
import { loadSsh2 } from '../readiness/load-ssh2.js';
import { sshLogin, type SshProbeTarget } from '../readiness/ssh-probe.js';
import { posixExitStatus } from './exit-status.js';
import type { SessionIo } from './session-io.js';
import { enterRawMode, type Terminal } from './terminal.js';

export type SshMode =
  | { readonly kind: 'exec'; readonly command: string }
  | { readonly kind: 'pty'; readonly terminal: Terminal }
  | { readonly kind: 'shell' };

export interface SshSessionOptions {
  /** Connect, handshake and login, in ms. */
  readonly connectTimeoutMs: number;
  /** Aborting ends the session (the connection closes) and rejects with the signal's reason. */
  readonly signal: AbortSignal;
  /** Why the network path broke, by hop (the relay's finding), for a connection that drops. */
  readonly whyBroken: () => string | undefined;
}

/** SSH keepalives keep the relay (idle timeout) and middleboxes from dropping a quiet session. */
const KEEPALIVE_MS = 15_000;

/**
 * @throws IsobuildError 'vmUnreachable' (exit 5) when the connection fails or drops before the command ends.
 * @throws the signal's reason when `signal` aborts.
 */
export async function runSshSession(
  target: SshProbeTarget,
  mode: SshMode,
  io: SessionIo,
  options: SshSessionOptions,
): Promise<number> {
  const client = await connect(target, options);
  // A command started without a PTY outlives its channel: it runs in a session of its own whose id is
  // kept on the VM, so that a stop of isobuild stops it there too (ssh2 cannot signal it once stdin ended).
  const pidFile = mode.kind === 'exec' ? `/tmp/isobuild-shell-${randomUUID()}.pid` : undefined;
  const channelMode: SshMode =
    mode.kind === 'exec' && pidFile ? { kind: 'exec', command: stoppable(mode.command, pidFile) } : mode;
  try {
    return await runChannel(
      client,
      channelMode,
      io,
      options,
      target.label ?? `${target.host}:${target.port}`,
    );
  } finally {
    if (pidFile && options.signal.aborted) await stopRemote(client, pidFile);
    client.end();
  }
}

/** How long stopping a command on the VM may take before the connection is closed anyway. */
const REMOTE_STOP_MS = 3_000;

/**
 * `command` in a session of its own (setsid, where the VM has it), its session id in `pidFile`; the file is
 * removed when it ends, and its exit status kept.
 */
function stoppable(command: string, pidFile: string): string {
  const inner = `'${command.replace(/'/g, `'\\''`)}'`;
  return [
    `f=${pidFile}`,
    'if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi',
    `$s sh -c 'echo $$ > "$0"; exec "$@"' "$f" sh -c ${inner}`,
    'r=$?',
    'rm -f "$f"',
    'exit $r',
  ].join('; ');
}

/** Stops the command's whole session on the VM (TERM), within REMOTE_STOP_MS; never throws. */
function stopRemote(client: Client, pidFile: string): Promise<void> {
  const command = `p=$(cat ${pidFile} 2>/dev/null) && { kill -TERM -- -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; }; rm -f ${pidFile}`;
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, REMOTE_STOP_MS);
    try {
      client.exec(command, (error, channel) => {
        if (error) return resolve();
        channel.resume();
        channel.stderr.resume();
        channel.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

async function connect(target: SshProbeTarget, options: SshSessionOptions): Promise<Client> {
  options.signal.throwIfAborted();
  const { Client } = await loadSsh2();
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const settle = (outcome: { readonly error: Error } | 'ready'): void => {
      if (settled) return;
      settled = true;
      options.signal.removeEventListener('abort', onAbort);
      if (outcome === 'ready') return resolve(client);
      client.end();
      reject(outcome.error);
    };
    const onAbort = (): void => settle({ error: options.signal.reason as Error });
    options.signal.addEventListener('abort', onAbort, { once: true });
    const where = target.label ?? `${target.host}:${target.port}`;
    client
      .once('ready', () => settle('ready'))
      // Stays attached for the connection's life: an error after the session must not go unhandled.
      .on('error', (error) => settle({ error: broken(where, options, error.message) }))
      .connect({
        ...sshLogin(target),
        readyTimeout: options.connectTimeoutMs,
        keepaliveInterval: KEEPALIVE_MS,
      });
  });
}

/** Opens the mode's channel, wires it to the user's side, and resolves with its exit status. */
function runChannel(
  client: Client,
  mode: SshMode,
  io: SessionIo,
  options: SshSessionOptions,
  where: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const undo: (() => void)[] = [];
    let settled = false;
    const settle = (outcome: { readonly status: number } | { readonly error: Error }): void => {
      if (settled) return;
      settled = true;
      for (const step of undo.reverse()) step();
      if ('status' in outcome) resolve(outcome.status);
      else reject(outcome.error);
    };
    const onAbort = (): void => settle({ error: options.signal.reason as Error });
    options.signal.addEventListener('abort', onAbort, { once: true });
    undo.push(() => options.signal.removeEventListener('abort', onAbort));
    // ssh2 may emit more than one error for a broken connection: every one must be handled.
    client.on('error', (error) => settle({ error: broken(where, options, error.message) }));
    client.once('close', () => settle({ error: broken(where, options, 'the connection closed') }));
    openChannel(client, mode, (error, channel) => {
      if (error) return settle({ error: broken(where, options, error.message) });
      let status: number | undefined;
      channel.once('exit', (code: number | null, signalName?: string) => {
        status = posixExitStatus(code, signalName);
      });
      channel.once('close', () =>
        settle(
          status === undefined
            ? { error: broken(where, options, 'the session ended without an exit status') }
            : { status },
        ),
      );
      undo.push(wire(channel, mode, io));
    });
  });
}

function openChannel(
  client: Client,
  mode: SshMode,
  callback: (error: Error | undefined, channel: ClientChannel) => void,
): void {
  if (mode.kind === 'exec') client.exec(mode.command, callback);
  else if (mode.kind === 'shell') client.shell(false, callback);
  else {
    const { rows, cols } = mode.terminal.size();
    client.shell({ term: mode.terminal.term, rows, cols }, callback);
  }
}

/** Connects the channel to stdin, stdout and stderr (and the terminal); returns how to undo it. */
function wire(channel: ClientChannel, mode: SshMode, io: SessionIo): () => void {
  channel.on('data', (chunk: Buffer) => io.stdout.write(chunk));
  channel.stderr.on('data', (chunk: Buffer) => io.stderr.write(chunk));
  if (mode.kind !== 'pty') {
    // Piped stdin reaches the remote command, and its end is the command's end of input.
    io.stdin.pipe(channel);
    return () => {
      io.stdin.unpipe(channel);
      io.stdin.pause();
    };
  }
  const { terminal } = mode;
  const restore = enterRawMode(terminal);
  const forward = (chunk: Buffer): void => {
    channel.write(chunk);
  };
  terminal.input.on('data', forward);
  terminal.input.resume();
  const stopResizes = terminal.onResize(() => {
    const { rows, cols } = terminal.size();
    channel.setWindow(rows, cols, 0, 0);
  });
  return () => {
    stopResizes();
    terminal.input.off('data', forward);
    terminal.input.pause();
    restore();
  };
}

function broken(where: string, options: SshSessionOptions, detail: string): IsobuildError {
  return new IsobuildError(
    'vmUnreachable',
    `the SSH session on ${where} broke: ${(options.whyBroken() ?? detail).replace(/\.$/, '')}.`,
  );
}
