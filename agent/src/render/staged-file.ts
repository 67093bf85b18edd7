/**
 * A Windows File customizer whose source isobuild uploaded itself (to the run's staging directory, before
 * Packer ran): at the step's own position a PowerShell step checks the staged copy's sha256, creates the
 * destination's parent directories as AIB does, and moves the file into place. So the step, its log lines,
 * its timing and its failure messages are where users expect them, and a staged copy changed on the VM in
 * between fails the step by name instead of being installed.
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

/** A PowerShell single-quoted literal: each of PowerShell's single quotes, doubled, stands for itself. */
function quoted(text: string): string {
  return `'${text.replace(/['\u2018\u2019\u201A\u201B]/g, '$&$&')}'`;
}

/** The step's script, one PowerShell statement per line (the `inline` of a powershell provisioner). */
export function stagedFileScript(file: StagedFile): string[] {
  return [
    `$ErrorActionPreference = 'Stop'`,
    `$staged = ${quoted(file.stagedPath)}`,
    `$destination = ${quoted(file.destination)}`,
    `$expected = ${quoted(file.sha256.toLowerCase())}`,
    `$step = ${quoted(file.label)}`,
    `if (-not (Test-Path -LiteralPath $staged -PathType Leaf)) { [Console]::Error.WriteLine("isobuild: $($step): the uploaded copy $staged is gone from the VM (removed by an earlier step?); build again."); exit 1 }`,
    `$actual = (Get-FileHash -LiteralPath $staged -Algorithm SHA256).Hash.ToLowerInvariant()`,
    `if ($actual -ne $expected) { [Console]::Error.WriteLine("isobuild: $($step): the uploaded copy of $destination has sha256 $($actual), not $($expected): it changed on the VM after the upload; build again."); exit 1 }`,
    `$parent = Split-Path -Parent $destination`,
    `if ($parent -and -not (Test-Path -LiteralPath $parent)) { [void](New-Item -ItemType Directory -Force -Path $parent) }`,
    `Move-Item -LiteralPath $staged -Destination $destination -Force`,
    `Write-Output "isobuild: $($step): $destination in place (sha256 $expected)"`,
  ];
}
