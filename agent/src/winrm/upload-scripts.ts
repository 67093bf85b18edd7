/**
 * The PowerShell an upload runs on the VM: the writer (reads base64 lines from its stdin, writes the bytes
 * at an offset of the destination with a FileStream, hashes them as they go and prints the SHA-256), the
 * removal of a partial file, and the parsing of the writer's report. Pure: no I/O.
 */

export interface WriterRange {
  /** Absolute Windows path of the destination. */
  readonly path: string;
  /** Where this writer's bytes start in the file. */
  readonly offset: number;
  /** How many bytes it must receive. */
  readonly length: number;
  /** The whole file's size: every writer sets it, so a longer file already there cannot keep a stale tail. */
  readonly fileLength: number;
}

/** The line the writer prints last, on success. */
export interface WriterReport {
  readonly bytes: number;
  readonly sha256: string;
}

/** Exit code of a writer that received a different number of bytes than it was told to expect. */
export const WRITER_SHORT_EXIT = 3;

/** A PowerShell single-quoted literal: every kind of single quote PowerShell knows is doubled. */
export function quotePowerShell(text: string): string {
  return `'${text.replace(/['\u2018\u2019\u201A\u201B]/g, '$&$&')}'`;
}

/** Refuses what no Windows path can hold, before it reaches a script. */
export function checkRemotePath(path: string): string | undefined {
  if (!/^[A-Za-z]:[\\/]/.test(path)) return `"${path}" is not an absolute Windows path (C:\\…)`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f"<>|?*]/.test(path.slice(2)))
    return `"${path}" has characters Windows paths cannot hold`;
  return undefined;
}

/**
 * The writer. Its stdin is a pipe of base64 lines; FileShare Delete lets a cleanup remove the file even
 * while a terminated writer's handle is still closing.
 */
export function writerScript(range: WriterRange): string {
  return [
    `$ErrorActionPreference = 'Stop'`,
    `$path = ${quotePowerShell(range.path)}`,
    `$offset = [long]${range.offset}`,
    `$expected = [long]${range.length}`,
    `$fileLength = [long]${range.fileLength}`,
    `$parent = [IO.Path]::GetDirectoryName($path)`,
    `if ($parent) { [void][IO.Directory]::CreateDirectory($parent) }`,
    `$file = New-Object IO.FileStream($path, [IO.FileMode]::OpenOrCreate, [IO.FileAccess]::Write, ([IO.FileShare]'ReadWrite, Delete'))`,
    `$sha = [Security.Cryptography.SHA256Cng]::new()`,
    `$written = [long]0`,
    `try {`,
    `  if ($file.Length -ne $fileLength) { $file.SetLength($fileLength) }`,
    `  [void]$file.Seek($offset, [IO.SeekOrigin]::Begin)`,
    `  $in = [Console]::In`,
    `  while ($null -ne ($line = $in.ReadLine())) {`,
    `    if ($line.Length -eq 0) { continue }`,
    `    $bytes = [Convert]::FromBase64String($line)`,
    `    $file.Write($bytes, 0, $bytes.Length)`,
    `    [void]$sha.TransformBlock($bytes, 0, $bytes.Length, $null, 0)`,
    `    $written += $bytes.Length`,
    `  }`,
    `  [void]$sha.TransformFinalBlock((New-Object byte[] 0), 0, 0)`,
    `} finally { $file.Dispose() }`,
    `$hex = [BitConverter]::ToString($sha.Hash).Replace('-', '').ToLowerInvariant()`,
    `Write-Output "isobuild-upload bytes=$written sha256=$hex"`,
    `if ($written -ne $expected) { exit ${WRITER_SHORT_EXIT} }`,
  ].join('\n');
}

/** Removes what an interrupted or failed upload left at `path` (nothing there is fine). */
export function removalScript(path: string): string {
  return [
    `$ErrorActionPreference = 'Stop'`,
    `$path = ${quotePowerShell(path)}`,
    `if (Test-Path -LiteralPath $path) { Remove-Item -LiteralPath $path -Force }`,
  ].join('\n');
}

/** The writer's last line, or undefined when it did not print one (it failed before the end). */
export function parseWriterReport(stdout: string): WriterReport | undefined {
  const match = /isobuild-upload bytes=(\d+) sha256=([0-9a-f]{64})\s*$/.exec(stdout);
  return match ? { bytes: Number(match[1]), sha256: match[2]! } : undefined;
}
