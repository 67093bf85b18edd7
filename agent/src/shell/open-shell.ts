/**
 * `isobuild shell`'s way to the VM, the same as the build's: a local relay that dials the VM directly or
 * through isobuild-proxy, the build's readiness probe (hop-aware VmUnreachable, exit 5), then the session:
 * SSH for Linux, PowerShell over WinRM for Windows. The relay is closed whatever happens.
 */
import { seconds } from '../format-seconds.js';
import type { Relay } from '../relay/relay.js';
import { WinRmClient } from '../winrm/client.js';
import type { VmPath, WinRmVmPath } from '../vm-path/vm-path.js';
import { sshTarget, waitUntilReachable, winRmTarget } from '../vm-path/vm-probe.js';
import { openVmRelay } from '../vm-path/vm-relay.js';
import { posixCommandLine, powerShellCommandLine } from './remote-command.js';
import { runPowerShellCommand, runPowerShellPrompt } from './powershell-session.js';
import type { SessionIo } from './session-io.js';
import { runSshSession, type SshMode } from './ssh-session.js';
import type { Terminal } from './terminal.js';

export interface ShellRequest {
  readonly path: VmPath;
  /** The command after `--`, word by word; empty for an interactive session. */
  readonly command: readonly string[];
  /** How long to wait for the VM to accept a login (--ready-timeout), in ms. */
  readonly readyTimeoutMs: number;
  readonly io: SessionIo;
  /** The user's terminal when stdin is one: a Linux session then gets a PTY. */
  readonly terminal?: Terminal;
  /** SIGINT/SIGTERM of isobuild: ends the session, closes the relay (and deletes the WinRM shell). */
  readonly signal: AbortSignal;
}

/**
 * Resolves with the remote command's (or session's) exit status.
 * @throws VmUnreachable (exit 5) when the VM does not accept a login within the ready timeout;
 *   IsobuildError 'vmUnreachable' when the session breaks; the signal's reason when it aborts.
 */
export async function runShell(request: ShellRequest): Promise<number> {
  const { path, readyTimeoutMs, io, signal } = request;
  const relay = await openVmRelay(path, { connectTimeoutMs: Math.min(10_000, readyTimeoutMs) });
  try {
    await waitUntilReachable(path, relay, {
      timeoutMs: readyTimeoutMs,
      signal,
      onAttempt: (attempt, failure) =>
        io.note(
          `attempt ${attempt}: ${relay.lastFailure() ?? failure.message}; trying again (for up to ${seconds(readyTimeoutMs)} in all)`,
        ),
    });
    if (path.protocol === 'SSH') {
      return await runSshSession(sshTarget(path, relay), sshMode(request), io, {
        connectTimeoutMs: Math.min(30_000, readyTimeoutMs),
        signal,
        whyBroken: () => relay.lastFailure(),
      });
    }
    return await runWinRm(path, relay, request);
  } finally {
    await relay.close();
  }
}

function sshMode({ command, terminal }: ShellRequest): SshMode {
  if (command.length > 0) return { kind: 'exec', command: posixCommandLine(command) };
  return terminal ? { kind: 'pty', terminal } : { kind: 'shell' };
}

async function runWinRm(path: WinRmVmPath, relay: Relay, request: ShellRequest): Promise<number> {
  const { io, signal, command } = request;
  const client = new WinRmClient(winRmTarget(path, relay));
  const options = { signal, whyBroken: () => relay.lastFailure(), label: path.label };
  try {
    if (command.length > 0)
      return await runPowerShellCommand(client, powerShellCommandLine(command), io, options);
    if (request.terminal)
      io.note(
        `PowerShell on ${path.label} as ${path.user}: each line runs as one command (in a new session: variables and the current directory do not carry over); exit or Ctrl-D ends.`,
      );
    return await runPowerShellPrompt(client, `PS ${path.winrm.servername}> `, io, options);
  } finally {
    client.close();
  }
}
