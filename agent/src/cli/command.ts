/** What a command needs from the process: output channels, secret registration and the cancellation signal. */
export interface CommandIo {
  /** Results for the user or for scripts (stdout). Registered secrets are masked. */
  readonly out: (text: string) => void;
  /** Raw text on stdout, no newline added (streamed logs). Registered secrets are masked. */
  readonly stream: (text: string) => void;
  /** Progress, warnings and errors (stderr). Registered secrets are masked. */
  readonly err: (text: string) => void;
  /** Values that must never be printed from now on, including in error messages. */
  readonly registerSecrets: (values: readonly string[]) => void;
  /** Masks the registered secrets in text written by other means (the structured logger). */
  readonly mask: (text: string) => string;
  readonly signal: AbortSignal;
}
