/**
 * Windows File customizers through isobuild's own upload (issue 16), end to end with real Packer 1.6.6 against
 * the fake Windows VM: a 100 MB and a 1 MB File step land byte-exact at their destinations (hash-checked on
 * the VM, then moved at the step's position), the staging directory is gone afterwards; a staged copy changed
 * on the VM fails its step by name; a cancel in the middle of an upload leaves no staging directory and no
 * shell; and Packer's own file provisioner (--windows-upload packer) still works against the same server.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import { CLI } from '../helpers/build-cli.js';
import { mapPath } from '../helpers/fake-windows-vm/commands.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';
import { notPackersLast, shellSnapshot, shellsOpenedSince } from '../helpers/fake-windows-vm/shells-left.js';
import { processResult } from '../helpers/run-process.js';
import { deployment, imageTemplate, WINDOWS_BUILD_SOURCE } from '../helpers/template-builders.js';

let vm: FakeWindowsVm;
let work: string;
let big: string;
let small: string;
const sha = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

/** A file of `bytes` random bytes, written in 1 MiB pieces. */
async function randomFile(path: string, bytes: number): Promise<string> {
  const handle = await open(path, 'w');
  for (let done = 0; done < bytes; done += 1024 ** 2)
    await handle.write(randomBytes(Math.min(1024 ** 2, bytes - done)));
  await handle.close();
  return path;
}

beforeAll(async () => {
  vm = await startFakeWindowsVm({ receiveCapMs: 1_000 });
  work = await mkdtemp(join(tmpdir(), 'isobuild-windows-upload-'));
  big = await randomFile(join(work, 'big.bin'), 100 * 1024 ** 2);
  small = await randomFile(join(work, 'small.bin'), 1024 ** 2);
}, 60_000);
afterAll(async () => {
  await vm?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const fileStep = (name: string, source: string, destination: string) => ({
  type: 'File',
  name,
  sourceUri: `file://${source}`,
  destination,
});

function startBuild(runId: string, customize: object[], args: string[] = [], target = vm) {
  const template = join(work, `${runId}.json`);
  return writeFile(template, JSON.stringify(imageTemplate({ customize }, WINDOWS_BUILD_SOURCE))).then(() =>
    spawn(
      process.execPath,
      [
        CLI,
        'build',
        template,
        ...['--host', target.host, '--port', String(target.port), '--user', target.user],
        ...['--work-dir', work, '--run-id', runId, '--skip-deprovision', '--local-logs-only', '--no-sbom'],
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ISOBUILD_WINRM_PASSWORD: target.password },
      },
    ),
  );
}

async function build(runId: string, customize: object[], args: string[] = [], target = vm) {
  const run = await processResult(await startBuild(runId, customize, args, target), { deadlineMs: 55_000 });
  const status = JSON.parse(await readFile(join(work, runId, 'status.json'), 'utf8')) as RunStatus;
  return { ...run, status };
}

/** Where a Windows path of the fake VM is on this machine. */
const onVm = (target: FakeWindowsVm, path: string): string =>
  mapPath(path, { sandbox: target.sandbox } as Parameters<typeof mapPath>[1]);
const stagingDir = (target: FakeWindowsVm, runId: string): string =>
  onVm(target, `C:\\Windows\\Temp\\isobuild-${runId}`);

describe('Windows File steps uploaded by isobuild', () => {
  it('puts a 100 MB and a 1 MB file byte-exact at their destinations, at their step positions', async () => {
    const before = shellSnapshot(vm);
    const run = await build('upload-big', [
      fileStep('big file', big, 'C:\\payload\\deep\\big.bin'),
      { type: 'PowerShell', name: 'between', inline: ['Write-Host between the two files'] },
      fileStep('small file', small, 'C:\\payload\\small.bin'),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(await sha(onVm(vm, 'C:\\payload\\deep\\big.bin'))).toBe(await sha(big));
    expect(await sha(onVm(vm, 'C:\\payload\\small.bin'))).toBe(await sha(small));
    // Uploaded before Packer ran, each checked on the VM; then moved at its own step, in order.
    expect(run.stderr).toMatch(
      /^upload File "big file" \(100\.0 MB in [\d.]+ ?s, [\d.]+ MB\/s; sha256 checked on the VM\) ✓$/m,
    );
    expect(run.stderr).toMatch(/^upload File "small file" \(1\.0 MB in /m);
    expect(run.stderr).toMatch(/^\[1\/3\] File "big file" .*✓$/m);
    expect(run.stderr).toMatch(/^\[3\/3\] File "small file" .*✓$/m);
    const log = await readFile(join(work, 'upload-big', 'customization.log'), 'utf8');
    expect(log).toMatch(
      /isobuild: File "big file": C:\\payload\\deep\\big\.bin in place \(sha256 [0-9a-f]{64}\)/,
    );
    // No 20 MB warning: the limit was Packer's WinRM file copy.
    expect(run.stderr).not.toMatch(/20 MB/);
    expect(existsSync(stagingDir(vm, 'upload-big'))).toBe(false);
    // isobuild's shells (the writers, the staging removal) are all gone; Packer may leave its last one.
    expect(notPackersLast(vm, await shellsOpenedSince(vm, before)), vm.describeOpenShells()).toEqual([]);
    expect(run.status.customizers.map((c) => c.outcome)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  }, 60_000);

  it('prints how far an upload of more than a few seconds is: bytes, rate, time left', async () => {
    // Each Send answered after 400 ms: 8 MB take several seconds even on loopback.
    const slow = await startFakeWindowsVm({ receiveCapMs: 1_000, sendDelayMs: 400 });
    try {
      const eight = await randomFile(join(work, 'eight.bin'), 8 * 1024 ** 2);
      const run = await build('upload-slow', [fileStep('slow file', eight, 'C:\\slow\\eight.bin')], [], slow);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(
        /^upload File "slow file": [\d.]+ of 8\.0 MB, [\d.]+ MB\/s, about [\d.]+s left$/m,
      );
      const log = await readFile(join(work, 'upload-slow', 'customization.log'), 'utf8');
      expect(log).toMatch(/upload File "slow file": [\d.]+ of 8\.0 MB/);
      expect(await sha(onVm(slow, 'C:\\slow\\eight.bin'))).toBe(await sha(eight));
    } finally {
      await slow.close();
    }
  }, 60_000);

  it('keeps a securestring in the destination out of the rendered files, quoted right for PowerShell', async () => {
    const secret = "Sec'ret‘Dir";
    const resource = imageTemplate(
      {
        customize: [
          {
            ...fileStep('secret place', small, ''),
            destination: "[concat('C:\\vault\\', parameters('token'), '\\small.bin')]",
          },
        ],
      },
      WINDOWS_BUILD_SOURCE,
    );
    const template = join(work, 'upload-secret.json');
    await writeFile(
      template,
      JSON.stringify(deployment([resource], { parameters: { token: { type: 'securestring' } } })),
    );
    const child = spawn(
      process.execPath,
      [
        CLI,
        'build',
        template,
        ...['--host', vm.host, '--port', String(vm.port), '--user', vm.user, '--param', `token=${secret}`],
        ...[
          '--work-dir',
          work,
          '--run-id',
          'upload-secret',
          '--skip-deprovision',
          '--local-logs-only',
          '--no-sbom',
        ],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ISOBUILD_WINRM_PASSWORD: vm.password } },
    );
    const run = await processResult(child, { deadlineMs: 55_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(await sha(onVm(vm, `C:\\vault\\${secret}\\small.bin`))).toBe(await sha(small));
    const hcl = await readFile(join(work, 'upload-secret', 'packer', 'customization.pkr.hcl'), 'utf8');
    // The whole destination is derived from the secret, so it is a secret too: all of it stays a variable.
    expect(hcl).toMatch(/\$destination = '\$\{regex_replace\(var\.secure_parameter_\d+, /);
    for (const form of [secret, secret.replace(/['‘]/g, '$&$&'), "Sec'ret", 'ret‘Dir'])
      expect(hcl.includes(form), form).toBe(false);
  }, 60_000);

  it('fails the File step by name when its staged copy changed on the VM after the upload', async () => {
    const corrupting = await startFakeWindowsVm({
      receiveCapMs: 1_000,
      behaviour: { corruptStagedFiles: true },
    });
    try {
      const run = await build(
        'upload-corrupt',
        [fileStep('agent', small, 'C:\\agent\\agent.bin')],
        [],
        corrupting,
      );
      expect(run.code, run.stderr).toBe(1);
      expect(run.status.customizers[0]?.outcome).toBe('failed');
      expect(run.stdout).toMatch(/File "agent"/);
      expect(run.stderr).toMatch(
        /isobuild: File "agent": the uploaded copy of C:\\agent\\agent\.bin has sha256 [0-9a-f]{64}, not [0-9a-f]{64}: it changed on the VM/,
      );
      expect(existsSync(onVm(corrupting, 'C:\\agent\\agent.bin'))).toBe(false);
      expect(existsSync(stagingDir(corrupting, 'upload-corrupt'))).toBe(false);
    } finally {
      await corrupting.close();
    }
  });

  it('a cancel in the middle of an upload leaves no staging directory and no shell', async () => {
    const before = shellSnapshot(vm);
    const child = await startBuild('upload-cancel', [fileStep('big file', big, 'C:\\payload\\cancel.bin')]);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Wait until the upload is under way: the staged copy exists on the VM and is still growing.
    const staged = join(stagingDir(vm, 'upload-cancel'), 'customize-00');
    const deadline = Date.now() + 30_000;
    while (!existsSync(staged) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(staged), stderr).toBe(true);
    child.kill('SIGTERM');
    const run = await processResult(child, { deadlineMs: 30_000 });
    expect(run.code, stderr).toBe(143);
    const status = JSON.parse(
      await readFile(join(work, 'upload-cancel', 'status.json'), 'utf8'),
    ) as RunStatus;
    expect(status.runState).toBe('Canceled');
    expect(existsSync(stagingDir(vm, 'upload-cancel'))).toBe(false);
    expect(existsSync(onVm(vm, 'C:\\payload\\cancel.bin'))).toBe(false);
    // Packer never ran: every shell opened since the start is isobuild's (a leaked writer would keep one).
    expect(await shellsOpenedSince(vm, before), `${vm.describeOpenShells()}\n${stderr}`).toEqual([]);
  }, 60_000);

  it("still runs Packer's own file provisioner against the same server: --windows-upload packer, and files under 1 MiB", async () => {
    const tiny = join(work, 'tiny.bin');
    await writeFile(tiny, randomBytes(48 * 1024));
    const run = await build(
      'upload-packer',
      [fileStep('tiny', tiny, 'C:\\packer\\tiny.bin')],
      ['--windows-upload', 'packer'],
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/^upload File/m);
    expect(await sha(onVm(vm, 'C:\\packer\\tiny.bin'))).toBe(await sha(tiny));
    // A file under 1 MiB keeps Packer's copy by default too: staging it would cost more than it saves.
    const small = await build('upload-tiny', [fileStep('tiny', tiny, 'C:\\packer\\tiny2.bin')]);
    expect(small.code, small.stderr).toBe(0);
    expect(small.stderr).not.toMatch(/^upload File/m);
    expect(await sha(onVm(vm, 'C:\\packer\\tiny2.bin'))).toBe(await sha(tiny));
  }, 60_000);
});
