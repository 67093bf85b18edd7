/**
 * `isobuild doctor` against real parts: a test VM, an in-process Azurite, Debian's Packer 1.6.6. Everything
 * ready gives exit 0 and a table of ok rows; each missing part gives exit 4 and a row that says what to do.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { startFreezingForwarder } from '../helpers/freezing-forwarder.js';
import { runProcess } from '../helpers/run-process.js';
import { CLI } from '../helpers/build-cli.js';
import { imageTemplate, linuxTemplate, WINDOWS_BUILD_SOURCE } from '../helpers/template-builders.js';

const execFileAsync = promisify(execFile);
let vm: TestVm;
let azurite: AzuriteInstance;
let work: string;
beforeAll(async () => {
  vm = await startTestVm();
  azurite = await startAzurite();
  work = await mkdtemp(join(tmpdir(), 'isobuild-doctor-'));
});
afterAll(async () => {
  await stopTestVm(vm.id);
  await azurite.close();
  await rm(work, { recursive: true, force: true });
});

interface Row {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
}

async function doctor(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; rows: Row[]; stderr: string }> {
  const { code, stdout, stderr } = await runProcess(process.execPath, [CLI, 'doctor', '--json', ...args], {
    env: { ...process.env, ...env },
  });
  return { code, stderr, rows: stdout ? (JSON.parse(stdout) as { checks: Row[] }).checks : [] };
}

const sshArgs = (): string[] => ['--host', vm.address, '--user', vm.user, '--ssh-key-file', vm.keyFile];

describe('isobuild doctor', () => {
  it('reports every part ready: Packer, log store, clock, build VM', async () => {
    const template = join(work, 'linux.json');
    await writeFile(
      template,
      JSON.stringify(linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }] })),
    );

    const run = await doctor([
      template,
      ...sshArgs(),
      '--storage-connection-string',
      azurite.connectionString,
    ]);

    expect(run.code, run.stderr).toBe(0);
    expect(run.rows.map((r) => [r.check, r.status])).toEqual([
      ['template', 'ok'],
      ['Packer', 'ok'],
      ['log store', 'ok'],
      ['clock skew', 'ok'],
      ['relay', 'ok'],
      [`build VM ${vm.address}:22`, 'ok'],
    ]);
    expect(JSON.stringify(run.rows)).not.toContain(azurite.accountKey);
  });

  it('names what is missing: the plugin, the store, the proxy hop', async () => {
    const template = join(work, 'updates.json');
    await writeFile(
      template,
      JSON.stringify(
        imageTemplate({ customize: [{ type: 'WindowsUpdate', name: 'updates' }] }, WINDOWS_BUILD_SOURCE),
      ),
    );

    const run = await doctor(
      [
        template,
        ...sshArgs(),
        '--topology',
        'proxy',
        '--proxy-host',
        '127.0.0.9',
        '--storage-connection-string',
        azurite.connectionString.replace(/:\d+\//, ':9/'),
      ],
      { ISOBUILD_WINRM_PASSWORD: 'doctor-test-password' },
    );

    expect(run.code).toBe(4);
    const row = (check: string): Row | undefined => run.rows.find((r) => r.check === check);
    expect(row('plugin github.com/rgl/windows-update')).toMatchObject({ status: 'fail' });
    expect(row('plugin github.com/rgl/windows-update')?.detail).toContain('install Packer 1.7+');
    expect(row('log store')).toMatchObject({ status: 'fail' });
    expect(row('log store')?.detail).toContain('ECONNREFUSED');
    expect(row('proxy 127.0.0.9:60000')).toMatchObject({ status: 'fail' }); // a Windows template: WinRM's port
  });

  it('treats bad input as invalid input (exit 2) before checking anything', async () => {
    const broken = join(work, 'broken.json');
    await writeFile(broken, '{ "properties": ');

    const port = await doctor([...sshArgs(), '--port', '70000']);
    const template = await doctor([broken, ...sshArgs()]);
    const fifo = join(work, 'key-fifo');
    await execFileAsync('mkfifo', [fifo]);
    const key = await doctor(['--host', vm.address, '--ssh-key-file', fifo]);
    const noProxy = await doctor([...sshArgs(), '--topology', 'proxy']);

    expect(port.code, port.stderr).toBe(2);
    expect(port.stderr).toMatch(/--port.*70000/);
    expect(port.rows).toBeUndefined(); // no table: nothing was checked
    expect(template.code, template.stderr).toBe(2);
    expect(template.stderr).toContain(broken);
    expect(key.code, key.stderr).toBe(2);
    expect(key.stderr).toContain('it is a FIFO (named pipe), not a regular file');
    expect(noProxy.code, noProxy.stderr).toBe(2);
    expect(noProxy.stderr).toContain('--proxy-host');
  });

  it('fails the store check at the request deadline when the path to the store is frozen', async () => {
    const port = Number(/:(\d+)\//.exec(azurite.connectionString)?.[1]);
    const forwarder = await startFreezingForwarder(port);
    forwarder.freeze('blackhole');
    try {
      const started = Date.now();
      const run = await doctor([
        '--storage-connection-string',
        azurite.connectionString.replace(/:\d+\//, `:${forwarder.port}/`),
        '--storage-timeout',
        '1s',
      ]);

      expect(run.code, run.stderr).toBe(4);
      expect(run.rows.find((r) => r.check === 'log store')).toMatchObject({ status: 'fail' });
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await forwarder.close();
    }
  });
});
