/**
 * Proves the build VM accepts a login through the relay (the SSH or WinRM readiness probe), and when it
 * does not, says why in one error: the hop that failed, whether it was retried, for how long.
 */
import { IsobuildError } from '../errors.js';
import { seconds } from '../format-seconds.js';
import type { Relay } from '../relay/relay.js';
import { ProbeFailure, waitForSsh, type SshProbeTarget } from '../readiness/ssh-probe.js';
import { waitForWinRm } from '../readiness/winrm-probe.js';
import { WinRmError, type WinRmTarget } from '../winrm/transport.js';
import type { SshVmPath, VmPath, WinRmVmPath } from './vm-path.js';

/** The build VM did not accept a login through the relay; `message` is what a build reports (exit 5). */
export class VmUnreachable extends IsobuildError {
  constructor(
    readonly protocol: VmPath['protocol'],
    /** Hop-aware: the relay's network finding, or the probe's own (rejected login, certificate). */
    readonly reason: string,
    /** False for failures that do not clear up (a rejected login or certificate): they stop at once. */
    readonly retried: boolean,
    readonly attempts: number,
    readonly waitedMs: number,
  ) {
    const waited = retried
      ? ` (gave up after ${seconds(waitedMs)}, ${attempts} attempt${attempts === 1 ? '' : 's'})`
      : '';
    super(
      'vmUnreachable',
      `the build VM is not reachable over ${protocol}${waited}: ${reason.replace(/\.$/, '')}.`,
    );
    this.name = 'VmUnreachable';
  }
}

export interface ReachableOptions {
  /** Give up after this long (ms); failures that may clear up (refused, silent) are retried until then. */
  readonly timeoutMs: number;
  /** SSH only: the budget of one attempt (TCP connect plus handshake), 10 s by default; WinRM caps it at 10 s. */
  readonly attemptTimeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Called after each failed attempt that will be retried (not after the last one). */
  readonly onAttempt?: (attempt: number, failure: Error) => void;
}

/**
 * Waits until the VM accepts a login through `relay`, with the same probe Packer's communicator needs.
 * @throws VmUnreachable when it does not within `timeoutMs` (or at once for a rejected login or certificate).
 * @throws the signal's reason when `signal` aborts (the caller tells a cancel from a timeout).
 * Other errors (not probe failures) are rethrown unchanged.
 */
export async function waitUntilReachable(
  path: VmPath,
  relay: Relay,
  options: ReachableOptions,
): Promise<void> {
  const started = Date.now();
  let failedAttempts = 0;
  const probeOptions = {
    timeoutMs: options.timeoutMs,
    ...(options.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: options.attemptTimeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onAttempt: (attempt: number, failure: Error): void => {
      failedAttempts = attempt;
      options.onAttempt?.(attempt, failure);
    },
  };
  try {
    if (path.protocol === 'SSH') await waitForSsh(sshTarget(path, relay), probeOptions);
    else await waitForWinRm(winRmTarget(path, relay), probeOptions);
  } catch (error) {
    options.signal?.throwIfAborted();
    if (!(error instanceof ProbeFailure || error instanceof WinRmError)) throw error;
    // The relay saw network failures first-hand (refused, unreachable, proxy without a VM behind it);
    // a rejected login or certificate is the probe's own finding, and retrying would not change it.
    const ownFinding = error.kind === 'auth-rejected' || error.kind === 'tls';
    const reason = ownFinding ? error.message : (relay.lastFailure() ?? error.message);
    throw new VmUnreachable(path.protocol, reason, !ownFinding, failedAttempts + 1, Date.now() - started);
  }
}

/** Where WinRM requests reach the VM: the relay, with the path's credentials, TLS policy and hop label. */
export function winRmTarget(path: WinRmVmPath, relay: Relay): WinRmTarget {
  return { host: relay.host, port: relay.port, label: path.label, ...path.winrm };
}

/** Where SSH commands reach the VM: the relay, with the path's user, credentials and hop label. */
export function sshTarget(path: SshVmPath, relay: Relay): SshProbeTarget {
  return {
    host: relay.host,
    port: relay.port,
    label: path.label,
    user: path.user,
    ...(path.ssh.privateKey ? { privateKey: path.ssh.privateKey } : {}),
    ...(path.ssh.password ? { password: path.ssh.password.reveal() } : {}),
  };
}
