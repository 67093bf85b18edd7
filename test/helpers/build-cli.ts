// Runs the built `isobuild build` against a test VM and returns its exit code, output and status.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import type { TestVm } from '../../agent/src/testvm/test-vm.js';

export const CLI = resolve('dist/agent/src/cli/main.js');
export const SUB = '11111111-2222-3333-4444-555555555555';

export interface BuildRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly status: RunStatus;
  readonly runDir: string;
}

const LINUX_SOURCE = {
  type: 'PlatformImage',
  publisher: 'Canonical',
  offer: 'ubuntu-24_04-lts',
  sku: 'server',
  version: 'latest',
};
export const WINDOWS_SOURCE = {
  type: 'PlatformImage',
  publisher: 'MicrosoftWindowsServer',
  offer: 'WindowsServer',
  sku: '2022-datacenter-azure-edition',
  version: 'latest',
};

/** An imageTemplates resource (API 2024-02-01) building from `source` with the given properties. */
export function imageTemplate(properties: Record<string, unknown>, source: object = LINUX_SOURCE): object {
  return {
    type: 'Microsoft.VirtualMachineImages/imageTemplates',
    apiVersion: '2024-02-01',
    location: 'westeurope',
    identity: {
      type: 'UserAssigned',
      userAssignedIdentities: {
        [`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib`]:
          {},
      },
    },
    properties: {
      source,
      distribute: [{ type: 'VHD', runOutputName: 'vhd' }],
      ...properties,
    },
  };
}

/** An imageTemplates resource (API 2024-02-01) for a Linux build with the given properties. */
export function linuxTemplate(properties: Record<string, unknown>): object {
  return imageTemplate(properties);
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

let counter = 0;
export async function runBuildCli(
  vm: TestVm,
  workDir: string,
  template: object | string,
  args: string[] = [],
  netns?: string,
): Promise<BuildRun> {
  const runId = `run-${process.pid}-${counter++}`;
  const templateFile = join(workDir, `${runId}.json`);
  await writeFile(templateFile, typeof template === 'string' ? template : JSON.stringify(template));
  return finished(startBuild(vm, workDir, templateFile, runId, args, netns), join(workDir, runId));
}

export async function finished(child: ChildProcess, runDir: string): Promise<BuildRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.once('close', done));
  const status = JSON.parse(
    await readFile(join(runDir, 'status.json'), 'utf8').catch(() => '{}'),
  ) as RunStatus;
  return { code, stdout, stderr, status, runDir };
}
