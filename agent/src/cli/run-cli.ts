/**
 * The isobuild command line: dispatches to a command, maps errors to documented exit codes
 * (docs/exit-codes.md) and makes sure no stack trace ever reaches a user for bad input.
 */
import { EXIT_CODES, isIsobuildError } from '../errors.js';
import type { CommandIo } from './command.js';
import { formatProblems, problemsToJson } from './output.js';
import { VERSION } from '../version.js';

interface CommandModule {
  readonly help: string;
  readonly run: (argv: string[], io: CommandIo) => Promise<number>;
}

// Commands load on demand: `validate` must not pay for what `render` imports (cold start is benchmarked).
const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  validate: {
    summary: 'check an AIB image template and summarise what it would build',
    load: async () => {
      const m = await import('./commands/validate.js');
      return { help: m.VALIDATE_HELP, run: m.runValidate };
    },
  },
  render: {
    summary: 'download artifacts and write Packer HCL for a template',
    load: async () => {
      const m = await import('./commands/render.js');
      return { help: m.RENDER_HELP, run: m.runRender };
    },
  },
  build: {
    summary: 'run a template on a build VM with Packer and report what happened',
    load: async () => {
      const m = await import('./commands/build.js');
      return { help: m.BUILD_HELP, run: m.runBuildCommand };
    },
  },
  logs: {
    summary: "print a run's status and log from the log store; --follow tails it live",
    load: async () => {
      const m = await import('./commands/logs.js');
      return { help: m.LOGS_HELP, run: m.runLogs };
    },
  },
  shell: {
    summary: "open a shell on a run's build VM, or run one command there (-- COMMAND)",
    load: async () => {
      const m = await import('./commands/shell.js');
      return { help: m.SHELL_HELP, run: m.runShellCommand };
    },
  },
  diff: {
    summary: "compare two runs' SBOMs and provenance: packages, steps, artifacts, versions",
    load: async () => {
      const m = await import('./commands/diff.js');
      return { help: m.DIFF_HELP, run: m.runDiff };
    },
  },
  doctor: {
    summary: 'check that Packer, plugins, the log store and the build VM are ready for a build',
    load: async () => {
      const m = await import('./commands/doctor.js');
      return { help: m.DOCTOR_HELP, run: m.runDoctor };
    },
  },
  testvm: {
    summary: 'start, list and stop disposable Linux test VMs (needs root)',
    load: async () => {
      const m = await import('./commands/testvm.js');
      return { help: m.TESTVM_HELP, run: m.runTestVm };
    },
  },
};

const USAGE = `isobuild ${VERSION}: builds VM images from Azure VM Image Builder templates with Packer.

Usage: isobuild <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}
  version    print the version

Run "isobuild <command> --help" for a command's options.
Exit codes: 0 ok, 1 the build failed, 2 invalid template or arguments, 3 artifact download or checksum
failure, 4 missing or unsuitable tool or store, 5 build VM unreachable or login refused, 70 internal error,
124 build timeout, 130 interrupted, 143 terminated. See docs/exit-codes.md and docs/errors.md.`;

export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic =
      name === 'help' && rest[0] !== undefined && Object.hasOwn(COMMANDS, rest[0])
        ? COMMANDS[rest[0]]
        : undefined;
    io.out(topic ? (await topic.load()).help : USAGE);
    return name === undefined ? EXIT_CODES.invalidInput : 0;
  }
  if (name === 'version' || name === '--version') {
    io.out(VERSION);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.err(
      `isobuild: unknown command "${name}". Commands: ${Object.keys(COMMANDS).join(', ')}, version. See isobuild --help.`,
    );
    return EXIT_CODES.invalidInput;
  }
  try {
    return await (await command.load()).run(rest, io);
  } catch (error) {
    return await reportError(error, name, io, rest.includes('--json'));
  }
}

async function reportError(error: unknown, command: string, io: CommandIo, json: boolean): Promise<number> {
  if (isIsobuildError(error)) {
    if (json) {
      const body = {
        ok: false,
        error: { code: error.code, message: error.message },
        problems: problemsToJson(error.problems),
      };
      io.out(JSON.stringify(body, null, 2));
    }
    io.err(`isobuild ${command}: ${error.message}`);
    if (error.problems.length > 0) io.err(formatProblems(error.problems));
    return error.exitCode;
  }
  // parseArgs reports unknown or malformed options with these codes.
  const code = (error as { code?: string }).code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    if (json) {
      io.out(
        JSON.stringify(
          { ok: false, error: { code: 'usage', message: (error as Error).message }, problems: [] },
          null,
          2,
        ),
      );
    }
    io.err(`isobuild ${command}: ${(error as Error).message}. See isobuild ${command} --help.`);
    return EXIT_CODES.invalidInput;
  }
  io.err(
    `isobuild ${command}: internal error: ${error instanceof Error ? error.message : String(error)}\n` +
      'This is a bug in isobuild; please report it with the command you ran.',
  );
  // Loaded here only: the settings table is not worth its start-up cost for commands that do not fail.
  const { debugEnabled } = await import('../settings/command-settings.js');
  const { processEnvironment } = await import('../settings/process-environment.js');
  if (debugEnabled(processEnvironment()) && error instanceof Error && error.stack) io.err(error.stack);
  return EXIT_CODES.internal;
}
