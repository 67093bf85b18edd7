/**
 * The customization and validation logs of a run, in AIB's line format (`[<runId>] PACKER OUT …`,
 * `PACKER ERR …` for Packer's debug stream) with a timestamp on every line, plus isobuild's own lines.
 * Every line is masked before it is written. The local file doubles as the spool of the live upload to
 * Blob Storage; when storage falls too far behind (the spool gate), lines are dropped, counted, and a
 * line saying how many were lost takes their place once there is room again.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export type LogSource = 'PACKER OUT' | 'PACKER ERR' | 'ISOBUILD';

export interface SpoolGate {
  readonly limitBytes: number;
  /** Bytes written locally that storage does not have yet. */
  backlog(writtenBytes: number): number;
  /** The bound was hit (called once per episode). */
  onFull(): void;
}

export class BuildLog {
  private readonly stream: WriteStream;
  private written = 0;
  private dropped = 0;
  private gate: SpoolGate | undefined;
  private pending: string[] = [];
  private flushSoon: NodeJS.Immediate | undefined;
  private stampedAt = 0;
  private closed = false;
  private stamp = '';
  /** Sees every line as written (masked): the structured log of container runs. */
  tap: ((source: LogSource, line: string) => void) | undefined;

  constructor(
    readonly path: string,
    private readonly runId: string,
    private readonly mask: (text: string) => string,
  ) {
    this.stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  /** Bounds what may wait for storage (set once uploads start). */
  setSpoolGate(gate: SpoolGate): void {
    this.gate = gate;
  }

  get bytesWritten(): number {
    return this.written;
  }

  write(source: LogSource, line: string): void {
    if (this.closed) return; // a straggler after the run ended has nowhere to go
    if (this.gate && this.gate.backlog(this.written) >= this.gate.limitBytes) {
      if (this.dropped++ === 0) this.gate.onFull();
      return;
    }
    if (this.dropped > 0) {
      const count = this.dropped;
      this.dropped = 0;
      this.append(
        'ISOBUILD',
        `${count} line(s) were dropped here: Blob Storage was unreachable and the local spool reached its bound of ${this.gate?.limitBytes ?? 0} bytes (--log-spool-limit).`,
      );
    }
    this.append(source, line);
  }

  close(): Promise<void> {
    if (this.dropped > 0) {
      this.append(
        'ISOBUILD',
        `${this.dropped} line(s) at the end of this log were dropped: the spool was full.`,
      );
      this.dropped = 0;
    }
    this.flush();
    this.closed = true;
    return new Promise((resolve, reject) =>
      this.stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }

  private append(source: LogSource, line: string): void {
    const masked = this.mask(line);
    this.tap?.(source, masked);
    const text = `[${this.runId}] ${this.timestamp()} ${source} ${masked}\n`;
    this.written += Buffer.byteLength(text);
    // Lines that arrive together (a burst on Packer's pipe) go to the file in one write.
    this.pending.push(text);
    if (this.pending.length >= 512) this.flush();
    else this.flushSoon ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.flushSoon) clearImmediate(this.flushSoon);
    this.flushSoon = undefined;
    if (this.pending.length === 0) return;
    this.stream.write(this.pending.join(''));
    this.pending = [];
  }

  /** ISO time of now, formatted once per millisecond (a flood has many lines per millisecond). */
  private timestamp(): string {
    const now = Date.now();
    if (now !== this.stampedAt) {
      this.stampedAt = now;
      this.stamp = new Date(now).toISOString();
    }
    return this.stamp;
  }
}
