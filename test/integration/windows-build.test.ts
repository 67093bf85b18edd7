/**
 * Windows builds end to end: `isobuild build` runs real Packer 1.6.6 with its WinRM communicator against the
 * fake Windows VM, through isobuild's relay.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/build-cli.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';

let vm: FakeWindowsVm;
let work: string;
beforeAll(async () => {
  vm = await startFakeWindowsVm({
    receiveCapMs: 1_000,
    behaviour: {
      restartDownMs: 2_000,
      // The baseline's validation reads the registry and services, which only a real Windows can do: the
      // fake VM answers it as a correctly built VM would. Everything around it runs for real.
      scripts: [
        {
          match: /windows-baseline validation passed/,
          stdout: '[validate] windows-baseline validation passed\r\n',
          exitCode: 0,
        },
      ],
    },
  });
  work = await mkdtemp(join(tmpdir(), 'isobuild-windows-build-'));
});
afterAll(async () => {
  await vm?.close();
  await rm(work, { recursive: true, force: true });
});

function build(template: string, args: string[] = []) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'build',
      template,
      '--host',
      vm.host,
      '--port',
      String(vm.port),
      '--user',
      vm.user,
      '--work-dir',
      work,
      '--skip-deprovision',
      '--local-logs-only',
      '--rewrite-uri',
      `https://isobuildexamples.blob.core.windows.net/artifacts/=${resolve('images')}/`,
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ISOBUILD_WINRM_PASSWORD: vm.password } },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) =>
    child.once('close', (code) => done({ code, stdout, stderr })),
  );
}

describe('Windows builds against the fake Windows VM', () => {
  it('builds images/windows-baseline with Packer over WinRM-HTTPS', async () => {
    const run = await build(resolve('images/windows-baseline/template.json'), ['--run-id', 'win-baseline']);
    const log = await readFile(join(work, 'win-baseline', 'validation.log'), 'utf8').catch(() => '');
    expect(
      run.code,
      `${run.stderr}\n${log
        .split('\n')
        .filter((l) => l.includes('PACKER OUT'))
        .slice(-30)
        .join('\n')}`,
    ).toBe(0);
  }, 120_000);
});
