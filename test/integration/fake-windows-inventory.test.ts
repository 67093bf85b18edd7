/**
 * The fake Windows VM answers isobuild's software-inventory script as Windows Server 2022 would, from a
 * machine state that customizers change: checked with isobuild's WinRM client and Debian's python3-winrm,
 * with a real Packer 1.6.6 powershell provisioner and with -EncodedCommand scripts. The expected JSON is
 * written out here by hand (not parsed by isobuild's code), so the check stands on its own.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Secret } from '../../agent/src/secret.js';
import {
  parseWindowsInventory,
  WINDOWS_INVENTORY_MARKER,
  WINDOWS_INVENTORY_SCRIPT,
} from '../../agent/src/sbom/windows-inventory.js';
import { WinRmClient } from '../../agent/src/winrm/client.js';
import type { FakeMachineState } from '../helpers/fake-windows-vm/machine-state.mjs';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';
import { winrmNullBuilder } from '../helpers/packer.js';
import { runProcess } from '../helpers/run-process.js';

const UNINSTALL = 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
const UNINSTALL_32 = 'HKLM:\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
const MS = 'Microsoft Corporation';

interface Program {
  name: string;
  version: string;
  publisher: string;
  arch: 'x64' | 'x86';
}
interface InventoryJson {
  os: { caption: string; version: string; build: string };
  programs: Program[];
  hotfixes: string[];
}

/** The default VM's inventory: x64 keys then x86, each in registry (key name) order, keys without a name left out. */
function defaultInventory(): InventoryJson {
  return {
    os: { caption: 'Microsoft Windows Server 2022 Datacenter', version: '10.0.20348', build: '20348' },
    programs: [
      {
        name: 'Windows Azure VM Agent - 2.7.41491.1102',
        version: '2.7.41491.1102',
        publisher: MS,
        arch: 'x64',
      },
      {
        name: 'Microsoft Visual C++ 2022 X64 Minimum Runtime - 14.38.33135',
        version: '14.38.33135',
        publisher: MS,
        arch: 'x64',
      },
      {
        name: 'Microsoft Visual C++ 2022 X64 Additional Runtime - 14.38.33135',
        version: '14.38.33135',
        publisher: MS,
        arch: 'x64',
      },
      { name: 'Microsoft Edge', version: '122.0.2365.92', publisher: MS, arch: 'x86' },
      { name: 'Microsoft Edge Update', version: '1.3.185.17', publisher: MS, arch: 'x86' },
      {
        name: 'Microsoft Visual C++ 2022 X86 Minimum Runtime - 14.38.33135',
        version: '14.38.33135',
        publisher: MS,
        arch: 'x86',
      },
      {
        name: 'Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.38.33135',
        version: '14.38.33135.0',
        publisher: MS,
        arch: 'x86',
      },
      {
        name: 'Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33135',
        version: '14.38.33135.0',
        publisher: MS,
        arch: 'x86',
      },
    ],
    hotfixes: ['KB5012170', 'KB5034613', 'KB5035857'],
  };
}

const vms: FakeWindowsVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.close()));
});

async function startVm(behaviour: Parameters<typeof startFakeWindowsVm>[0] = {}): Promise<FakeWindowsVm> {
  const vm = await startFakeWindowsVm({ receiveCapMs: 500, ...behaviour });
  vms.push(vm);
  return vm;
}

function client(vm: FakeWindowsVm): WinRmClient {
  return new WinRmClient(
    {
      host: vm.host,
      port: vm.port,
      servername: 'fake-windows-vm',
      tls: { kind: 'ca', ca: vm.certPem },
      auth: { kind: 'basic', user: vm.user, password: new Secret(vm.password) },
      label: `build VM ${vm.host}:${vm.port}`,
    },
    { operationTimeoutMs: 1_000 },
  );
}

async function powershell(vm: FakeWindowsVm, script: string) {
  const c = client(vm);
  try {
    return await c.runPowerShell(script, { signal: AbortSignal.timeout(30_000) });
  } finally {
    c.close();
  }
}

/** isobuild's inventory over its own client: the raw stdout, its JSON line parsed, and how long it took. */
async function inventory(vm: FakeWindowsVm) {
  const started = Date.now();
  const result = await powershell(vm, WINDOWS_INVENTORY_SCRIPT);
  const ms = Date.now() - started;
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stderr).toBe('');
  return { stdout: result.stdout, json: jsonOf(result.stdout), ms };
}

/** The script's output per the contract: the marker line, one compressed JSON line, CRLF line ends. */
function jsonOf(stdout: string): InventoryJson {
  const lines = stdout.split('\r\n');
  expect(lines).toHaveLength(3);
  expect(lines[0]).toBe(WINDOWS_INVENTORY_MARKER);
  expect(lines[2]).toBe('');
  const json = lines[1]!;
  expect(json.replace(/"(?:[^"\\]|\\.)*"/g, '""')).not.toMatch(/\s/); // -Compress: no whitespace between tokens
  return JSON.parse(json) as InventoryJson;
}

/** Equal including the order of keys, which toEqual does not check. */
function expectInventory(actual: InventoryJson, expected: InventoryJson): void {
  expect(actual).toEqual(expected);
  expect(JSON.stringify(actual)).toBe(JSON.stringify(expected));
}

const python = async (script: string): Promise<string> => {
  const { stdout } = await promisify(execFile)('/usr/bin/python3', ['-c', script], {
    env: { PATH: process.env.PATH ?? '' }, // no REQUESTS_CA_BUNDLE overriding the trust settings
    timeout: 60_000,
  });
  return stdout.trim();
};

/** python3-winrm's Session.run_ps (powershell -encodedcommand): exit status and stdout, stdout as base64. */
async function pywinrmPowerShell(
  vm: FakeWindowsVm,
  script: string,
): Promise<{ status: number; stdout: string }> {
  const out = await python(
    [
      'import base64, sys, winrm',
      `s = winrm.Session('https://${vm.host}:${vm.port}/wsman', auth=(${JSON.stringify(vm.user)}, ${JSON.stringify(vm.password)}), transport='basic', server_cert_validation='validate', ca_trust_path=${JSON.stringify(vm.certFile)})`,
      `r = s.run_ps(base64.b64decode('${Buffer.from(script).toString('base64')}').decode('utf-8'))`,
      "print(r.status_code, base64.b64encode(r.std_out).decode('ascii'))",
    ].join('\n'),
  );
  const [status, stdout = ''] = out.split(' ');
  return { status: Number(status), stdout: Buffer.from(stdout, 'base64').toString('utf8') };
}

describe('the fake Windows VM answers the software inventory', () => {
  it('prints the default Windows Server 2022 inventory per the contract, to isobuild and to python3-winrm', async () => {
    const vm = await startVm();
    const ours = await inventory(vm);
    expectInventory(ours.json, defaultInventory());
    // Reading the Uninstall keys and Get-HotFix take a while on Windows; so they do here.
    expect(ours.ms).toBeGreaterThanOrEqual(300);

    const theirs = await pywinrmPowerShell(vm, WINDOWS_INVENTORY_SCRIPT);
    expect(theirs.status).toBe(0);
    expect(theirs.stdout).toBe(ours.stdout);
    expect(vm.openShells()).toBe(0);
  });

  it("shows exactly a Packer powershell customizer's registry and hotfix changes in the next inventory", async () => {
    const vm = await startVm();
    const work = await mkdtemp(join(tmpdir(), 'isobuild-fake-inventory-'));
    try {
      const contoso = `${UNINSTALL}\\{9A1B2C3D-0000-4E5F-8A9B-C0FFEE000001}`;
      const template = {
        builders: [winrmNullBuilder(vm)],
        provisioners: [
          {
            type: 'powershell',
            inline: [
              "$ErrorActionPreference = 'Stop'",
              `New-Item -Path '${contoso}' -Force | Out-Null`,
              `New-ItemProperty -Path '${contoso}' -Name DisplayName -Value 'Contoso Tools & Utilities' -PropertyType String -Force | Out-Null`,
              `New-ItemProperty -Path '${contoso}' -Name DisplayVersion -Value '4.2.0' -PropertyType String | Out-Null`,
              `New-ItemProperty -Path '${contoso}' -Name Publisher -Value "Contoso Ltd." | Out-Null`,
              `Set-ItemProperty -Path '${UNINSTALL_32}\\Microsoft Edge' -Name DisplayVersion -Value '123.0.2420.65'`,
              `Remove-Item -Path '${UNINSTALL_32}\\{f1e7e313-06df-4c56-96a9-99fdfd149c51}' -Recurse -Force`,
              'wusa.exe C:\\Windows\\Temp\\windows10.0-kb5005112-x64.msu /quiet /norestart',
              'wusa.exe /uninstall /kb:5034613 /quiet /norestart',
              "Write-Host 'customized'",
              'exit 0',
            ],
          },
        ],
      };
      await writeFile(join(work, 'customize.json'), JSON.stringify(template));
      const packer = await runProcess('packer', ['build', '-color=false', 'customize.json'], {
        cwd: work,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: work,
          CHECKPOINT_DISABLE: '1',
          PACKER_CACHE_DIR: join(work, 'cache'),
        },
      });
      expect(packer.code, packer.stdout + packer.stderr).toBe(0);
      expect(packer.stdout).toContain('customized');

      const expected = defaultInventory();
      expected.programs.splice(2, 0, {
        name: 'Contoso Tools & Utilities',
        version: '4.2.0',
        publisher: 'Contoso Ltd.',
        arch: 'x64',
      });
      expected.programs.find((p) => p.name === 'Microsoft Edge')!.version = '123.0.2420.65';
      expected.programs = expected.programs.filter((p) => !p.name.includes('Redistributable (x86)'));
      expected.hotfixes = ['KB5012170', 'KB5035857', 'KB5005112'];

      const ours = await inventory(vm);
      expectInventory(ours.json, expected);
      // Windows PowerShell 5.1's ConvertTo-Json escapes & < > ' in strings.
      expect(ours.stdout).toContain('"name":"Contoso Tools \\u0026 Utilities"');
      const theirs = await pywinrmPowerShell(vm, WINDOWS_INVENTORY_SCRIPT);
      expect(theirs.stdout).toBe(ours.stdout);
      // isobuild's own parser reads it: every program and hotfix, escapes decoded.
      const parsed = parseWindowsInventory(ours.stdout);
      expect(parsed.packages).toHaveLength(expected.programs.length + expected.hotfixes.length);
      expect(parsed.packages).toContainEqual({
        kind: 'windows-program',
        name: 'Contoso Tools & Utilities',
        version: '4.2.0',
        arch: 'x64',
        publisher: 'Contoso Ltd.',
      });
      // The test's own view of the VM agrees.
      const state = vm.machineState();
      expect(state.uninstall.x64['{9A1B2C3D-0000-4E5F-8A9B-C0FFEE000001}']).toEqual({
        DisplayName: 'Contoso Tools & Utilities',
        DisplayVersion: '4.2.0',
        Publisher: 'Contoso Ltd.',
      });
      expect(state.hotfixes).toEqual(expected.hotfixes);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 90_000);

  it('keeps an -EncodedCommand customizer’s changes across shells, clients and a reboot', async () => {
    const vm = await startVm();
    const fabrikam = `${UNINSTALL_32}\\Fabrikam Agent`;
    // python3-winrm runs the customizer in one shell ...
    const customized = await pywinrmPowerShell(
      vm,
      [
        `New-Item -Path '${UNINSTALL_32}' -Name 'Fabrikam Agent' -Force | Out-Null`,
        `Set-ItemProperty -Path '${fabrikam}' -Name DisplayName -Value 'Fabrikam Agent'`,
        `Set-ItemProperty -Path '${fabrikam}' -Name DisplayVersion -Value '1.0.7'`,
        `Set-ItemProperty -Path '${fabrikam}' -Name Publisher -Value 'Fabrikam, Inc.'`,
        `Remove-Item -Path '${UNINSTALL_32}\\Microsoft Edge Update' -Recurse -Force`,
        'wusa.exe /uninstall /kb:5012170 /quiet /norestart',
        'exit $LASTEXITCODE',
      ].join('\r\n'),
    );
    expect(customized.status).toBe(3010); // wusa /norestart: done, restart pending
    vm.reboot(300);
    await new Promise((resolve) => setTimeout(resolve, 400));

    // ... and isobuild's client, in new shells after the reboot, sees the change.
    const expected = defaultInventory();
    expected.programs = expected.programs.filter((p) => p.name !== 'Microsoft Edge Update');
    expected.programs.splice(3, 0, {
      name: 'Fabrikam Agent',
      version: '1.0.7',
      publisher: 'Fabrikam, Inc.',
      arch: 'x86',
    });
    expected.hotfixes = ['KB5034613', 'KB5035857'];
    expectInventory((await inventory(vm)).json, expected);
    expectInventory((await inventory(vm)).json, expected);
    expect(vm.openShells()).toBe(0);
  });

  it('loses no edit when two shells change the registry at once', async () => {
    const vm = await startVm({ behaviour: { inventoryDelayMs: 0 } });
    const register = (prefix: string): string =>
      Array.from({ length: 25 }, (_, i) => `New-Item -Path '${UNINSTALL}\\${prefix}${i}' -Force`).join('\n');
    const results = await Promise.all([powershell(vm, register('A')), powershell(vm, register('B'))]);
    expect(results.map((r) => r.exitCode)).toEqual([0, 0]);
    const added = Object.keys(vm.machineState().uninstall.x64).filter((key) => /^[AB]\d+$/.test(key));
    expect(added).toHaveLength(50);
  });

  it("starts from the test's own machine state, and reports errors as Windows PowerShell does", async () => {
    const initial: FakeMachineState = {
      os: {
        caption: 'Microsoft Windows Server 2019 Datacenter',
        version: '10.0.17763',
        buildNumber: '17763',
      },
      uninstall: { x64: { 'Contoso <Beta>': { DisplayName: "Contoso's <Beta>" } }, x86: {} },
      hotfixes: ['KB5005112'],
    };
    const vm = await startVm({ behaviour: { machineState: initial, inventoryDelayMs: 0 } });
    const first = await inventory(vm);
    expect(first.stdout).toBe(
      `${WINDOWS_INVENTORY_MARKER}\r\n{"os":{"caption":"Microsoft Windows Server 2019 Datacenter","version":"10.0.17763","build":"17763"},"programs":[{"name":"Contoso\\u0027s \\u003cBeta\\u003e","version":"","publisher":"","arch":"x64"}],"hotfixes":["KB5005112"]}\r\n`,
    );

    const reinstall = await powershell(
      vm,
      'wusa.exe C:\\Windows\\Temp\\windows10.0-kb5005112-x64.msu /quiet /norestart; exit $LASTEXITCODE',
    );
    expect(reinstall.exitCode).toBe(0x240006); // WU_S_ALREADY_INSTALLED

    const failed = await powershell(
      vm,
      [
        `New-Item -Path '${UNINSTALL}\\Dup'`,
        `New-Item -Path '${UNINSTALL}\\dup'`,
        `Remove-Item -Path '${UNINSTALL}\\Missing' -ErrorAction SilentlyContinue`,
        'wusa.exe /uninstall /kb:5005112 /quiet /norestart',
        "Write-Host 'after'",
        "$ErrorActionPreference = 'Stop'",
        `Set-ItemProperty -Path '${UNINSTALL}\\Missing' -Name DisplayName -Value 'x'`,
        "Write-Host 'not reached'",
      ].join('\n'),
    );
    expect(failed.exitCode).toBe(1);
    expect(failed.stdout).toBe('after\r\n');
    expect(failed.stderr).toContain('New-Item : A key at this path already exists.');
    expect(failed.stderr).toContain(
      `Set-ItemProperty : Cannot find path '${UNINSTALL}\\Missing' because it does not exist.`,
    );
    expect(failed.stderr).not.toContain('Remove-Item'); // -ErrorAction SilentlyContinue

    const state = vm.machineState();
    expect(Object.keys(state.uninstall.x64)).toEqual(['Contoso <Beta>', 'Dup']);
    expect(state.hotfixes).toEqual([]);
    const after = await inventory(vm);
    expect(after.json.hotfixes).toEqual([]);
    expect(after.json.programs).toHaveLength(1); // the new key has no DisplayName
  });
});
