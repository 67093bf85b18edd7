/** What a shell session reads and writes: the user's stdin, and stdout and stderr as byte outputs. */

/** A byte output (masked on its way out, see masked-output.ts). */
export interface Output {
  write(chunk: Buffer): void;
  /** Writes out anything held back; call it before other text goes to the same place, and at the end. */
  flush(): void;
}

export interface SessionIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: Output;
  readonly stderr: Output;
  /** isobuild's own lines about the session (on stderr), such as a readiness attempt that will be retried. */
  readonly note: (text: string) => void;
}
