/**
 * A Windows File customizer's staged path end to end on the fake Windows VM: isobuild's uploadFile puts the
 * source into the run's staging directory, then a real Packer 1.6.6 powershell provisioner delivers the
 * staged-File step script (stagedFileScript's lines as its inline, copied to the VM by winrmcp and run as
 * Packer runs it) and the fake does what Windows would: the copy checked, moved into place under new
 * directories, or the step failed by name when the copy is gone or changed on the VM after the upload.
 * The expected messages are written out here by hand, so the check does not lean on the script's wording.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { stagedFileScript } from '../../agent/src/render/staged-file.js';
import { Secret } from '../../agent/src/secret.js';
import { WinRmClient } from '../../agent/src/winrm/client.js';
import type { WinRmTarget } from '../../agent/src/winrm/transport.js';
import { uploadFile } from '../../agent/src/winrm/upload.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';
import type { FakeVmBehaviour } from '../helpers/fake-windows-vm/commands.js';
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

async function startVm(behaviour: Partial<FakeVmBehaviour> = {}): Promise<FakeWindowsVm> {
  const vm = await startFakeWindowsVm({ receiveCapMs: 500, behaviour });
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
    builders: [
      {
        type: 'null',
        communicator: 'winrm',
        winrm_host: vm.host,
        winrm_port: vm.port,
        winrm_username: vm.user,
        winrm_password: vm.password,
        winrm_use_ssl: true,
        winrm_insecure: true,
        winrm_timeout: '1m',
      },
    ],
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

// Each case has its own VM; Packer spends most of its ~9 s waiting, so the cases run side by side.
describe.concurrent('the staged-File step on the fake Windows VM', () => {
  it('moves the uploaded copy into place under new directories, next to a Packer file provisioner', async ({
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
    // Packer's own upload path works against the same server.
    expect(await readFile(inSandbox(vm, ['Windows', 'Temp', 'packer-file.txt']), 'utf8')).toBe(
      await readFile(packer.copied, 'utf8'),
    );
    expect(vm.openShells()).toBe(0);
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
    expect(packer.stdout + packer.stderr).toContain(
      'isobuild: File "install agent": the uploaded copy C:\\Windows\\Temp\\isobuild-20240611-0930-ab12\\customize-03 is gone from the VM (removed by an earlier step?); build again.',
    );
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
      expect(gone.stderr).toBe(
        `isobuild: File "install agent": the uploaded copy ${STAGED} is gone from the VM (removed by an earlier step?); build again.\r\n`,
      );

      await uploadFile(client, source, STAGED, { signal });
      const placed = await client.runPowerShell(script, { signal });
      expect(placed).toMatchObject({ exitCode: 0, stderr: '' });
      expect(placed.stdout).toBe(
        `isobuild: File "install agent": ${DESTINATION} in place (sha256 ${sourceSha256})\r\n`,
      );
      expect(await sha256Of(inSandbox(vm, DESTINATION_IN_SANDBOX))).toBe(sourceSha256);
    } finally {
      client.close();
    }
  });
});
