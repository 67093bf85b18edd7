/**
 * Windows File customizers at wire speed (decisions.md 37): before Packer runs, isobuild uploads the sources
 * render chose (1 MiB or more) to the run's staging directory on the VM with its own WinRM upload (stdin
 * streaming, the VM's sha256 checked), through the same relay and hop as Packer. The step itself, at its
 * position, copies the staged file into place (render/staged-file.ts). The staging directory is removed after
 * the customizers, and by the cleanup on failure or cancel.
 */
import { join } from 'node:path';
import { IsobuildError } from '../../errors.js';
import { seconds } from '../../format-seconds.js';
import { stagedFileName, windowsStagingDir } from '../../packer-contract.js';
import { ARTIFACTS_DIR } from '../../render/render-build.js';
import type { Step } from '../../template/model.js';
import { WinRmClient } from '../../winrm/client.js';
import type { WinRmTarget } from '../../winrm/transport.js';
import { winRmTarget } from '../../vm-path/vm-probe.js';
import { UploadError, uploadFile, type UploadProgress } from '../../winrm/upload.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';
import { endStep } from '../run-status.js';

/** Uploads that take longer than this get progress lines, this often. */
const PROGRESS_AFTER_MS = 3_000;
const PROGRESS_EVERY_MS = 5_000;
/** What removing the staging directory may take (a cleanup: its own budget). */
const REMOVE_BUDGET_MS = 15_000;

type FileStep = Extract<Step, { type: 'File' }>;

/** The run's File steps whose sources isobuild uploads: the ones render staged (large enough, not skipped). */
export function stagedSteps(run: RunContext): FileStep[] {
  const staged = new Set(run.stagedPaths);
  return run.template.customize.filter(
    (step): step is FileStep => step.type === 'File' && staged.has(step.path),
  );
}

export const stageFilesPhase: Phase<RunContext> = {
  name: 'stage files',
  skip: (run) => stagedSteps(run).length === 0,
  async run(run, signal) {
    for (const step of stagedSteps(run)) await stageOne(run, step, signal);
  },
  cleanup: (run, signal) => removeStagingDirs(run, signal),
};

/**
 * After the customizers, before validation and deprovisioning: nothing of the staging is left in the image.
 * Every staged file was copied into place by its step, so a directory that cannot be removed is a warning.
 */
export const unstagePhase: Phase<RunContext> = {
  name: 'remove staged files',
  // This run's staging, or (for a resumed run) what the run it continues may have left when it was killed.
  skip: (run) => !stagesFiles(run) || (stagedSteps(run).length === 0 && !run.plan?.resumedFrom),
  async run(run, signal) {
    try {
      await removeStagingDirs(run, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      const line = `warning: the staging directory ${windowsStagingDir(run.config.runId)} could not be removed from ${run.vmPath.label}: ${run.mask((error as Error).message)}. Every staged file was copied into place; remove the directory before capturing the image.`;
      run.options.report(line);
      run.logs.customization.write('ISOBUILD', line);
    }
  },
};

/** Whether this template's Windows File steps go through isobuild's upload (also when a resume skips them). */
function stagesFiles(run: RunContext): boolean {
  return (
    run.template.os === 'windows' &&
    run.config.windowsUpload === 'isobuild' &&
    !run.template.validate.sourceValidationOnly &&
    run.template.customize.some((step) => step.type === 'File')
  );
}

async function stageOne(run: RunContext, step: FileStep, signal: AbortSignal): Promise<void> {
  const artifact = run.artifacts?.find((a) => a.stepPath === step.path);
  if (!artifact) throw new Error(`${step.path} has no fetched source to upload`); // render fetched it
  const label = `File ${JSON.stringify(run.mask(step.name))}`;
  const remote = `${windowsStagingDir(run.config.runId)}\\${stagedFileName(step.index)}`;
  const megabytes = (artifact.bytes / 1024 ** 2).toFixed(1);
  const report = progressReporter(
    (line) => {
      run.options.report(line);
      run.logs.customization.write('ISOBUILD', line);
    },
    label,
    artifact.bytes,
  );
  try {
    const result = await uploadFile(
      vmTarget(run),
      join(run.packerDir, ARTIFACTS_DIR, artifact.file),
      remote,
      {
        signal,
        onProgress: report,
      },
    );
    const rate = artifact.bytes / 1024 ** 2 / Math.max(result.elapsedMs / 1000, 0.001);
    const line = `upload ${label} (${megabytes} MB in ${seconds(result.elapsedMs)}, ${rate.toFixed(1)} MB/s; sha256 checked on the VM)`;
    run.logs.customization.write('ISOBUILD', `${line}: staged as ${remote}`);
    run.progress.phase(
      `upload ${label}`,
      'ok',
      `(${megabytes} MB in ${seconds(result.elapsedMs)}, ${rate.toFixed(1)} MB/s; sha256 checked on the VM)`,
    );
  } catch (error) {
    if (signal.aborted) throw error;
    const status = run.status.customizers[step.index];
    if (status) {
      status.outcome = 'running';
      endStep(status, 'failed');
    }
    run.progress.phase(`upload ${label}`, 'failed');
    throw uploadFailure(run, step, label, error);
  }
}

/**
 * Why a File step's upload failed. A hop that broke (the relay saw it) is the VM being unreachable (exit 5,
 * naming the hop); anything else fails the step (exit 1).
 */
function uploadFailure(run: RunContext, step: FileStep, label: string, error: unknown): IsobuildError {
  const detail = run.mask(error instanceof Error ? error.message : String(error));
  const hop = run.connection?.relay.lastFailure();
  const broken = hop !== undefined && hop !== run.connection?.failureBeforePacker;
  const where = `${label} (${step.path}): its source could not be uploaded to ${run.vmPath.label}`;
  if (broken && error instanceof UploadError && error.kind === 'winrm')
    return new IsobuildError(
      'vmUnreachable',
      `${where}: ${run.mask(hop)} (${detail}). Nothing was installed and no customizer ran; check the network path and build again.`,
      { cause: error },
    );
  return new IsobuildError(
    'uploadFailed',
    `${where}: ${detail}. Nothing was installed and no customizer ran; fix what the message names and build again (--windows-upload packer uses Packer's file provisioner instead).`,
    { cause: error },
  );
}

/** Progress lines (bytes, rate, ETA) for an upload that takes more than a few seconds. */
export function progressReporter(
  report: (line: string) => void,
  label: string,
  totalBytes: number,
): (p: UploadProgress) => void {
  let nextAt = PROGRESS_AFTER_MS;
  return (progress) => {
    if (progress.elapsedMs < nextAt || progress.bytesDone >= totalBytes) return;
    nextAt = progress.elapsedMs + PROGRESS_EVERY_MS;
    const mb = (bytes: number): string => (bytes / 1024 ** 2).toFixed(1);
    const rate = progress.bytesPerSecond;
    const eta = rate > 0 ? (totalBytes - progress.bytesDone) / rate : Number.POSITIVE_INFINITY;
    const line = `upload ${label}: ${mb(progress.bytesDone)} of ${mb(totalBytes)} MB, ${mb(rate)} MB/s, about ${Number.isFinite(eta) ? seconds(eta * 1000) : 'unknown time'} left`;
    report(line);
  };
}

function vmTarget(run: RunContext): WinRmTarget {
  const { vmPath, connection } = run;
  if (vmPath.protocol !== 'WinRM' || !connection) throw new Error('staging needs a connected Windows VM');
  return winRmTarget(vmPath, connection.relay);
}

/**
 * Removes every isobuild staging directory on the VM (this run's, and any an earlier run left behind when it
 * was killed: a resumed run has a new id), and says so if one is still there. `signal` is the cleanup's budget.
 */
async function removeStagingDirs(run: RunContext, signal?: AbortSignal): Promise<void> {
  if (!run.connection || run.stagingRemoved) return;
  const client = new WinRmClient(vmTarget(run));
  const pattern = windowsStagingDir('*');
  const budget = AbortSignal.timeout(REMOVE_BUDGET_MS);
  try {
    const result = await client.runPowerShell(removalScript(pattern), {
      signal: signal ? AbortSignal.any([signal, budget]) : budget,
    });
    if (result.exitCode !== 0)
      // PowerShell's error record starts with its message; the lines after it say where in the script.
      throw new Error(
        result.stderr.split(/\r?\n/).find((line) => line.trim()) ??
          `the removal exited with ${result.exitCode}`,
      );
    run.stagingRemoved = true;
    run.logs.customization.write('ISOBUILD', `removed the staging directories ${pattern}`);
  } finally {
    client.close();
  }
}

/**
 * PowerShell that removes the directories matching `pattern` and fails, naming one, if any is left. A file
 * that cannot be deleted (a killed run's, still open) must not stop the removal of the others.
 */
export function removalScript(pattern: string): string {
  return [
    `$ErrorActionPreference = 'Stop'`,
    `Get-ChildItem -Path '${pattern}' -Directory -ErrorAction SilentlyContinue | ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction Continue }`,
    `$left = @(Get-ChildItem -Path '${pattern}' -Directory -ErrorAction SilentlyContinue)`,
    `if ($left.Count -gt 0) { [Console]::Error.WriteLine("$($left[0].FullName) is still there"); exit 1 }`,
  ].join('\n');
}
