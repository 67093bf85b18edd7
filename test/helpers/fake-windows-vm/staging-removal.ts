// isobuild's removal of its staging directories (removalScript in agent/src/run/phases/stage-files.ts) as the
// fake Windows VM runs it, recognised by its shape: `Get-ChildItem -Path '<pattern>' -Directory` resolves
// the wildcard pattern to the matching directories themselves (PowerShell's globbing, case-insensitive,
// hidden items aside), each is removed with `Remove-Item -LiteralPath … -Recurse -Force` as the FileSystem
// provider removes it (subdirectories first, then files, then the directory; a file that cannot be deleted
// is an error record, terminating under 'Stop'), and the second listing fails the script with its own
// message if a directory is left. Files a test marks as locked cannot be deleted, as on Windows a file that
// a process holds open without delete sharing.
import type { ChildProcess } from 'node:child_process';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { emulatedProcess, type EmulatedOutcome } from './finished-process.js';
import {
  DOUBLE_QUOTED,
  SINGLE_QUOTED,
  driveReferenceProblem,
  errorRecord,
  expand,
  unquoteSingle,
  type ErrorRecordText,
} from './powershell-text.js';

export interface StagingRemovalBehaviour {
  /**
   * Test only: files (Windows paths) a process on the VM holds open without delete sharing. Deleting one, or
   * a directory that holds one, fails as on Windows.
   */
  readonly lockedFiles?: readonly string[];
}

interface RemovalScript {
  readonly script: string;
  readonly removePattern: string;
  /** Remove-Item's own -ErrorAction, else $ErrorActionPreference (Continue unless the script sets it). */
  readonly errorAction: string;
  readonly leftPattern: string;
  readonly leftMessage: string;
  readonly leftExitCode: number;
}

/** A directory as Get-ChildItem returns it. */
interface Listed {
  readonly FullName: string;
  readonly Name: string;
  /** Where it is on this machine. */
  readonly local: string;
}

const REMOVE_EACH = new RegExp(
  String.raw`^Get-ChildItem -Path ${SINGLE_QUOTED} -Directory -ErrorAction SilentlyContinue \| ForEach-Object \{ Remove-Item -LiteralPath \$_\.FullName -Recurse -Force(?: -ErrorAction (\w+))? \}$`,
  'm',
);
const LIST_LEFT = new RegExp(
  String.raw`^\$left = @\(Get-ChildItem -Path ${SINGLE_QUOTED} -Directory -ErrorAction SilentlyContinue\)$`,
  'm',
);
const FAIL_IF_LEFT = new RegExp(
  String.raw`^if \(\$left\.Count -gt 0\) \{ \[Console\]::Error\.WriteLine\(${DOUBLE_QUOTED}\); exit (\d+) \}$`,
  'm',
);

/** The process for isobuild's staging removal, or undefined when `script` is something else. */
export function startStagingRemoval(
  script: string,
  mapPath: (windowsPath: string) => string,
  sandbox: string,
  behaviour: StagingRemovalBehaviour,
): ChildProcess | undefined {
  const text = script.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
  if (!/ForEach-Object \{ Remove-Item -LiteralPath \$_\.FullName\b/.test(text)) return undefined;
  const removal = parseRemoval(text);
  if (typeof removal === 'string')
    return emulatedProcess(() => Promise.resolve({ exitCode: 1, stderr: `fake Windows VM: ${removal}\r\n` }));
  const locked = new Set((behaviour.lockedFiles ?? []).map(mapPath));
  return emulatedProcess(() => runRemoval(removal, sandbox, locked));
}

function parseRemoval(script: string): RemovalScript | string {
  const each = REMOVE_EACH.exec(script);
  const left = LIST_LEFT.exec(script);
  const fail = FAIL_IF_LEFT.exec(script);
  if (!each || !left || !fail)
    return 'a staging removal whose listing, removal or leftover check is not the shape the fake knows';
  if (each.index > left.index || left.index > fail.index)
    return "a staging removal whose statements are out of the fake's order";
  // encodePowerShell puts `$ProgressPreference = …; ` before the script's first line.
  const stop = /(?:^|;\s*)\$ErrorActionPreference = 'Stop'\s*$/m.test(script.slice(0, each.index));
  return {
    script,
    removePattern: unquoteSingle(each[1]!),
    errorAction: (each[3] ?? (stop ? 'Stop' : 'Continue')).toLowerCase(),
    leftPattern: unquoteSingle(left[1]!),
    leftMessage: fail[1]!,
    leftExitCode: Number(fail[2]),
  };
}

async function runRemoval(
  removal: RemovalScript,
  sandbox: string,
  locked: ReadonlySet<string>,
): Promise<EmulatedOutcome> {
  const problem = driveReferenceProblem(removal.leftMessage);
  if (problem)
    return {
      exitCode: 1,
      stderr: errorRecord({
        message: problem,
        categoryInfo: 'ParserError: (:) [], ParseException',
        fullyQualifiedErrorId: 'InvalidVariableReferenceWithDrive',
      }),
    };
  const records: ErrorRecordText[] = [];
  const position = { script: removal.script, extent: 'Remove-Item -LiteralPath $_.FullName' };
  for (const directory of await listDirectories(removal.removePattern, sandbox)) {
    const errors = await removeTree(
      directory.local,
      directory.FullName,
      locked,
      removal.errorAction === 'stop',
    );
    if (['silentlycontinue', 'ignore'].includes(removal.errorAction)) continue;
    records.push(...errors.map((error) => ({ ...error, position })));
    // Under 'Stop' the first error record ends the script: exit 1, nothing after it runs.
    if (errors.length > 0 && removal.errorAction === 'stop')
      return { exitCode: 1, stderr: errorRecord(...records) };
  }
  // [Console]::Error.WriteLine goes out at once; the error records are serialized when PowerShell exits.
  const trailer = records.length > 0 ? errorRecord(...records) : '';
  const left = await listDirectories(removal.leftPattern, sandbox);
  if (left.length > 0)
    return {
      exitCode: removal.leftExitCode,
      stderr: `${expand(removal.leftMessage, { left: left.map(({ FullName, Name }) => ({ FullName, Name })) })}\r\n${trailer}`,
    };
  return { exitCode: records.length > 0 ? 1 : 0, stderr: trailer };
}

/**
 * `Get-ChildItem -Path <pattern> -Directory` without -Force: a pattern with wildcards resolves to the
 * matching directories themselves; one without lists the directory's subdirectories. Case-insensitive, in
 * NTFS's order; a path that is not there is nothing (the script silences that error).
 */
async function listDirectories(pattern: string, sandbox: string): Promise<Listed[]> {
  const drive = /^([A-Za-z]:)[\\/]/.exec(pattern)?.[1];
  if (!drive) return [];
  const parts = pattern
    .slice(drive.length)
    .split(/[\\/]+/)
    .filter(Boolean);
  let found: Listed[] = [{ FullName: drive, Name: `${drive}\\`, local: sandbox }];
  for (const part of parts) {
    const next: Listed[] = [];
    const match = hasWildcard(part) ? wildcard(part) : undefined;
    const literal = unescapeWildcard(part).toLowerCase();
    for (const parent of found)
      for (const name of await subdirectories(parent.local))
        if (match ? match.test(name) : name.toLowerCase() === literal)
          next.push({ FullName: `${parent.FullName}\\${name}`, Name: name, local: join(parent.local, name) });
    found = next;
  }
  if (parts.length > 0 && hasWildcard(parts[parts.length - 1]!)) return found;
  // No wildcard in the last part: the children of the directory it names.
  const children: Listed[] = [];
  for (const parent of found)
    for (const name of await subdirectories(parent.local))
      children.push({ FullName: `${parent.FullName}\\${name}`, Name: name, local: join(parent.local, name) });
  return children;
}

async function subdirectories(local: string): Promise<string[]> {
  const entries = await readdir(local, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort((a, b) => (a.toUpperCase() < b.toUpperCase() ? -1 : a.toUpperCase() > b.toUpperCase() ? 1 : 0));
}

function hasWildcard(part: string): boolean {
  return /(?<!`)[*?[]/.test(part);
}

function unescapeWildcard(part: string): string {
  return part.replace(/`([\s\S])/g, '$1');
}

/** PowerShell's wildcard: * any run, ? one character, [abc] and [a-z] sets, ` escapes; case-insensitive. */
function wildcard(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '`' && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]!);
    else if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) return /(?!)/; // an unclosed set is an invalid pattern: it matches nothing
      source += `[${pattern.slice(i + 1, end).replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`, 'is');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Remove-Item -Recurse -Force of one directory, as the FileSystem provider does it: each subdirectory
 * (recursively), then each file, then the directory itself. A locked file, and every directory above it,
 * cannot be deleted; under 'Stop' the first such error ends the removal.
 */
async function removeTree(
  local: string,
  fullName: string,
  locked: ReadonlySet<string>,
  stopAtFirst: boolean,
): Promise<Omit<ErrorRecordText, 'position'>[]> {
  const errors: Omit<ErrorRecordText, 'position'>[] = [];
  const entries = (await readdir(local, { withFileTypes: true }).catch(() => [])).sort((a, b) =>
    a.name.toUpperCase() < b.name.toUpperCase() ? -1 : 1,
  );
  for (const entry of entries.filter((e) => e.isDirectory())) {
    errors.push(
      ...(await removeTree(join(local, entry.name), `${fullName}\\${entry.name}`, locked, stopAtFirst)),
    );
    if (stopAtFirst && errors.length > 0) return errors;
  }
  for (const entry of entries.filter((e) => !e.isDirectory())) {
    const path = join(local, entry.name);
    const windowsPath = `${fullName}\\${entry.name}`;
    if (locked.has(path)) {
      errors.push(
        cannotRemove(
          windowsPath,
          `The process cannot access the file '${windowsPath}' because it is being used by another process.`,
          'FileInfo',
        ),
      );
      if (stopAtFirst) return errors;
    } else await rm(path, { force: true });
  }
  try {
    await rmdir(local);
  } catch {
    errors.push(cannotRemove(fullName, 'The directory is not empty.', 'DirectoryInfo'));
  }
  return errors;
}

function cannotRemove(path: string, reason: string, type: string): Omit<ErrorRecordText, 'position'> {
  return {
    message: `Remove-Item : Cannot remove item ${path}: ${reason}`,
    categoryInfo: `WriteError: (${path}:${type}) [Remove-Item], IOException`,
    fullyQualifiedErrorId: 'RemoveFileSystemItemIOError,Microsoft.PowerShell.Commands.RemoveItemCommand',
  };
}
