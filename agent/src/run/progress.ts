/**
 * Human progress output of a build: one line per phase and per step (`[3/7] Shell "install-nginx" 12.4s ✓`),
 * a heartbeat while a step runs long, and the last lines of a failing step.
 */
import { seconds } from '../format-seconds.js';

// Kept for run/'s imports; it lives in format-seconds.ts so that vm-path/ need not import run/.
export { seconds };

export const HEARTBEAT_MS = 15_000;
export const TAIL_LINES = 20;

export class Progress {
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (line: string) => void,
    private readonly total: number,
  ) {}

  phase(name: string, outcome: 'ok' | 'failed' | 'skipped', detail = ''): void {
    const mark = outcome === 'ok' ? '✓' : outcome === 'failed' ? '✗' : '-';
    this.write(`${name}${detail ? ` ${detail}` : ''} ${mark}`);
  }

  stepStarted(position: number, label: string, lastLine: () => string | undefined): void {
    this.stopHeartbeat();
    const started = Date.now();
    this.heartbeat = setInterval(() => {
      const last = lastLine();
      this.write(
        `[${position}/${this.total}] ${label} still running (${seconds(Date.now() - started)})${last ? `: ${last}` : ''}`,
      );
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  stepFinished(position: number, label: string, durationMs: number, outcome: string): void {
    this.stopHeartbeat();
    const mark = outcome === 'succeeded' ? '✓' : outcome === 'skipped' ? '-' : `✗ ${outcome}`;
    this.write(`[${position}/${this.total}] ${label} ${seconds(durationMs)} ${mark}`);
  }

  tail(label: string, lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.write(`Last ${lines.length} line(s) of ${label}:`);
    for (const line of lines) this.write(`  | ${line}`);
  }

  stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}
