/**
 * The SBOM of a Windows build (issue 15): real Packer 1.6.6 over WinRM against the fake Windows VM, whose
 * registry and hotfixes a PowerShell customizer changes the way installers do. isobuild's inventory script
 * (run over its own WinRM client, through the relay) sees exactly those changes, and the CycloneDX document
 * passes the official schema.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import { readCycloneDxInventory, validateCycloneDx } from '../../agent/src/sbom/cyclonedx.js';
import { CLI } from '../helpers/build-cli.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';
import { processResult } from '../helpers/run-process.js';
import {
  deployment,
  imageTemplate,
  WINDOWS_BUILD_SOURCE,
  type JsonMap,
} from '../helpers/template-builders.js';

const UNINSTALL = 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
const UNINSTALL_32 = 'HKLM:\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall';

let vm: FakeWindowsVm;
let work: string;
beforeAll(async () => {
  vm = await startFakeWindowsVm({ receiveCapMs: 1_000 });
  work = await mkdtemp(join(tmpdir(), 'isobuild-windows-sbom-'));
});
afterAll(async () => {
  await vm?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function build(runId: string, customize: object[], args: string[] = [], wrap = (t: object) => t) {
  const template = join(work, `${runId}.json`);
  await writeFile(template, JSON.stringify(wrap(imageTemplate({ customize }, WINDOWS_BUILD_SOURCE))));
  const child = spawn(
    process.execPath,
    [
      CLI,
      'build',
      template,
      ...['--host', vm.host, '--port', String(vm.port), '--user', vm.user],
      ...['--work-dir', work, '--run-id', runId, '--skip-deprovision', '--local-logs-only'],
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ISOBUILD_WINRM_PASSWORD: vm.password } },
  );
  const run = await processResult(child);
  const status = JSON.parse(await readFile(join(work, runId, 'status.json'), 'utf8')) as RunStatus;
  return { ...run, status };
}

describe('SBOM of a Windows build', () => {
  it('records the programs and hotfixes a customizer installed, upgraded and removed', async () => {
    const contoso = `${UNINSTALL}\\ContosoAgent`;
    const run = await build('win-sbom', [
      {
        type: 'PowerShell',
        name: 'install contoso, update edge, remove edge update',
        inline: [
          `New-Item -Path '${contoso}' -Force | Out-Null`,
          `New-ItemProperty -Path '${contoso}' -Name DisplayName -Value 'Contoso Agent' -PropertyType String | Out-Null`,
          `New-ItemProperty -Path '${contoso}' -Name DisplayVersion -Value '2.1.0' -PropertyType String | Out-Null`,
          `New-ItemProperty -Path '${contoso}' -Name Publisher -Value 'Contoso Ltd.' -PropertyType String | Out-Null`,
          `Set-ItemProperty -Path '${UNINSTALL_32}\\Microsoft Edge' -Name DisplayVersion -Value '131.0.2903.70'`,
          `Remove-Item -Path '${UNINSTALL_32}\\Microsoft Edge Update' -Recurse -Force`,
          'wusa.exe C:\\Windows\\Temp\\windows10.0-kb5005112-x64.msu /quiet /norestart',
        ],
      },
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.status.sbom).toMatchObject({
      state: 'collected',
      changes: { added: 2, removed: 1, upgraded: 1, downgraded: 0 },
      baseline: { source: 'collected' },
    });
    const packages = run.status.sbom.packages ?? 0;
    expect(run.stderr).toContain(
      `SBOM: ${packages} packages, 2 added, 1 removed, 1 upgraded since the source image`,
    );

    const text = await readFile(join(work, 'win-sbom', 'sbom.cdx.json'), 'utf8');
    await validateCycloneDx(text);
    const inventory = readCycloneDxInventory(text);
    expect(inventory.os).toMatchObject({ id: 'windows', version: '10.0.20348', build: '20348' });
    expect(inventory.packages).toContainEqual(
      expect.objectContaining({
        kind: 'windows-program',
        name: 'Contoso Agent',
        version: '2.1.0',
        arch: 'x64',
      }),
    );
    expect(inventory.packages).toContainEqual(
      expect.objectContaining({
        kind: 'windows-program',
        name: 'Microsoft Edge',
        version: '131.0.2903.70',
        arch: 'x86',
      }),
    );
    expect(inventory.packages).toContainEqual(
      expect.objectContaining({ kind: 'windows-hotfix', name: 'KB5005112' }),
    );
    expect(inventory.packages.some((p) => p.name === 'Microsoft Edge Update')).toBe(false);
    // The count the build reported is the fake VM's state: every program with a DisplayName and every KB.
    const state = vm.machineState();
    const named = [...Object.values(state.uninstall.x64), ...Object.values(state.uninstall.x86)].filter(
      (key) => typeof (key as { DisplayName?: unknown }).DisplayName === 'string',
    );
    expect(packages).toBe(named.length + state.hotfixes.length);
  });

  it('masks a secret that reaches the inventory (a program named after a securestring) in every record', async () => {
    const secret = 'Pr0gram/Secret+Name=';
    const key = `${UNINSTALL}\\SecretTool`;
    const run = await build(
      'win-sbom-secret',
      [
        {
          type: 'PowerShell',
          name: 'install a tool named after the secret',
          inline: [
            `New-Item -Path '${key}' -Force | Out-Null`,
            `[concat('New-ItemProperty -Path ''${key}'' -Name DisplayName -Value ''Tool ', parameters('token'), ''' -PropertyType String | Out-Null')]`,
            `New-ItemProperty -Path '${key}' -Name DisplayVersion -Value '1.0' -PropertyType String | Out-Null`,
          ],
        },
      ],
      ['--param', `token=${secret}`],
      (resource) => deployment([resource as JsonMap], { parameters: { token: { type: 'securestring' } } }),
    );
    expect(run.code, run.stderr).toBe(0);
    // The VM really has the secret in a program's name: the masks below are not vacuous.
    const names = Object.values(vm.machineState().uninstall.x64).map(
      (k) => (k as { DisplayName?: string }).DisplayName,
    );
    expect(names).toContain(`Tool ${secret}`);
    expect(run.status.sbom.changes).toMatchObject({ added: 1 });
    const dir = join(work, 'win-sbom-secret');
    const sbom = await readFile(join(dir, 'sbom.cdx.json'), 'utf8');
    await validateCycloneDx(sbom); // masking leaves a valid document
    expect(readCycloneDxInventory(sbom).packages.some((p) => p.name === 'Tool ***')).toBe(true);
    const texts = {
      sbom,
      provenance: await readFile(join(dir, 'provenance.json'), 'utf8'),
      status: await readFile(join(dir, 'status.json'), 'utf8'),
      baseline: await readFile(join(dir, 'inventory-before.json'), 'utf8'),
      log: await readFile(join(dir, 'customization.log'), 'utf8'),
      stderr: run.stderr,
    };
    const forms = [
      secret,
      JSON.stringify(secret).slice(1, -1),
      encodeURIComponent(secret),
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret, 'utf16le').toString('base64'),
    ];
    for (const [where, text] of Object.entries(texts))
      for (const form of forms) expect(text.includes(form), `${where} has ${form}`).toBe(false);
  });
});
