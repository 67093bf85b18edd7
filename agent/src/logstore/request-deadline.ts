/**
 * Every request to storage gets its own deadline. The SDK's tryTimeoutInMs only asks the *server* to
 * give up (a `timeout=` query parameter), so against a path that silently drops packets (a dead firewall
 * or NSG) a request otherwise waits forever. A request that outlives its deadline is abandoned: the SDK
 * destroys its socket on abort, and `onTimeout` lets the store drop its idle keep-alive sockets too, so
 * the next attempt starts on a fresh connection. Whatever an abandoned request may still do on the
 * server is reconciled by the callers (appendPosition for appends, ETags for the status).
 */

/** Appends, status uploads, reads: a few KiB to a few MiB on any working link. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
/** Large transfers get longer in proportion: the slowest link that still counts as working. */
const SLOWEST_BYTES_PER_SECOND = 64 * 1024;

/** A storage request got no complete reply within its deadline and was abandoned. */
export class StorageTimeoutError extends Error {
  readonly code = 'StorageTimeout';

  constructor(readonly timeoutMs: number) {
    super(`no reply from storage within ${(timeoutMs / 1000).toFixed(1)} s (request abandoned)`);
    this.name = 'StorageTimeoutError';
  }
}

export interface RequestDeadlines {
  /** The deadline of a small request. */
  readonly timeoutMs: number;
  /**
   * Runs one storage request (`call` must pass the signal it gets to the SDK as `abortSignal`).
   * Rejects with StorageTimeoutError at the deadline even if the SDK ignored the abort, or with the
   * parent signal's reason when that aborts first. `bytes` lengthens the deadline for large transfers.
   */
  run<T>(
    call: (signal: AbortSignal) => Promise<T>,
    options?: { readonly signal?: AbortSignal; readonly bytes?: number },
  ): Promise<T>;
}

export function requestDeadlines(
  timeoutMs: number,
  onTimeout: () => void = () => undefined,
): RequestDeadlines {
  return {
    timeoutMs,
    async run(call, options = {}) {
      const parent = options.signal;
      parent?.throwIfAborted();
      const ms = timeoutMs + Math.ceil(((options.bytes ?? 0) / SLOWEST_BYTES_PER_SECOND) * 1000);
      const controller = new AbortController();
      let giveUp: ((reason: unknown) => void) | undefined;
      const abandoned = new Promise<never>((_, reject) => (giveUp = reject));
      const stop = (reason: unknown): void => {
        controller.abort(reason);
        giveUp?.(reason);
      };
      const timer = setTimeout(() => {
        onTimeout();
        stop(new StorageTimeoutError(ms));
      }, ms);
      const onParentAbort = (): void => stop(parent?.reason);
      parent?.addEventListener('abort', onParentAbort, { once: true });
      try {
        return await Promise.race([call(controller.signal), abandoned]);
      } catch (error) {
        // The SDK rejects with its own AbortError; say why it was aborted instead.
        throw controller.signal.aborted ? controller.signal.reason : error;
      } finally {
        clearTimeout(timer);
        parent?.removeEventListener('abort', onParentAbort);
      }
    },
  };
}

export function isStorageTimeout(error: unknown): error is StorageTimeoutError {
  return error instanceof StorageTimeoutError;
}
