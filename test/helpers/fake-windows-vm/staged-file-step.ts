// isobuild's staged-File step script (agent/src/render/staged-file.ts) as the fake Windows VM runs it. The
// toy PowerShell cannot run .NET calls, so the script is recognised by its shape (never by importing the
// agent's builder) and its work done here as Windows would, in the script's order: the staged copy checked,
// a directory at the destination refused, the copy hashed (streamed: sources reach 100 MB+), the
// destination's parent directories created, the file copied over whatever is there, the staged copy deleted.
// What it prints comes from the script's own strings (powershell-text.ts), with the script's exit codes.
// A script that looks like the step but has a statement the fake does not know fails the step, naming it,
// so a change in the agent cannot pass here by being skipped.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { emulatedProcess, type EmulatedOutcome } from './finished-process.js';
import {
  DOUBLE_QUOTED,
  SINGLE_QUOTED,
  driveReferenceProblem,
  errorRecord,
  expand,
  unquoteSingle,
} from './powershell-text.js';

export interface StagedFileStepBehaviour {
  /**
   * Test only: flip one byte of the staged copy just before a staged-File step reads it, as a change on the
   * VM between the upload and the step would.
   */
  readonly corruptStagedFiles?: boolean;
}

/** A check that fails the step: the message it writes to stderr and its exit code. */
interface Failure {
  readonly message: string;
  readonly exitCode: number;
}

interface StagedFileStep {
  readonly script: string;
  /** The script's variables, as PowerShell holds them after the assignments. */
  readonly variables: Readonly<Record<'staged' | 'destination' | 'expected' | 'step', string>>;
  /** The staged copy is missing, the destination is a directory, the copy has changed. */
  readonly missing: Failure;
  readonly directory: Failure;
  readonly mismatch: Failure;
  /** The expandable string it prints when the file is in place. */
  readonly done: string;
  /** Where PowerShell's parser would refuse the script (it parses the whole file before running a line). */
  readonly parseError?: string;
}

/** The process for a staged-File step script, or undefined when `script` is something else. */
export function startStagedFileStep(
  script: string,
  mapPath: (windowsPath: string) => string,
  behaviour: StagedFileStepBehaviour,
): ChildProcess | undefined {
  const step = parseStagedFileStep(script.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n'));
  if (step === undefined) return undefined;
  if (typeof step === 'string')
    return emulatedProcess(() => Promise.resolve({ exitCode: 1, stderr: `fake Windows VM: ${step}\r\n` }));
  return emulatedProcess((signal) => runStagedFileStep(step, mapPath, behaviour, signal));
}

const CHECK = String.raw`\{ \[Console\]::Error\.WriteLine\(${DOUBLE_QUOTED}\); exit (\d+) \}$`;

/** The statements the fake emulates, in the order the script must hold them. */
const STATEMENTS = {
  missing: new RegExp(String.raw`^if \(-not \(Test-Path -LiteralPath \$staged -PathType Leaf\)\) ${CHECK}`),
  directory: new RegExp(
    String.raw`^if \(Test-Path -LiteralPath \$destination -PathType Container\) ${CHECK}`,
  ),
  open: /^\$stream = \[IO\.File\]::OpenRead\(\$staged\)$/,
  hash: /^try \{ \$actual = \(\[BitConverter\]::ToString\(\[Security\.Cryptography\.SHA256Cng\]::new\(\)\.ComputeHash\(\$stream\)\) -replace '-', ''\)\.ToLowerInvariant\(\) \} finally \{ \$stream\.Dispose\(\) \}$/,
  mismatch: new RegExp(String.raw`^if \(\$actual -ne \$expected\) ${CHECK}`),
  parent: /^\$parent = \[IO\.Path\]::GetDirectoryName\(\$destination\)$/,
  createParent: /^if \(\$parent\) \{ \[void\]\[IO\.Directory\]::CreateDirectory\(\$parent\) \}$/,
  copy: /^\[IO\.File\]::Copy\(\$staged, \$destination, \$true\)$/,
  removeStaged: /^Remove-Item -LiteralPath \$staged -Force$/,
  done: new RegExp(`^Write-Output ${DOUBLE_QUOTED}$`),
} as const;

/** The step, undefined for another script, or what the fake cannot emulate in a script that looks like it. */
function parseStagedFileStep(script: string): StagedFileStep | string | undefined {
  const assigned = (name: string): string | undefined => {
    const inside = new RegExp(`^\\$${name} = ${SINGLE_QUOTED}$`, 'm').exec(script)?.[1];
    return inside === undefined ? undefined : unquoteSingle(inside);
  };
  const [staged, destination, expected, step] = ['staged', 'destination', 'expected', 'step'].map(assigned);
  if (staged === undefined || expected === undefined) return undefined;
  if (destination === undefined || step === undefined)
    return 'a staged-File step whose $destination or $step is not a single-quoted literal';
  // Run by isobuild's client, the first line starts with `$ProgressPreference = …; ` (encodePowerShell).
  if (!/(?:^|;\s*)\$ErrorActionPreference = 'Stop'$/m.test(script))
    return "a staged-File step without $ErrorActionPreference = 'Stop'";
  const lines = script.split('\n');
  const found: Partial<Record<keyof typeof STATEMENTS, RegExpExecArray>> = {};
  let last = -1;
  for (const [name, shape] of Object.entries(STATEMENTS) as [keyof typeof STATEMENTS, RegExp][]) {
    const index = lines.findIndex((line) => shape.test(line));
    if (index < 0) return `a staged-File step without the statement the fake knows as "${name}"`;
    if (index < last) return `a staged-File step whose "${name}" statement is out of the fake's order`;
    last = index;
    found[name] = shape.exec(lines[index]!)!;
  }
  const failure = (match: RegExpExecArray): Failure => ({ message: match[1]!, exitCode: Number(match[2]) });
  const [missing, directory, mismatch] = [found.missing!, found.directory!, found.mismatch!].map(failure) as [
    Failure,
    Failure,
    Failure,
  ];
  const done = found.done![1]!;
  const parseError = [missing.message, directory.message, mismatch.message, done]
    .map(driveReferenceProblem)
    .find(Boolean);
  return {
    script,
    variables: { staged, destination, expected, step },
    missing,
    directory,
    mismatch,
    done,
    ...(parseError ? { parseError } : {}),
  };
}

async function runStagedFileStep(
  step: StagedFileStep,
  mapPath: (windowsPath: string) => string,
  behaviour: StagedFileStepBehaviour,
  signal: AbortSignal,
): Promise<EmulatedOutcome> {
  const { variables } = step;
  // Nothing of the script runs; Windows reports the ParserError (under Packer's `&'x.ps1'; exit
  // $LastExitCode` wrapper perhaps with exit 0: the fake fails the step instead, so no test can miss it).
  if (step.parseError)
    return {
      exitCode: 1,
      stderr: errorRecord({
        message: step.parseError,
        categoryInfo: 'ParserError: (:) [], ParseException',
        fullyQualifiedErrorId: 'InvalidVariableReferenceWithDrive',
      }),
    };
  // [Console]::Error.WriteLine: raw text with Windows' line end, not an error record.
  const fail = (failure: Failure, extra: Record<string, string> = {}): EmulatedOutcome => ({
    exitCode: failure.exitCode,
    stderr: `${expand(failure.message, { ...variables, ...extra })}\r\n`,
  });
  const staged = mapPath(variables.staged);
  const destination = mapPath(variables.destination);
  const kind = async (path: string) => await stat(path).catch(() => undefined);
  if (!(await kind(staged))?.isFile()) return fail(step.missing);
  if ((await kind(destination))?.isDirectory()) return fail(step.directory);
  if (behaviour.corruptStagedFiles) await flipOneByte(staged);

  const actual = await sha256Of(staged, signal);
  // -ne compares strings case-insensitively.
  if (actual !== variables.expected.toLowerCase()) return fail(step.mismatch, { actual });

  const parent = dirname(destination);
  try {
    await mkdir(parent, { recursive: true });
  } catch {
    return methodFailure(
      step,
      '[IO.Directory]::CreateDirectory',
      1,
      `Cannot create "${windowsParent(variables.destination)}" because a file or directory with the same name already exists.`,
    );
  }
  signal.throwIfAborted();
  try {
    await copyFile(staged, destination);
  } catch (error) {
    const denied = (error as NodeJS.ErrnoException).code === 'EACCES';
    const message = denied
      ? `Access to the path '${variables.destination}' is denied.`
      : `Could not find a part of the path '${variables.destination}'.`;
    return methodFailure(step, '[IO.File]::Copy', 3, message);
  }
  await rm(staged, { force: true });
  return { exitCode: 0, stdout: `${expand(step.done, variables)}\r\n` };
}

/** [IO.Path]::GetDirectoryName of a Windows path, for messages. */
function windowsParent(path: string): string {
  return path.replace(/[\\/][^\\/]*$/, '');
}

/** A .NET method (`[IO.File]::Copy`) that threw: a terminating error record, exit 1. */
function methodFailure(step: StagedFileStep, call: string, args: number, message: string): EmulatedOutcome {
  const method = call.replace(/^.*::/, '');
  return {
    exitCode: 1,
    stderr: errorRecord({
      message: `Exception calling "${method}" with "${args}" argument(s): "${message}"`,
      position: { script: step.script, extent: `${call}(` },
      categoryInfo: 'NotSpecified: (:) [], MethodInvocationException',
      fullyQualifiedErrorId: 'IOException',
    }),
  };
}

async function sha256Of(file: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal, highWaterMark: 1 << 20 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The middle byte inverted (an empty copy gains one), so the copy's sha256 is no longer the upload's. */
async function flipOneByte(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    const byte = Buffer.alloc(1);
    const at = Math.floor(size / 2);
    if (size > 0) await handle.read(byte, 0, 1, at);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}
