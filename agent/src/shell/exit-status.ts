/**
 * The exit code `isobuild shell` passes on: the remote command's own, as a process exit status (0–255), the
 * way a shell reports it: a command killed by a signal is 128 + the signal's number.
 */
import { constants } from 'node:os';

/**
 * A remote POSIX command's status from SSH's exit-status or exit-signal ("SIGTERM" as ssh2 reports it, or
 * "TERM" as the protocol sends it); 255 for a signal this system has no number for.
 */
export function posixExitStatus(code: number | null | undefined, signalName?: string): number | undefined {
  if (signalName) {
    const name = signalName.startsWith('SIG') ? signalName : `SIG${signalName}`;
    const number = (constants.signals as Record<string, number | undefined>)[name];
    return number === undefined ? 255 : 128 + number;
  }
  return code === null || code === undefined ? undefined : code & 0xff;
}

/**
 * A Windows exit code is 32 bits (3010, -1): one that does not fit in 0–255 keeps its low byte, and never
 * turns a failure into 0 (256 would).
 */
export function windowsExitStatus(code: number): number {
  if (code >= 0 && code <= 255) return code;
  return code & 0xff || 1;
}
