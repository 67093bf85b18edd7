/**
 * `isobuild shell <runId> [-- COMMAND …]`: a shell on a run's build VM, reached the way the run reached it
 * (its recorded target: host, port, hop, user) with the credentials `build` reads. The session itself is
 * shell/'s job; this module reads the arguments, the run and the configuration, and wires the terminal.
 */
import { ReadStream } from 'node:tty';
import { parseArgs } from 'node:util';
import { IsobuildError } from '../../errors.js';
import { readRunRecord } from '../../run-record/run-record.js';
import { maskedOutput } from '../../shell/masked-output.js';
import { runShell } from '../../shell/open-shell.js';
import type { SessionIo } from '../../shell/session-io.js';
import { terminalOf } from '../../shell/terminal.js';
import { configSecrets, loadLogStoreConfig, storeSecrets } from '../../settings/build-config.js';
import { optionHelp } from '../../settings/option-help.js';
import { processEnvironment } from '../../settings/process-environment.js';
import { commandOptions } from '../../settings/settings-table.js';
import { loadShellConfig } from '../../settings/shell-config.js';
import { resolveVmPath } from '../../vm-path/vm-path.js';
import type { CommandIo } from '../command.js';

export const SHELL_HELP = `Usage: isobuild shell <runId> [options] [-- COMMAND …]

Opens a shell on a run's build VM, reached the way the run reached it (the address, port, user and hop in
its status.json; through a local relay, directly or via isobuild-proxy) with the credentials of "isobuild
build", from the same flags and ISOBUILD_* variables: a run never stores them. The run is looked up in
--work-dir, else in the log store. It works while the run goes on, after it failed, and after errorHandling
abort left the VM as it was.
  Linux:   an SSH session, with a PTY when stdin is a terminal (its size follows the terminal; Ctrl-C and
           the other keys go to the VM), without one when stdin is piped (echo hostname | isobuild shell ID)
  Windows: a PowerShell prompt over WinRM ("PS HOST> " on stderr) that runs each line of stdin as one
           command, each in a new session, until exit or the end of input
With -- COMMAND, runs that one command and exits with its exit code, streaming its stdout and stderr as
they come. On Linux each word reaches the remote sh as one argument (shell syntax: -- sh -c 'a | b'); on
Windows the words are one PowerShell command.

Options (each also as an environment variable, which the flag overrides):
${optionHelp('shell', 'vm')}
Windows build VMs (the password in ISOBUILD_WINRM_PASSWORD):
${optionHelp('shell', 'windows')}
${optionHelp('shell', ['workDir', 'readyTimeout', 'proxyHost'])}
Log store (where to look for a run that is not in --work-dir; the same settings as "isobuild build"):
${optionHelp('shell', 'store')}
  -h, --help               show this help

Exit codes: the remote command's (or the session's) own exit code, 128 + N for a command killed by
signal N; 2 bad arguments, no such run, or a run that recorded no target (built by an older isobuild);
4 the log store cannot be read; 5 the build VM cannot be reached, refused the login, or the session broke;
130 interrupted (SIGINT), 143 terminated (SIGTERM).`;

export async function runShellCommand(argv: string[], io: CommandIo): Promise<number> {
  const dash = argv.indexOf('--');
  const { values, positionals } = parseArgs({
    args: dash < 0 ? argv : argv.slice(0, dash),
    options: { ...commandOptions('shell'), help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(SHELL_HELP);
    return 0;
  }
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  const runId = positionals[0];
  if (runId === undefined || positionals.length > 1)
    throw new IsobuildError(
      'usage',
      'shell needs one run id, and a command only after --: isobuild shell <runId> [-- COMMAND …].',
    );
  if (dash >= 0 && command.length === 0)
    throw new IsobuildError('usage', 'nothing follows --: name the command to run, or leave out --.');

  const env = processEnvironment();
  const store = loadLogStoreConfig(values, env);
  io.registerSecrets(storeSecrets(store.store));
  const { status, source } = await readRunRecord(runId, store, io.signal);
  if (!status.target)
    throw new IsobuildError(
      'usage',
      `run ${runId} does not record how it reached its build VM (${source} has no "target": it was built by an isobuild older than "isobuild shell"). Run the build again with this isobuild, or connect to the VM yourself.`,
    );
  const config = loadShellConfig(values, env, { runId, target: status.target });
  const secrets = [...configSecrets(config), ...storeSecrets(store.store)];
  io.registerSecrets(secrets);
  const path = resolveVmPath(config, { os: status.target.os, topology: status.target.topology });

  const session = sessionIo(io, secrets);
  try {
    return await runShell({
      path,
      command,
      readyTimeoutMs: config.readyTimeoutMs,
      io: session,
      ...(process.stdin.isTTY && process.stdin instanceof ReadStream
        ? { terminal: terminalOf(process.stdin, [process.stdout, process.stderr], env.TERM || 'xterm') }
        : {}),
      signal: io.signal,
    });
  } finally {
    session.stdout.flush();
    session.stderr.flush();
  }
}

/** The process's stdin, and stdout and stderr with the credentials masked (byte-exact otherwise). */
function sessionIo(io: CommandIo, secrets: readonly string[]): SessionIo {
  const stdout = maskedOutput((bytes) => process.stdout.write(bytes), secrets);
  const stderr = maskedOutput((bytes) => process.stderr.write(bytes), secrets);
  return {
    stdin: process.stdin,
    stdout,
    stderr,
    note: (text) => {
      stderr.flush();
      io.err(`isobuild shell: ${text}`);
    },
  };
}
