/** renderBuild end to end: files on disk, what goes into HCL and what must not, checked with real Packer. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIsobuildError } from '../../agent/src/errors.js';
import { detectPacker, type PackerInfo } from '../../agent/src/packer/packer-version.js';
import { packerValidate } from '../../agent/src/packer/validate-rendered.js';
import { renderBuild, type RenderOptions } from '../../agent/src/render/render-build.js';
import { loadTemplateText } from '../../agent/src/template/load-template.js';
import { imageTemplate } from '../helpers/template-builders.js';

let work: string;
let packer: PackerInfo;
let scriptUrl: string;
let scriptSha: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-render-'));
  packer = await detectPacker();
  const script = '#!/bin/bash\necho "from a script"\n';
  await writeFile(join(work, 'script.sh'), script);
  scriptUrl = pathToFileURL(join(work, 'script.sh')).href;
  scriptSha = createHash('sha256').update(script).digest('hex');
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The build tests' Linux resource, in westus2 and at `apiVersion`. */
function resource(properties: Record<string, unknown>, apiVersion = '2024-02-01'): string {
  return JSON.stringify({ ...imageTemplate(properties), apiVersion, location: 'westus2' });
}

let counter = 0;
async function render(
  text: string,
  options: Partial<RenderOptions> & { parameters?: Map<string, string> } = {},
) {
  const { template } = loadTemplateText(text, 'test.json', { parameters: options.parameters });
  const outDir = options.outDir ?? join(work, `out-${counter++}`);
  const result = await renderBuild(template, { outDir, sourceLabel: 'test.json', packer, ...options });
  const hcl = await readFile(join(outDir, 'customization.pkr.hcl'), 'utf8');
  return { result, hcl, outDir };
}

describe('renderBuild', () => {
  it('writes inline commands Packer would alter to a script file, byte for byte', async () => {
    const commands = [
      'docker inspect --format "{{.State.Status}}" web',
      'echo cafe\u0301 # not NFC',
      'echo ${HOME} %{x}',
    ];

    const { result, hcl, outDir } = await render(
      resource({ customize: [{ type: 'Shell', name: 'templ', inline: commands }] }),
    );

    expect(hcl).toMatch(/script\s+= "\$\{path.root\}\/artifacts\/customize-00-inline.sh"/);
    expect(hcl).not.toContain('State.Status');
    expect(await readFile(join(outDir, 'artifacts', 'customize-00-inline.sh'), 'utf8')).toBe(
      `#!/bin/sh -e\n${commands.join('\n')}\n`,
    );
    for (const name of result.files) await packerValidate(packer.path, join(outDir, name));
  });

  it('keeps ordinary inline commands inline, escaped for HCL', async () => {
    const { hcl } = await render(
      resource({ customize: [{ type: 'Shell', inline: ['echo "${HOME}" \\ %{x}'] }] }),
    );

    expect(hcl).toContain('"echo \\"$${HOME}\\" \\\\ %%{x}"');
  });

  it('refuses other fields that Packer would alter, naming the path', async () => {
    const text = resource({
      customize: [
        { type: 'File', sourceUri: scriptUrl, sha256Checksum: scriptSha, destination: '/tmp/{{x}}' },
      ],
    });

    const error: unknown = await render(text).catch((e: unknown) => e);

    expect(isIsobuildError(error) && error.code).toBe('templateInvalid');
    expect(isIsobuildError(error) && error.problems[0]?.path).toBe('properties.customize[0].destination');
  });

  it('never writes securestring parameter values into rendered files', async () => {
    const secret = 'Sup3r-S3cret-Token';
    const deployment = JSON.stringify({
      $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
      contentVersion: '1.0.0.0',
      parameters: { token: { type: 'securestring' } },
      resources: [
        JSON.parse(
          resource({
            customize: [{ type: 'Shell', inline: ["[concat('login --token ', parameters('token'))]"] }],
          }),
        ) as object,
      ],
    });

    const { hcl, outDir, result } = await render(deployment, { parameters: new Map([['token', secret]]) });

    // The whole command is derived from the secret, so all of it is passed as a sensitive variable.
    expect(hcl).toMatch(/"\$\{var\.secure_parameter_\d+\}"/);
    expect(hcl).toMatch(/variable "secure_parameter_0" \{[^}]*sensitive\s+= true/);
    for (const file of await listFiles(outDir)) {
      const content = await readFile(file, 'utf8');
      expect(content).not.toContain(secret);
      expect(content).not.toContain(Buffer.from(secret).toString('base64').slice(0, 16));
    }
    for (const name of result.files) await packerValidate(packer.path, join(outDir, name));
  });

  it('maps Windows steps to the provisioners and elevation AIB uses', async () => {
    const text = resource({
      customize: [
        {
          type: 'PowerShell',
          name: 'elevated',
          inline: ['Write-Host hi'],
          runElevated: true,
          validExitCodes: [0, 3010],
        },
        { type: 'PowerShell', name: 'system', inline: ['whoami'], runElevated: true, runAsSystem: true },
        { type: 'WindowsRestart', restartCheckCommand: 'echo restarted', restartTimeout: '10m' },
      ],
    });

    const { hcl, outDir, result } = await render(text.replace('Canonical', 'MicrosoftWindowsServer'));

    expect(hcl).toContain('communicator   = "winrm"');
    expect(hcl).toContain('winrm_use_ssl  = true');
    expect(hcl).toMatch(/elevated_user\s+= var\.build_username/);
    expect(hcl).toMatch(/elevated_user\s+= "SYSTEM"/);
    expect(hcl).toMatch(/valid_exit_codes\s+= \[\s+0,\s+3010,\s+\]/);
    expect(hcl).toMatch(/restart_check_command = "echo restarted"/);
    expect(await readFile(join(outDir, 'deprovision.pkr.hcl'), 'utf8')).toContain('isobuild-deprovision.ps1');
    for (const name of result.files) await packerValidate(packer.path, join(outDir, name));
  });

  it('emits required_plugins for WindowsUpdate when Packer can load plugins', async () => {
    const text = resource({
      customize: [
        {
          type: 'WindowsUpdate',
          searchCriteria: 'IsInstalled=0',
          filters: ['include:$true'],
          updateLimit: 20,
        },
      ],
    });

    const { hcl } = await render(text.replace('Canonical', 'MicrosoftWindowsServer'), {
      packer: { ...packer, version: '1.9.4', supportsPlugins: true },
    });

    expect(hcl).toMatch(
      /required_plugins \{\s+windows-update = \{\s+version = ">= [\d.]+"\s+source {2}= "github.com\/rgl\/windows-update"/,
    );
    expect(hcl).toContain('provisioner "windows-update"');
    expect(hcl).toMatch(/update_limit\s+= 20/);
  });

  it('leaves out the deprovision step on request', async () => {
    const { hcl, outDir, result } = await render(
      resource({ customize: [{ type: 'Shell', inline: ['true'] }] }),
      {
        skipDeprovision: true,
      },
    );

    expect(hcl).not.toContain('deprovision');
    expect(result.files).toEqual(['customization.pkr.hcl']);
    expect(await readdir(join(outDir, 'artifacts'))).toEqual([]);
  });

  it('renders validation.pkr.hcl for in-VM validators', async () => {
    const text = resource({
      validate: {
        inVMValidations: [{ type: 'Shell', name: 'check', scriptUri: scriptUrl, sha256Checksum: scriptSha }],
      },
    });

    const { result, outDir } = await render(text);

    expect(result.files).toEqual(['customization.pkr.hcl', 'validation.pkr.hcl', 'deprovision.pkr.hcl']);
    const validation = await readFile(join(outDir, 'validation.pkr.hcl'), 'utf8');
    expect(validation).toContain('artifacts/validate-00-check.sh');
    expect(validation).not.toContain('deprovision');
  });

  it('never replaces a directory it did not write, and keeps the previous output when a render fails', async () => {
    const foreign = join(work, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, 'precious.txt'), 'keep me');
    const good = resource({ customize: [{ type: 'Shell', inline: ['true'] }] });
    const bad = resource({
      customize: [{ type: 'Shell', scriptUri: scriptUrl, sha256Checksum: '0'.repeat(64) }],
    });

    const refused: unknown = await render(good, { outDir: foreign }).catch((e: unknown) => e);
    const { outDir } = await render(good);
    const failed: unknown = await render(bad, { outDir }).catch((e: unknown) => e);

    expect(isIsobuildError(refused) && refused.code).toBe('outputUnwritable');
    expect(await readFile(join(foreign, 'precious.txt'), 'utf8')).toBe('keep me');
    expect(isIsobuildError(failed) && failed.code).toBe('artifactFailed');
    expect(await readFile(join(outDir, 'customization.pkr.hcl'), 'utf8')).toContain('"true"');
    expect((await readdir(work)).filter((name) => name.includes('.rendering-'))).toEqual([]);
  });

  it('creates missing parents of the output directory, and names a parent that is a file', async () => {
    const good = resource({ customize: [{ type: 'Shell', inline: ['true'] }] });
    await writeFile(join(work, 'a-file'), '');

    const { outDir } = await render(good, { outDir: join(work, 'new/nested/out') });
    const blocked: unknown = await render(good, { outDir: join(work, 'a-file/out') }).catch(
      (e: unknown) => e,
    );

    expect(await readdir(outDir)).toContain('customization.pkr.hcl');
    expect(isIsobuildError(blocked) && blocked.code).toBe('outputUnwritable');
    expect((blocked as Error).message).toContain(
      `cannot create the parent of --out, ${join(work, 'a-file')} (a part of that path is a file)`,
    );
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
