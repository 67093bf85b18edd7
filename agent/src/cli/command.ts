/** What a command needs from the process: output channels and the cancellation signal. */
export interface CommandIo {
  /** Results for the user or for scripts (stdout). */
  readonly out: (text: string) => void;
  /** Progress, warnings and errors (stderr). */
  readonly err: (text: string) => void;
  readonly signal: AbortSignal;
}
