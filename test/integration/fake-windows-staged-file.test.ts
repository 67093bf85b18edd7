/**
 * A Windows File customizer's staged path end to end on the fake Windows VM: isobuild's uploadFile puts the
 * source into the run's staging directory, then a real Packer 1.6.6 powershell provisioner delivers the
 * staged-File step script (stagedFileScript's lines as its inline, copied to the VM by winrmcp and run as
 * Packer runs it) and the fake does what Windows would: the copy checked, copied into place under new
 * directories and the staged copy deleted, or the step failed by name when the copy is gone, changed on the
 * VM after the upload, or the destination is a directory. Then the removal of the staging directories
 * (removalScript) as isobuild's client runs it, and the fake's Send throttle.
 * The expected messages are written out here by hand, so the check does not lean on the script's wording.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { stagedFileScript } from '../../agent/src/render/staged-file.js';
import { removalScript } from '../../agent/src/run/phases/stage-files.js';
import { Secret } from '../../agent/src/secret.js';
import { WinRmClient } from '../../agent/src/winrm/client.js';
import type { WinRmTarget } from '../../agent/src/winrm/transport.js';
import { uploadFile } from '../../agent/src/winrm/upload.js';
import {
  startFakeWindowsVm,
  type FakeWindowsVm,
  type FakeWindowsVmOptions,
} from '../helpers/fake-windows-vm/server.js';
import { notPackersLast, shellsOpenedSince } from '../helpers/fake-windows-vm/shells-left.js';
import type { FakeVmBehaviour } from '../helpers/fake-windows-vm/commands.js';
import { winrmNullBuilder } from '../helpers/packer.js';
import { runProcess, type ProcessResult } from '../helpers/run-process.js';

const STAGED = 'C:\\Windows\\Temp\\isobuild-20240611-0930-ab12\\customize-03';
const STAGED_IN_SANDBOX = ['Windows', 'Temp', 'isobuild-20240611-0930-ab12', 'customize-03'];
const DESTINATION = "C:\\Program Files\\Contoso\\it's new\\agent.bin";
const DESTINATION_IN_SANDBOX = ['Program Files', 'Contoso', "it's new", 'agent.bin'];
const STEP = 'File "install agent"';
/** Over MIN_RANGE_BYTES twice: uploaded by two writers, hashed by the step in many reads. */
const SOURCE_BYTES = 40 * 1024 * 1024;

let work: string;
let source: string;
let sourceSha256: string;
const vms: FakeWindowsVm[] = [];

const sha256Of = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-staged-file-'));
  source = join(work, 'agent.bin');
  await writeFile(source, randomBytes(SOURCE_BYTES));
  sourceSha256 = await sha256Of(source);
});
afterAll(async () => {
  await Promise.all(vms.map((vm) => vm.close()));
  await rm(work, { recursive: true, force: true });
});

async function startVm(
  behaviour: Partial<FakeVmBehaviour> = {},
  options: FakeWindowsVmOptions = {},
): Promise<FakeWindowsVm> {
  const vm = await startFakeWindowsVm({ receiveCapMs: 500, behaviour, ...options });
  vms.push(vm);
  return vm;
}

function target(vm: FakeWindowsVm): WinRmTarget {
  return {
    host: vm.host,
    port: vm.port,
    servername: 'fake-windows-vm',
    tls: { kind: 'ca', ca: vm.certPem },
    auth: { kind: 'basic', user: vm.user, password: new Secret(vm.password) },
  };
}

const stepLines = (): string[] =>
  stagedFileScript({ stagedPath: STAGED, destination: DESTINATION, sha256: sourceSha256, label: STEP });

/**
 * A real Packer build on the VM: Packer's own file provisioner (winrmcp) first, as a template's earlier File
 * step would, then the staged-File step as a powershell provisioner.
 */
async function packerBuild(vm: FakeWindowsVm, name: string): Promise<ProcessResult & { copied: string }> {
  const dir = await mkdtemp(join(work, `${name}-`));
  const copied = join(dir, 'packer-file.txt');
  await writeFile(copied, `copied by winrmcp for ${name}\n`);
  const template = {
    builders: [winrmNullBuilder(vm)],
    provisioners: [
      { type: 'file', source: copied, destination: 'C:\\Windows\\Temp\\packer-file.txt' },
      { type: 'powershell', inline: stepLines() },
    ],
  };
  await writeFile(join(dir, 'build.json'), JSON.stringify(template));
  const result = await runProcess('packer', ['build', '-color=false', 'build.json'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      TMPDIR: dir,
      CHECKPOINT_DISABLE: '1',
      PACKER_CACHE_DIR: join(dir, 'cache'),
    },
  });
  return { ...result, copied };
}

const inSandbox = (vm: FakeWindowsVm, parts: readonly string[]): string => join(vm.sandbox, ...parts);

const GONE = `isobuild: File "install agent": the uploaded copy ${STAGED} is gone from the VM: an earlier step removed it (one that empties C:\\Windows\\Temp?). Run that step after this one, or build with --windows-upload packer.`;

/** Runs `script` through isobuild's own client, as the build's phases do. */
async function runOn(vm: FakeWindowsVm, script: string) {
  const client = new WinRmClient(target(vm));
  try {
    return await client.runPowerShell(script, { signal: AbortSignal.timeout(30_000) });
  } finally {
    client.close();
  }
}

// Each case has its own VM; Packer spends most of its ~9 s waiting, so the cases run side by side.
describe.concurrent('the staged-File step on the fake Windows VM', () => {
  it('copies the uploaded copy into place under new directories, next to a Packer file provisioner', async ({
    expect,
  }) => {
    const vm = await startVm();
    await uploadFile(target(vm), source, STAGED, { signal: AbortSignal.timeout(30_000) });
    const packer = await packerBuild(vm, 'in-place');

    expect(packer.code, packer.stdout + packer.stderr).toBe(0);
    expect(packer.stdout).toContain(
      `isobuild: File "install agent": C:\\Program Files\\Contoso\\it's new\\agent.bin in place (sha256 ${sourceSha256})`,
    );
    expect(await sha256Of(inSandbox(vm, DESTINATION_IN_SANDBOX))).toBe(sourceSha256);
    expect(existsSync(inSandbox(vm, STAGED_IN_SANDBOX))).toBe(false);
    // Packer's own upload path works against the same server, and its cleanup removed its temp files.
    expect(await readFile(inSandbox(vm, ['Windows', 'Temp', 'packer-file.txt']), 'utf8')).toBe(
      await readFile(packer.copied, 'utf8'),
    );
    const temp = await readdir(inSandbox(vm, ['Windows', 'Temp']));
    expect(temp.filter((name) => /^winrmcp-.*\.tmp$/i.test(name))).toEqual([]);
    // The upload's shells are gone; Packer may leave the shell of its last command.
    expect(notPackersLast(vm, await shellsOpenedSince(vm, new Set())), vm.describeOpenShells()).toEqual([]);
  });

  it('fails the step by name when the copy changed on the VM after the upload, and installs nothing', async ({
    expect,
  }) => {
    const vm = await startVm({ corruptStagedFiles: true });
    await uploadFile(target(vm), source, STAGED, { signal: AbortSignal.timeout(30_000) });
    const packer = await packerBuild(vm, 'changed');

    expect(packer.code).not.toBe(0);
    const changed = await sha256Of(inSandbox(vm, STAGED_IN_SANDBOX)); // left where it was, for a look
    expect(changed).not.toBe(sourceSha256);
    expect(packer.stdout + packer.stderr).toContain(
      `isobuild: File "install agent": the uploaded copy of C:\\Program Files\\Contoso\\it's new\\agent.bin has sha256 ${changed}, not ${sourceSha256}: it changed on the VM after the upload; build again.`,
    );
    expect(packer.stdout + packer.stderr).toContain('Script exited with non-zero exit status: 1');
    expect(existsSync(inSandbox(vm, ['Program Files']))).toBe(false);
  });

  it('fails the step by name when the staged copy is gone', async ({ expect }) => {
    const vm = await startVm();
    const packer = await packerBuild(vm, 'gone');

    expect(packer.code).not.toBe(0);
    expect(packer.stdout + packer.stderr).toContain(GONE);
    expect(packer.stdout + packer.stderr).toContain('Script exited with non-zero exit status: 1');
    expect(existsSync(inSandbox(vm, ['Program Files']))).toBe(false);
  });

  it('prints exactly what Windows PowerShell prints: one CRLF line on stdout, or on stderr with exit 1', async ({
    expect,
  }) => {
    const vm = await startVm();
    const client = new WinRmClient(target(vm));
    try {
      const script = stepLines().join('\r\n');
      const signal = AbortSignal.timeout(30_000);
      const gone = await client.runPowerShell(script, { signal });
      expect(gone).toMatchObject({ exitCode: 1, stdout: '' });
      expect(gone.stderr).toBe(`${GONE}\r\n`);

      // A file already at the destination is replaced ([IO.File]::Copy with overwrite).
      await mkdir(inSandbox(vm, DESTINATION_IN_SANDBOX.slice(0, -1)), { recursive: true });
      await writeFile(inSandbox(vm, DESTINATION_IN_SANDBOX), 'an older agent');
      await uploadFile(client, source, STAGED, { signal });
      const placed = await client.runPowerShell(script, { signal });
      expect(placed).toMatchObject({ exitCode: 0, stderr: '' });
      expect(placed.stdout).toBe(
        `isobuild: File "install agent": ${DESTINATION} in place (sha256 ${sourceSha256})\r\n`,
      );
      expect(await sha256Of(inSandbox(vm, DESTINATION_IN_SANDBOX))).toBe(sourceSha256);
      expect(existsSync(inSandbox(vm, STAGED_IN_SANDBOX))).toBe(false); // deleted after the copy
    } finally {
      client.close();
    }
  });

  it('fails the step by name, exit 1, when the destination is a directory, and leaves both alone', async ({
    expect,
  }) => {
    const vm = await startVm();
    const small = join(work, 'small.bin');
    await writeFile(small, 'a small source');
    const sha256 = await sha256Of(small);
    await uploadFile(target(vm), small, STAGED, { signal: AbortSignal.timeout(30_000) });
    // The destination exists as a directory (named differently in case: Windows paths are case-insensitive).
    await mkdir(inSandbox(vm, ['program files', 'contoso', "IT'S NEW", 'agent.bin']), { recursive: true });
    const lines = stagedFileScript({ stagedPath: STAGED, destination: DESTINATION, sha256, label: STEP });
    const result = await runOn(vm, lines.join('\r\n'));

    expect(result).toMatchObject({ exitCode: 1, stdout: '' });
    expect(result.stderr).toBe(
      `isobuild: File "install agent": the destination ${DESTINATION} is a directory; a File step's destination is the file's full path, such as ${DESTINATION}\\name.ext.\r\n`,
    );
    expect(await sha256Of(inSandbox(vm, STAGED_IN_SANDBOX))).toBe(sha256);
    expect(await readdir(inSandbox(vm, ['program files', 'contoso', "IT'S NEW", 'agent.bin']))).toEqual([]);
  });

  it('refuses a step whose message PowerShell cannot parse ("$step:" names no variable)', async ({
    expect,
  }) => {
    const vm = await startVm();
    const lines = stepLines().map((line) =>
      line.replace('"isobuild: $($step): the uploaded copy', '"isobuild: $step: the uploaded copy'),
    );
    const result = await runOn(vm, lines.join('\n'));

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(
      "Variable reference is not valid. ':' was not followed by a valid variable name character.",
    );
    expect(result.stderr).toContain('InvalidVariableReferenceWithDrive');
  });
});

describe.concurrent('the removal of the staging directories on the fake Windows VM', () => {
  const PATTERN = 'C:\\Windows\\Temp\\isobuild-*';

  /** Directories and files under the sandbox, created from Windows-style relative paths. */
  async function layout(vm: FakeWindowsVm, dirs: readonly string[], files: readonly string[]): Promise<void> {
    for (const dir of dirs) await mkdir(join(vm.sandbox, ...dir.split('\\')), { recursive: true });
    for (const file of files) await writeFile(join(vm.sandbox, ...file.split('\\')), `${file}\n`);
  }
  const there = (vm: FakeWindowsVm, path: string): boolean =>
    existsSync(join(vm.sandbox, ...path.split('\\')));

  it('removes every directory matching the pattern, contents and all, and nothing else', async ({
    expect,
  }) => {
    const vm = await startVm();
    await layout(
      vm,
      [
        'Windows\\Temp\\isobuild-20240611-0930-ab12\\deep\\deeper',
        'Windows\\Temp\\ISOBUILD-20230101-0000-old',
        'Windows\\Temp\\isobuild-[brackets]',
        'Windows\\Temp\\isobuildless',
        'Windows\\Temp\\other',
        'Program Files\\isobuild-keep',
      ],
      [
        'Windows\\Temp\\isobuild-20240611-0930-ab12\\customize-01',
        'Windows\\Temp\\isobuild-20240611-0930-ab12\\deep\\deeper\\customize-02',
        'Windows\\Temp\\isobuild-[brackets]\\customize-03',
        'Windows\\Temp\\isobuild-a-file',
        'Windows\\Temp\\other\\isobuild-inside',
      ],
    );
    const result = await runOn(vm, removalScript(PATTERN));

    expect(result).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(await readdir(join(vm.sandbox, 'Windows', 'Temp'))).toEqual(
      expect.arrayContaining(['isobuildless', 'other', 'isobuild-a-file']),
    );
    expect(there(vm, 'Windows\\Temp\\isobuild-20240611-0930-ab12')).toBe(false);
    expect(there(vm, 'Windows\\Temp\\ISOBUILD-20230101-0000-old')).toBe(false); // case-insensitive
    expect(there(vm, 'Windows\\Temp\\isobuild-[brackets]')).toBe(false); // removed by its literal path
    expect(statSync(join(vm.sandbox, 'Windows', 'Temp', 'isobuild-a-file')).isFile()).toBe(true); // -Directory
    expect(there(vm, 'Windows\\Temp\\other\\isobuild-inside')).toBe(true);
    expect(there(vm, 'Program Files\\isobuild-keep')).toBe(true);
    // Nothing to remove is fine.
    expect(await runOn(vm, removalScript(PATTERN))).toEqual({ exitCode: 0, stdout: '', stderr: '' });
  });

  it('reports a directory still there after a removal that went on past its errors', async ({ expect }) => {
    const locked = 'C:\\Windows\\Temp\\isobuild-b\\customize-01';
    const vm = await startVm({ lockedFiles: [locked] });
    const dirs = ['Windows\\Temp\\isobuild-a', 'Windows\\Temp\\isobuild-b', 'Windows\\Temp\\isobuild-c'];
    await layout(vm, dirs, [
      'Windows\\Temp\\isobuild-b\\customize-01',
      'Windows\\Temp\\isobuild-b\\customize-02',
    ]);
    // Each directory is tried whatever the others do (a killed run's open file must not keep this run's
    // directory in the image): the leftover check is what names the one left.
    const result = await runOn(vm, removalScript(PATTERN));

    expect(result.exitCode).toBe(1);
    expect(result.stderr.split('\n')[0]).toBe('C:\\Windows\\Temp\\isobuild-b is still there\r');
    expect(result.stderr).toContain(
      'Remove-Item : Cannot remove item C:\\Windows\\Temp\\isobuild-b: The directory is not empty.',
    );
    expect(dirs.map((dir) => there(vm, dir))).toEqual([false, true, false]);
    expect(await readdir(join(vm.sandbox, 'Windows', 'Temp', 'isobuild-b'))).toEqual(['customize-01']);
  });
});

describe('the fake Windows VM with a Send throttle', () => {
  it('answers each stdin Send only after sendDelayMs, so a few MB take seconds', async ({ expect }) => {
    const file = join(work, 'throttled.bin');
    await writeFile(file, randomBytes(2 * 1024 * 1024));
    const fast = await startVm();
    const slow = await startVm({}, { sendDelayMs: 400 });
    const signal = AbortSignal.timeout(30_000);
    const quick = await uploadFile(target(fast), file, STAGED, { signal });
    const throttled = await uploadFile(target(slow), file, STAGED, { signal });

    // 2 MiB is 2.7 MB of base64: at least 5 envelopes of under 500 KB, each answered 400 ms late.
    expect(throttled.elapsedMs).toBeGreaterThan(quick.elapsedMs + 5 * 400);
    expect(await sha256Of(inSandbox(slow, STAGED_IN_SANDBOX))).toBe(await sha256Of(file));
  });
});
