// isobuild's staged-File step script (agent/src/render/staged-file.ts) as the fake Windows VM runs it. The
// toy PowerShell cannot run Get-FileHash or Move-Item, so the script is recognised by its shape (never by
// importing the agent's builder) and its work done here as Windows would: the staged copy checked, hashed
// (streamed: sources reach 100 MB+), the destination's parent directories created, the file moved. What it
// prints comes from the script's own message strings, expanded as PowerShell expands them (a string that
// PowerShell cannot parse fails the step), so a wording change in the agent shows here as on Windows.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { emulatedProcess, type EmulatedOutcome } from './finished-process.js';

export interface StagedFileStepBehaviour {
  /**
   * Test only: flip one byte of the staged copy just before a staged-File step reads it, as a change on the
   * VM between the upload and the step would.
   */
  readonly corruptStagedFiles?: boolean;
}

interface StagedFileStep {
  /** The script's variables, as PowerShell holds them after the assignments. */
  readonly variables: Readonly<Record<'staged' | 'destination' | 'expected' | 'step', string>>;
  /** The expandable strings it prints: the staged copy is missing, has changed, or is in place. */
  readonly missing: string;
  readonly mismatch: string;
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
  if (!step) return undefined;
  return emulatedProcess((signal) => runStagedFileStep(step, mapPath, behaviour, signal));
}

// PowerShell's single-quoted literal: any of its four single quotes, doubled, stands for itself.
const SINGLE_QUOTED = String.raw`'((?:[^'\u2018-\u201B]|(['\u2018-\u201B])\2)*)'`;
// An expandable (double-quoted) string: "" and backtick escapes inside.
const DOUBLE_QUOTED = '"((?:[^"`]|`[\\s\\S]|"")*)"';

function parseStagedFileStep(script: string): StagedFileStep | undefined {
  const assigned = (name: string): string | undefined =>
    new RegExp(`^\\$${name} = ${SINGLE_QUOTED}$`, 'm')
      .exec(script)?.[1]
      ?.replace(/(['\u2018-\u201B])\1/g, '$1');
  const [staged, destination, expected, step] = ['staged', 'destination', 'expected', 'step'].map(assigned);
  if (staged === undefined || destination === undefined || expected === undefined || step === undefined)
    return undefined;
  if (!/Get-FileHash -LiteralPath \$staged -Algorithm SHA256/.test(script)) return undefined;
  if (!/Move-Item -LiteralPath \$staged -Destination \$destination\b/.test(script)) return undefined;
  const printed = (line: RegExp, call: string): string | undefined => {
    const text = script.split('\n').find((l) => line.test(l));
    return text === undefined ? undefined : new RegExp(`${call}\\(?${DOUBLE_QUOTED}`).exec(text)?.[1];
  };
  const missing = printed(
    /Test-Path -LiteralPath \$staged -PathType Leaf/,
    String.raw`\[Console\]::Error\.WriteLine`,
  );
  const mismatch = printed(/\$actual -ne \$expected/, String.raw`\[Console\]::Error\.WriteLine`);
  const done = printed(/^Write-Output "/, 'Write-Output ');
  if (missing === undefined || mismatch === undefined || done === undefined) return undefined;
  const parseError = [missing, mismatch, done].map(driveReferenceProblem).find(Boolean);
  return { variables: { staged, destination, expected, step }, missing, mismatch, done, parseError };
}

/**
 * In an expandable string, `$name:` followed by no name character is a drive-qualified variable with no
 * name: a parser error (`"$step: …"` must be written `"$($step): …"` or `"${step}: …"`).
 */
function driveReferenceProblem(text: string): string | undefined {
  for (const [token] of text.matchAll(/`[\s\S]|\$\w+:(?![\w?{])/g))
    if (!token.startsWith('`'))
      return `"${text}": Variable reference is not valid. ':' was not followed by a valid variable name character. Consider using \${} to delimit the name.`;
  return undefined;
}

/** What PowerShell makes of an expandable string: $name, ${name} and $($name) replaced, escapes resolved. */
function expand(text: string, variables: Readonly<Record<string, string>>): string {
  const escapes: Record<string, string> = {
    '0': '\0',
    a: '\x07',
    b: '\b',
    f: '\f',
    n: '\n',
    r: '\r',
    t: '\t',
    v: '\v',
  };
  return text.replace(
    /`([\s\S])|""|\$\(\$(\w+)\)|\$\{([^}]+)\}|\$(\w+)/g,
    (whole, escaped?: string, sub?: string, braced?: string, plain?: string) => {
      if (escaped !== undefined) return escapes[escaped] ?? escaped;
      if (whole === '""') return '"';
      // An unset variable expands to nothing (PowerShell without strict mode); names are case-insensitive.
      const name = (sub ?? braced ?? plain)!.toLowerCase();
      return Object.entries(variables).find(([key]) => key.toLowerCase() === name)?.[1] ?? '';
    },
  );
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
  if (step.parseError) return errorRecord(`ParserError: ${step.parseError}`);
  const staged = mapPath(variables.staged);
  // [Console]::Error.WriteLine: raw text with Windows' line end, not an error record.
  const fail = (message: string, extra: Record<string, string> = {}): EmulatedOutcome => ({
    exitCode: 1,
    stderr: `${expand(message, { ...variables, ...extra })}\r\n`,
  });
  if (!(await stat(staged).catch(() => undefined))?.isFile()) return fail(step.missing);
  if (behaviour.corruptStagedFiles) await flipOneByte(staged);

  const actual = await sha256Of(staged, signal);
  // -ne compares strings case-insensitively.
  if (actual !== variables.expected.toLowerCase()) return fail(step.mismatch, { actual });

  const destination = mapPath(variables.destination);
  const parent = dirname(destination);
  // The script creates the parent only when nothing is there; a file in the way fails Move-Item instead.
  if (!(await stat(parent).catch(() => undefined))) {
    try {
      await mkdir(parent, { recursive: true });
    } catch {
      return errorRecord(`New-Item : Could not create the directory for ${variables.destination}.`);
    }
  }
  // Move-Item onto an existing directory moves the file into it, under its own name.
  const target = (await stat(destination).catch(() => undefined))?.isDirectory()
    ? join(destination, basename(staged))
    : destination;
  signal.throwIfAborted();
  try {
    await rename(staged, target);
  } catch {
    return errorRecord('Move-Item : Could not find a part of the path.');
  }
  return { exitCode: 0, stdout: `${expand(step.done, variables)}\r\n` };
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

/** A terminating error (ErrorActionPreference Stop, or the parser's): an error record on stderr, exit 1. */
function errorRecord(message: string): EmulatedOutcome {
  const text = message.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return {
    exitCode: 1,
    stderr: `#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">${text}_x000D__x000A_</S></Objs>`,
  };
}
