// Runs the built `isobuild build` against a test VM and returns its exit code, output and status.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import type { TestVm } from '../../agent/src/testvm/test-vm.js';
import { processResult } from './run-process.js';

export const CLI = resolve('dist/agent/src/cli/main.js');

export interface BuildRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly status: RunStatus;
  readonly runDir: string;
}

export function startBuild(
  vm: TestVm,
  workDir: string,
  templateFile: string,
  runId: string,
  args: string[] = [],
  netns?: string,
): ChildProcess {
  // In a topology test, isobuild runs inside the "aci" network namespace.
  const [command, prefix] = netns
    ? ['ip', ['netns', 'exec', netns, process.execPath]]
    : [process.execPath, []];
  return spawn(
    command,
    [
      ...prefix,
      CLI,
      'build',
      templateFile,
      '--host',
      vm.address,
      '--user',
      vm.user,
      '--ssh-key-file',
      vm.keyFile,
      '--work-dir',
      workDir,
      '--run-id',
      runId,
      '--skip-deprovision',
      '--ready-timeout',
      '10s',
      '--kill-grace',
      '20s',
      // Builds keep their logs local unless the test is about the log store (any --storage-* flag).
      ...(args.some((a) => a.startsWith('--storage-')) ? [] : ['--local-logs-only']),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

/** Writes `template` (as JSON unless it is text) to `<workDir>/<runId>.json`; returns that path. */
export async function writeTemplate(
  workDir: string,
  runId: string,
  template: object | string,
): Promise<string> {
  const templateFile = join(workDir, `${runId}.json`);
  await writeFile(templateFile, typeof template === 'string' ? template : JSON.stringify(template));
  return templateFile;
}

let counter = 0;
export async function runBuildCli(
  vm: TestVm,
  workDir: string,
  template: object | string,
  args: string[] = [],
  netns?: string,
): Promise<BuildRun> {
  const runId = `run-${process.pid}-${counter++}`;
  const templateFile = await writeTemplate(workDir, runId, template);
  return finished(startBuild(vm, workDir, templateFile, runId, args, netns), join(workDir, runId));
}

export async function finished(child: ChildProcess, runDir: string): Promise<BuildRun> {
  const { code, stdout, stderr } = await processResult(child);
  const status = JSON.parse(
    await readFile(join(runDir, 'status.json'), 'utf8').catch(() => '{}'),
  ) as RunStatus;
  return { code, stdout, stderr, status, runDir };
}
