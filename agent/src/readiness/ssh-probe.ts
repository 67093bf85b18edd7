/**
 * Proves the build VM accepts SSH before Packer starts, and says precisely why when it does not.
 * Packer reports every failure here as "Timeout waiting for SSH" after its full timeout; this probe
 * tells refused, timed out, unreachable, authentication rejected and handshake failures apart, and
 * names the address that failed.
 */
import type { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadSsh2 } from './load-ssh2.js';

export type ProbeFailureKind = 'refused' | 'timeout' | 'unreachable' | 'auth-rejected' | 'handshake';

export class ProbeFailure extends Error {
  constructor(
    readonly kind: ProbeFailureKind,
    message: string,
  ) {
    super(message);
  }
}

export interface SshProbeTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey?: Buffer;
  readonly password?: string;
  /** How messages name the target, e.g. "build VM 10.0.0.4:22" when host:port is a local relay. */
  readonly label?: string;
}

/** ssh2's connect settings for a target: address, user and whichever credentials it has. */
export function sshLogin(target: SshProbeTarget): {
  host: string;
  port: number;
  username: string;
  privateKey?: Buffer;
  password?: string;
} {
  return {
    host: target.host,
    port: target.port,
    username: target.user,
    ...(target.privateKey ? { privateKey: target.privateKey } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
  };
}

export interface WaitForSshOptions {
  /** Give up after this long; failures that may clear up (refused, timeout) are retried until then. */
  readonly timeoutMs: number;
  /** Per attempt: TCP connect plus SSH handshake. */
  readonly attemptTimeoutMs?: number;
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  readonly onAttempt?: (attempt: number, failure: ProbeFailure) => void;
}

/** Waits until an SSH login succeeds; rejects with the last ProbeFailure (auth failures at once). */
export async function waitForSsh(
  target: SshProbeTarget,
  options: WaitForSshOptions,
): Promise<{ attempts: number }> {
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    const remaining = deadline - Date.now();
    const attemptTimeout = Math.max(500, Math.min(options.attemptTimeoutMs ?? 10_000, remaining));
    const failure = await probeOnce(target, attemptTimeout, options.signal);
    if (!failure) return { attempts: attempt };
    options.signal?.throwIfAborted();
    // A wrong key or user does not fix itself: fail now instead of after the whole timeout.
    if (failure.kind === 'auth-rejected' || Date.now() + (options.intervalMs ?? 1000) >= deadline)
      throw failure;
    options.onAttempt?.(attempt, failure);
    await sleep(options.intervalMs ?? 1000, undefined, { signal: options.signal });
  }
}

/** One login attempt: undefined on success, otherwise the classified failure. */
export async function probeOnce(
  target: SshProbeTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ProbeFailure | undefined> {
  const where = target.label ?? `${target.host}:${target.port}`;
  const { Client } = await loadSsh2();
  return new Promise((resolve) => {
    const client = new Client();
    let connected = false;
    let settled = false;
    const finish = (failure: ProbeFailure | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      client.removeAllListeners();
      client.on('error', () => undefined); // late socket errors after end() must not crash the process
      client.end();
      resolve(failure);
    };
    const onAbort = (): void => finish(new ProbeFailure('timeout', `the probe of ${where} was cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      finish(
        connected
          ? new ProbeFailure(
              'handshake',
              `${where} accepted the TCP connection but did not complete an SSH handshake within ${timeoutMs} ms (is it an SSH server?)`,
            )
          : new ProbeFailure(
              'timeout',
              `connecting to ${where} timed out after ${timeoutMs} ms (no answer: the VM may be down, or a firewall/NSG drops the packets)`,
            ),
      );
    }, timeoutMs);
    client.once('ready', () => finish(undefined));
    client.once('error', (error: Error & { level?: string; code?: string }) =>
      finish(classify(error, target, where)),
    );
    // ssh2 emits 'connect' once TCP is up (its type definitions omit the event).
    (client as unknown as EventEmitter).once('connect', () => {
      connected = true;
    });
    try {
      client.connect({
        ...sshLogin(target),
        readyTimeout: timeoutMs + 1000, // our own timer decides
        tryKeyboard: false,
      });
    } catch (error) {
      finish(
        new ProbeFailure(
          'handshake',
          `cannot start an SSH connection to ${where}: ${(error as Error).message}`,
        ),
      );
    }
  });
}

function classify(
  error: Error & { level?: string; code?: string },
  target: SshProbeTarget,
  where: string,
): ProbeFailure {
  switch (error.code) {
    case 'ECONNREFUSED':
      return new ProbeFailure(
        'refused',
        `${where} refused the connection (nothing listens on port ${target.port}: sshd not running yet, or the wrong port)`,
      );
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ProbeFailure(
        'unreachable',
        `${where} is unreachable (${error.code}: no route to the build VM from here; check the address and the network path)`,
      );
    case 'ETIMEDOUT':
      return new ProbeFailure(
        'timeout',
        `connecting to ${where} timed out (no answer: the VM may be down, or a firewall/NSG drops the packets)`,
      );
    case 'ECONNRESET':
      return new ProbeFailure(
        'handshake',
        `${where} accepted the connection and then reset it during the SSH handshake`,
      );
  }
  if (error.level === 'client-authentication') {
    const method = target.privateKey ? 'the configured private key' : 'the configured password';
    return new ProbeFailure(
      'auth-rejected',
      `${where} rejected the login of user "${target.user}" with ${method} (wrong key, wrong user, or the key is not in authorized_keys)`,
    );
  }
  if (error.level === 'client-timeout') {
    return new ProbeFailure(
      'handshake',
      `${where} accepted the TCP connection but the SSH handshake did not finish (is it an SSH server?)`,
    );
  }
  return new ProbeFailure('handshake', `the SSH handshake with ${where} failed: ${error.message}`);
}
