/**
 * Proves a Windows build VM accepts WinRM over HTTPS before Packer starts, the way Packer itself decides
 * it is connected (a PowerShell echo), and says precisely why when it does not: refused, timed out,
 * unreachable, TLS (certificate) failure, rejected login, or not a WinRM listener. Failures that may clear
 * up are retried until the timeout; a rejected login or a certificate mismatch fails at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WinRmClient } from '../winrm/client.js';
import { WinRmError, type WinRmTarget } from '../winrm/transport.js';

const MARKER = 'isobuild: WinRM ready';

export interface WaitForWinRmOptions {
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  readonly onAttempt?: (attempt: number, failure: WinRmError) => void;
}

export async function waitForWinRm(
  target: WinRmTarget,
  options: WaitForWinRmOptions,
): Promise<{ attempts: number }> {
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    const remaining = Math.max(1_000, deadline - Date.now());
    const client = new WinRmClient(target, {
      operationTimeoutMs: Math.min(10_000, remaining),
      requestTimeoutMs: Math.min(10_000, remaining),
    });
    let failure: WinRmError;
    try {
      const result = await client.runPowerShell(`Write-Output "${MARKER}"`, {
        signal: AbortSignal.any([
          options.signal ?? new AbortController().signal,
          AbortSignal.timeout(remaining),
        ]),
      });
      if (result.stdout.includes(MARKER)) return { attempts: attempt };
      failure = new WinRmError(
        'protocol',
        `${target.label ?? `${target.host}:${target.port}`} ran the readiness check but did not echo it (exit code ${result.exitCode})`,
      );
    } catch (error) {
      options.signal?.throwIfAborted();
      failure =
        error instanceof WinRmError
          ? error
          : new WinRmError(
              'timeout',
              `${target.label ?? `${target.host}:${target.port}`} did not answer in time`,
            );
    } finally {
      client.close();
    }
    // A wrong password or a certificate that does not match will not fix itself.
    if (
      failure.kind === 'auth-rejected' ||
      failure.kind === 'tls' ||
      Date.now() + (options.intervalMs ?? 1000) >= deadline
    )
      throw failure;
    options.onAttempt?.(attempt, failure);
    await sleep(options.intervalMs ?? 1000, undefined, { signal: options.signal });
  }
}
