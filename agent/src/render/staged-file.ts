/**
 * A Windows File customizer whose source isobuild uploaded itself (to the run's staging directory, before
 * Packer ran): at the step's own position a PowerShell step checks the staged copy's sha256, creates the
 * destination's parent directories as AIB does, and copies the file into place. So the step, its log lines,
 * its timing and its failure messages are where users expect them, and a staged copy changed on the VM in
 * between fails the step by name instead of being installed.
 *
 * Written for Windows PowerShell 5.1: the hash is SHA256Cng (SHA256Managed, which Get-FileHash uses there,
 * throws on FIPS-enforcing images); the file is copied, not moved, so it takes its new directory's
 * permissions as Packer's own copy does (a move keeps C:\Windows\Temp's); -LiteralPath and .NET calls keep
 * [ ] in paths from being read as wildcards.
 */

export interface StagedFile {
  /** The staged copy on the VM (absolute Windows path). */
  readonly stagedPath: string;
  readonly destination: string;
  /** The source's sha256, as downloaded and uploaded (lower case hex). */
  readonly sha256: string;
  /** How messages name the step: `File "install agent"`. */
  readonly label: string;
}

export interface StagedFileScriptOptions {
  /** The destination as a PowerShell literal already (render passes one that keeps secrets out of files). */
  readonly destinationLiteral?: string;
}

/** A PowerShell single-quoted literal: each of PowerShell's single quotes, doubled, stands for itself. */
function quoted(text: string): string {
  return `'${text.replace(/['\u2018\u2019\u201A\u201B]/g, '$&$&')}'`;
}

/** The step's script, one PowerShell statement per line (the `inline` of a powershell provisioner). */
export function stagedFileScript(file: StagedFile, options: StagedFileScriptOptions = {}): string[] {
  const fail = (message: string): string =>
    `{ [Console]::Error.WriteLine("isobuild: $($step): ${message}"); exit 1 }`;
  return [
    `$ErrorActionPreference = 'Stop'`,
    `$staged = ${quoted(file.stagedPath)}`,
    `$destination = ${options.destinationLiteral ?? quoted(file.destination)}`,
    `$expected = ${quoted(file.sha256.toLowerCase())}`,
    `$step = ${quoted(file.label)}`,
    `if (-not (Test-Path -LiteralPath $staged -PathType Leaf)) ${fail('the uploaded copy $staged is gone from the VM: an earlier step removed it (one that empties C:\\Windows\\Temp?). Run that step after this one, or build with --windows-upload packer.')}`,
    `if (Test-Path -LiteralPath $destination -PathType Container) ${fail("the destination $destination is a directory; a File step's destination is the file's full path, such as $destination\\name.ext.")}`,
    `$stream = [IO.File]::OpenRead($staged)`,
    `try { $actual = ([BitConverter]::ToString([Security.Cryptography.SHA256Cng]::new().ComputeHash($stream)) -replace '-', '').ToLowerInvariant() } finally { $stream.Dispose() }`,
    `if ($actual -ne $expected) ${fail('the uploaded copy of $destination has sha256 $($actual), not $($expected): it changed on the VM after the upload; build again.')}`,
    `$parent = [IO.Path]::GetDirectoryName($destination)`,
    `if ($parent) { [void][IO.Directory]::CreateDirectory($parent) }`,
    `[IO.File]::Copy($staged, $destination, $true)`,
    `Remove-Item -LiteralPath $staged -Force`,
    `Write-Output "isobuild: $($step): $destination in place (sha256 $($expected))"`,
  ];
}
