/**
 * The remote command line of `isobuild shell RUN -- COMMAND …`. On Linux each argument stays one word for the
 * remote sh (quoted where needed), so `-- sh -c 'echo a; exit 3'` runs exactly that. On Windows the words are
 * one PowerShell command line, joined with spaces, as typed.
 */

/** Words that need no quoting for a POSIX shell. */
const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** `argv` as a command line for the remote POSIX sh: every argument is passed on as it was given. */
export function posixCommandLine(argv: readonly string[]): string {
  return argv.map((word) => (PLAIN_WORD.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** `argv` as one PowerShell command. */
export function powerShellCommandLine(argv: readonly string[]): string {
  return argv.join(' ');
}
