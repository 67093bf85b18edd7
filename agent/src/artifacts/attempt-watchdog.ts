/**
 * The deadlines of one download attempt. An overall deadline covers everything (connect, redirects, the
 * response and the body); a stall deadline restarts only on real progress, so neither a silent server nor
 * one that drips a byte a second can hold an attempt open. When either passes, `signal` aborts and
 * `failure` says which limit passed and how far the attempt had got.
 */
import { DownloadError, HINTS, formatDuration } from './download-error.js';

/** Where an attempt is: each step forward restarts the stall deadline. */
export type AttemptPhase = 'signing-in' | 'connecting' | 'tls' | 'waiting' | 'receiving';

export interface WatchdogOptions {
  /** When the attempt must be over, as a Date.now() time. */
  readonly deadlineAt: number;
  /** Says which deadline that is, e.g. "the attempt did not finish within 5 min". */
  readonly deadlineText: string;
  readonly stallTimeoutMs: number;
  /** Bytes that count as progress within one stall window (a byte now and then does not). */
  readonly progressBytes: number;
}

export class AttemptWatchdog {
  readonly #controller = new AbortController();
  readonly #outer: AbortSignal;
  readonly #options: WatchdogOptions;
  readonly #onOuterAbort = (): void => this.#controller.abort(this.#outer.reason);
  #phase: AttemptPhase = 'connecting';
  #peer = '';
  #bytes = 0;
  #windowBytes = 0;
  #lastDataAt = Date.now();
  #expectedBytes: number | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  readonly #deadlineTimer: NodeJS.Timeout;
  #failure: DownloadError | undefined;

  constructor(outer: AbortSignal, options: WatchdogOptions) {
    this.#outer = outer;
    this.#options = options;
    if (outer.aborted) this.#controller.abort(outer.reason);
    else outer.addEventListener('abort', this.#onOuterAbort, { once: true });
    this.#deadlineTimer = setTimeout(
      () => this.#fail(`${options.deadlineText} (${this.#progressSoFar()})`),
      Math.max(0, options.deadlineAt - Date.now()),
    );
    this.#restartStallTimer();
  }

  /** Aborts on the caller's abort, the attempt deadline or a stall. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Which limit stopped the attempt, if one did. */
  get failure(): DownloadError | undefined {
    return this.#failure;
  }

  get phase(): AttemptPhase {
    return this.#phase;
  }

  get peer(): string {
    return this.#peer;
  }

  get bytes(): number {
    return this.#bytes;
  }

  enter(phase: AttemptPhase, peer = this.#peer): void {
    this.#phase = phase;
    this.#peer = peer;
    this.#restartStallTimer();
  }

  expect(bytes: number | undefined): void {
    this.#expectedBytes = bytes;
  }

  progress(bytes: number): void {
    this.#bytes += bytes;
    this.#windowBytes += bytes;
    this.#lastDataAt = Date.now();
    if (this.#windowBytes >= this.#options.progressBytes) this.#restartStallTimer();
  }

  /** "12 of 1000 bytes", for messages about a transfer that broke off. */
  received(): string {
    return this.#expectedBytes === undefined
      ? `${this.#bytes} bytes`
      : `${this.#bytes} of ${this.#expectedBytes} bytes`;
  }

  dispose(): void {
    clearTimeout(this.#deadlineTimer);
    clearTimeout(this.#stallTimer);
    this.#outer.removeEventListener('abort', this.#onOuterAbort);
  }

  #restartStallTimer(): void {
    clearTimeout(this.#stallTimer);
    this.#windowBytes = 0;
    this.#lastDataAt = Date.now();
    this.#stallTimer = setTimeout(() => this.#fail(this.#stallMessage()), this.#options.stallTimeoutMs);
  }

  #fail(message: string): void {
    if (this.#controller.signal.aborted) return;
    this.#failure = new DownloadError(message, true, HINTS.slow);
    this.dispose();
    this.#controller.abort(this.#failure);
  }

  #stallMessage(): string {
    const window = formatDuration(this.#options.stallTimeoutMs);
    switch (this.#phase) {
      case 'signing-in':
        return `no Azure access token for ${this.#peer} arrived within ${window} (DefaultAzureCredential: managed identity or az login)`;
      case 'connecting':
        return `could not connect to ${this.#peer} within ${window} (no answer to the connection request)`;
      case 'tls':
        return `${this.#peer} accepted the connection, but the TLS handshake did not finish within ${window}`;
      case 'waiting':
        return `${this.#peer} accepted the connection but sent no response within ${window}`;
      case 'receiving': {
        // Quiet for most of the window: stalled. Bytes now and then, too few: a drip.
        const idle = Date.now() - this.#lastDataAt;
        return idle >= this.#options.stallTimeoutMs / 2
          ? `the transfer stalled: no data for ${formatDuration(idle)} after ${this.received()}`
          : `the transfer is too slow: only ${bytesText(this.#windowBytes)} arrived in ${window}, under the minimum of ${bytesText(this.#options.progressBytes)} (${this.received()} so far)`;
      }
    }
  }

  #progressSoFar(): string {
    switch (this.#phase) {
      case 'signing-in':
        return `still waiting for an Azure access token for ${this.#peer}`;
      case 'connecting':
        return `still connecting to ${this.#peer}`;
      case 'tls':
        return `still in the TLS handshake with ${this.#peer}`;
      case 'waiting':
        return `${this.#peer} had sent no response`;
      case 'receiving':
        return `${this.received()} had arrived`;
    }
  }
}

function bytesText(bytes: number): string {
  if (bytes > 0 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return bytes === 1 ? '1 byte' : `${bytes} bytes`;
}
