/**
 * The customization and validation logs of a run, in AIB's line format (`[<runId>] PACKER OUT …`,
 * `PACKER ERR …` for Packer's debug stream) with a timestamp on every line, plus isobuild's own lines.
 * Every line is masked before it is written. The logs issue streams these to Blob Storage.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export type LogSource = 'PACKER OUT' | 'PACKER ERR' | 'ISOBUILD';

export class BuildLog {
  private readonly stream: WriteStream;

  constructor(
    readonly path: string,
    private readonly runId: string,
    private readonly mask: (text: string) => string,
  ) {
    this.stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  write(source: LogSource, line: string): void {
    this.stream.write(`[${this.runId}] ${new Date().toISOString()} ${source} ${this.mask(line)}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
}
