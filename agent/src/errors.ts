/**
 * The error model shared by every command: one class with a stable code, a message for humans
 * and the process exit code that code maps to. Only cli/main.ts turns these into output.
 */

/** Exit codes are a contract with scripts and CI pipelines; docs/exit-codes.md lists them. */
export const EXIT_CODES = {
  ok: 0,
  buildFailed: 1,
  invalidInput: 2,
  artifactFailed: 3,
  environment: 4,
  vmUnreachable: 5,
  internal: 70,
  timedOut: 124,
  interrupted: 130,
  terminated: 143,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

export const ERROR_CODES = {
  usage: { exit: EXIT_CODES.invalidInput },
  templateUnreadable: { exit: EXIT_CODES.invalidInput },
  templateInvalid: { exit: EXIT_CODES.invalidInput },
  artifactFailed: { exit: EXIT_CODES.artifactFailed },
  packerMissing: { exit: EXIT_CODES.environment },
  packerUnsupported: { exit: EXIT_CODES.environment },
  packerRejected: { exit: EXIT_CODES.internal },
  outputUnwritable: { exit: EXIT_CODES.environment },
  vmUnreachable: { exit: EXIT_CODES.vmUnreachable },
  /** A Windows File step's source could not be uploaded (isobuild's own upload, before Packer ran). */
  uploadFailed: { exit: EXIT_CODES.buildFailed },
  /** The log store (Blob Storage, or the embedded Azurite) cannot be opened or read. */
  storeUnavailable: { exit: EXIT_CODES.environment },
  /** `isobuild logs`: no such run in the store. */
  runNotFound: { exit: EXIT_CODES.invalidInput },
  /** `isobuild diff`: a run's SBOM or provenance record is not a document isobuild can read. */
  recordInvalid: { exit: EXIT_CODES.invalidInput },
  /** `isobuild logs`: the stored log is not the whole log (the build could not store all of it). */
  logIncomplete: { exit: EXIT_CODES.environment },
  cancelled: { exit: EXIT_CODES.interrupted },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** One finding about the user's input, located by a JSON path such as `properties.customize[2].scriptUri`. */
export interface Problem {
  readonly severity: 'error' | 'warning';
  readonly path: string;
  readonly message: string;
  /** 1-based line in the source file, when known. */
  readonly line?: number;
}

export class IsobuildError extends Error {
  readonly code: ErrorCode;
  readonly problems: readonly Problem[];

  constructor(
    code: ErrorCode,
    message: string,
    options: { problems?: readonly Problem[]; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IsobuildError';
    this.code = code;
    this.problems = options.problems ?? [];
  }

  get exitCode(): ExitCode {
    return ERROR_CODES[this.code].exit;
  }
}

/** The reason a command is asked to stop: which signal, so that a stopped build exits 130 or 143. */
export class StopRequest extends IsobuildError {
  constructor(readonly signalName: 'SIGINT' | 'SIGTERM') {
    super('cancelled', `interrupted by ${signalName}; stopped before finishing.`);
    this.name = 'StopRequest';
  }
}

export function isIsobuildError(value: unknown): value is IsobuildError {
  return value instanceof IsobuildError;
}

/** Renders a JSON path segment list as `a.b[2].c`, quoting keys that are not plain identifiers. */
export function formatPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === '' ? '(root)' : out;
}
