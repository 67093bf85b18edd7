/**
 * Windows builds end to end: `isobuild build` runs real Packer 1.6.6 with its WinRM communicator against the
 * fake Windows VM, through isobuild's relay.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/build-cli.js';
import { PROXY_ADDRESS, startTopology } from '../helpers/netns-topology.js';
import { proxyArgs, startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';
import { processResult } from '../helpers/run-process.js';
import { imageTemplate, WINDOWS_BUILD_SOURCE } from '../helpers/template-builders.js';

/**
 * The baseline's validation reads the registry and services, which only a real Windows can do: the fake VM
 * answers it as a correctly built VM would. Everything around it runs for real.
 */
const BASELINE_VM = {
  restartDownMs: 2_000,
  scripts: [
    {
      match: /windows-baseline validation passed/,
      stdout: '[validate] windows-baseline validation passed\r\n',
      exitCode: 0,
    },
  ],
};

let vm: FakeWindowsVm;
let work: string;
beforeAll(async () => {
  vm = await startFakeWindowsVm({ receiveCapMs: 1_000, behaviour: BASELINE_VM });
  work = await mkdtemp(join(tmpdir(), 'isobuild-windows-build-'));
});
afterAll(async () => {
  await vm?.close();
  await rm(work, { recursive: true, force: true });
});

const HELLO = resolve('test/fixtures/windows/hello.ps1');

/** A Windows template (API 2024-02-01) with the given customizers and validators. */
async function windowsTemplate(
  name: string,
  customize: object[],
  inVMValidations: object[] = [],
): Promise<string> {
  const file = join(work, `${name}.json`);
  await writeFile(
    file,
    JSON.stringify(
      imageTemplate(
        {
          customize,
          ...(inVMValidations.length > 0 ? { validate: { inVMValidations } } : {}),
        },
        WINDOWS_BUILD_SOURCE,
      ),
    ),
  );
  return file;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

function build(
  template: string,
  args: string[] = [],
  env: Record<string, string> = {},
  target: { host: string; port: number; netns?: string } = { host: vm.host, port: vm.port },
) {
  const [command, prefix] = target.netns
    ? ['ip', ['netns', 'exec', target.netns, process.execPath]]
    : [process.execPath, []];
  const child = spawn(
    command,
    [
      ...prefix,
      CLI,
      'build',
      template,
      '--host',
      target.host,
      '--port',
      String(target.port),
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
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ISOBUILD_WINRM_PASSWORD: vm.password, ...env },
    },
  );
  return processResult(child);
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

  it('runs inline and downloaded PowerShell, elevated steps, File, WindowsRestart and validExitCodes', async () => {
    const hash = createHash('sha256')
      .update(await readFile(HELLO))
      .digest('hex');
    const template = await windowsTemplate(
      'steps',
      [
        { type: 'PowerShell', name: 'inline', inline: ['Write-Host "hello from inline"'] },
        { type: 'PowerShell', name: 'downloaded', scriptUri: `file://${HELLO}`, sha256Checksum: hash },
        { type: 'PowerShell', name: 'elevated', runElevated: true, inline: ['Write-Host "hello as admin"'] },
        {
          type: 'File',
          name: 'upload',
          sourceUri: `file://${HELLO}`,
          sha256Checksum: hash,
          destination: 'C:\\isobuild\\hello.ps1',
        },
        {
          type: 'PowerShell',
          name: 'reboot-pending',
          inline: ['Write-Host "needs a restart"', 'exit 3010'],
          validExitCodes: [0, 3010],
        },
        { type: 'WindowsRestart', name: 'restart', restartTimeout: '2m' },
      ],
      [{ type: 'PowerShell', name: 'check', inline: ['Write-Host "validated"'] }],
    );

    const run = await build(template, ['--run-id', 'win-steps']);

    expect(run.code, run.stderr).toBe(0);
    // Node warns when TLS SNI carries an IP address (DEP0123); isobuild sends SNI for host names only.
    expect(run.stderr).not.toMatch(/DeprecationWarning|\[DEP\d+\]/);
    const log = await readFile(join(work, 'win-steps', 'customization.log'), 'utf8');
    for (const line of [
      'hello from inline',
      'hello from a downloaded script',
      'hello as admin',
      'needs a restart',
      'restarted.',
    ])
      expect(log).toContain(line);
    expect(await readFile(join(vm.sandbox, 'isobuild', 'hello.ps1'), 'utf8')).toBe(
      await readFile(HELLO, 'utf8'),
    );
    expect(await readFile(join(work, 'win-steps', 'validation.log'), 'utf8')).toContain('validated');
  }, 120_000);

  it('fails on a PowerShell exit code outside validExitCodes, naming the step', async () => {
    const template = await windowsTemplate('fails', [
      { type: 'PowerShell', name: 'breaks', inline: ['Write-Host "about to fail"', 'exit 7'] },
    ]);

    const run = await build(template, ['--run-id', 'win-fails']);

    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /customizer 1 PowerShell "breaks" failed: Script exited with non-zero exit status: 7/,
    );
    expect(run.stderr).toContain('about to fail');
  }, 120_000);

  it('resumes a failed Windows build at the failed step, after the fix', async () => {
    const steps = (exitCode: number) => [
      { type: 'PowerShell', name: 'first', inline: ['Write-Host "first step ran"'] },
      { type: 'PowerShell', name: 'second', inline: ['Write-Host "second step ran"', `exit ${exitCode}`] },
    ];
    const failed = await build(await windowsTemplate('resume-1', steps(9)), ['--run-id', 'win-resume-1']);
    expect(failed.code).toBe(1);

    const resumed = await build(await windowsTemplate('resume-2', steps(0)), [
      '--run-id',
      'win-resume-2',
      '--resume',
      'win-resume-1',
    ]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('[1/2] PowerShell "first" skipped (done in win-resume-1)');
    const status = JSON.parse(await readFile(join(work, 'win-resume-2', 'status.json'), 'utf8')) as {
      resumedFrom: unknown;
      customizers: { outcome: string }[];
    };
    expect(status.resumedFrom).toEqual({ runId: 'win-resume-1', fromStep: 2, step: 'PowerShell "second"' });
    expect(status.customizers.map((c) => c.outcome)).toEqual(['skipped', 'succeeded']);
    const log = await readFile(join(work, 'win-resume-2', 'customization.log'), 'utf8');
    expect(log).toContain('second step ran');
    expect(log).not.toContain('first step ran');
  }, 120_000);

  it('builds through isobuild-proxy (60000 → 5986)', async () => {
    const proxy = await startProxyProcess(
      proxyArgs({ listen: '127.0.0.5', winrmPort: 60000, target: vm.host, targetWinrmPort: vm.port }),
    );
    try {
      const template = await windowsTemplate('via-proxy', [
        { type: 'PowerShell', name: 'inline', inline: ['Write-Host "hello through the proxy"'] },
      ]);
      const run = await build(template, [
        '--run-id',
        'win-proxy',
        '--topology',
        'proxy',
        '--proxy-host',
        '127.0.0.5',
      ]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain('proxy 127.0.0.5:60000 accepts WinRM');
      expect(proxy.logs()).toContain('"route":"winrm"');
    } finally {
      await proxy.stop();
    }
  }, 120_000);

  it('says why the VM cannot be reached: rejected login, certificate mismatch, refused', async () => {
    const template = await windowsTemplate('probe', [{ type: 'PowerShell', inline: ['Write-Host "never"'] }]);

    const wrongPassword = await build(template, ['--run-id', 'win-401'], {
      ISOBUILD_WINRM_PASSWORD: 'wrong',
    });
    expect(wrongPassword.code).toBe(5);
    expect(wrongPassword.stdout).toContain(
      `the build VM is not reachable over WinRM: build VM ${vm.host}:${vm.port} rejected the login for "${vm.user}" (NTLM)`,
    );

    const wrongPin = await build(template, ['--run-id', 'win-pin', '--winrm-cert-sha256', 'AB'.repeat(32)]);
    expect(wrongPin.code).toBe(5);
    expect(wrongPin.stdout).toMatch(
      /presented a certificate with SHA-256 fingerprint [0-9A-F]{64}, not the pinned/,
    );

    const closedPort = await freePort();
    const refused = await build(
      template,
      ['--run-id', 'win-refused', '--ready-timeout', '2s'],
      {},
      {
        host: vm.host,
        port: closedPort,
      },
    );
    expect(refused.code).toBe(5);
    expect(refused.stdout).toMatch(
      /the build VM is not reachable over WinRM \(gave up after \d+\.\ds, \d+ attempts?\)/,
    );
    expect(refused.stdout).toContain(`build VM ${vm.host}:${closedPort} refused the connection`);

    const rightPin = await build(template, [
      '--run-id',
      'win-pin-ok',
      '--winrm-cert-sha256',
      vm.fingerprint256,
      '--winrm-auth',
      'basic',
    ]);
    expect(rightPin.code, rightPin.stderr).toBe(0);
    expect(`${wrongPin.stderr}${rightPin.stderr}`).not.toMatch(/DeprecationWarning|\[DEP\d+\]/);
  }, 120_000);

  it('builds images/windows-baseline in the proxy topology of network namespaces: aci → isobuild-proxy :60000 → VM :5986', async () => {
    const topo = await startTopology('proxy');
    const socketPath = join(work, 'winrm.sock');
    const windowsVm = await startFakeWindowsVm({ socketPath, receiveCapMs: 1_000, behaviour: BASELINE_VM });
    // The fake answers at the VM's address, inside the VM's namespace only.
    const forwarder = spawn('ip', [
      'netns',
      'exec',
      topo.vm.name,
      'socat',
      `TCP-LISTEN:5986,bind=${topo.vm.address},fork,reuseaddr`,
      `UNIX-CONNECT:${socketPath}`,
    ]);
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await startProxyProcess(
        ['--listen', PROXY_ADDRESS, '--ssh-port', '0', '--health-port=-1', '--target', topo.vm.address],
        topo.proxy,
      );
      const run = await build(
        resolve('images/windows-baseline/template.json'),
        ['--run-id', 'win-topology', '--topology', 'proxy', '--proxy-host', PROXY_ADDRESS],
        { ISOBUILD_WINRM_PASSWORD: windowsVm.password },
        { host: topo.vm.address, port: 5986, netns: topo.aci },
      );

      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain(`proxy ${PROXY_ADDRESS}:60000 accepts WinRM`);
      expect(await readFile(join(work, 'win-topology', 'validation.log'), 'utf8')).toContain(
        'windows-baseline validation passed',
      );
      expect(proxy.logs()).toMatch(
        /"route":"winrm".*"source":"10\.232\.0\.2"|"source":"10\.232\.0\.2".*"route":"winrm"/,
      );
    } finally {
      await proxy?.stop();
      forwarder.kill('SIGKILL');
      await windowsVm.close();
      await topo.stop();
    }
  }, 180_000);
});
