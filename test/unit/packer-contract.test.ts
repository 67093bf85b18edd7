/**
 * The contract between rendered HCL and the runner, checked from both sides: the HCL render writes declares
 * every variable the runner sets (secrets as sensitive) and prints a marker for every step; the marker, as
 * Packer prints it, reads back as its tag; the remote cleanup's pattern matches the script paths render
 * names, and only this run's.
 */
import { describe, expect, it } from 'vitest';
import {
  DEPROVISION_TAG,
  PACKER_VARIABLES,
  REMOTE_SCRIPT_FOLDER,
  SECRET_PACKER_VARIABLES,
  remoteScriptPattern,
  secureParameterVariable,
  stepMarkerCommand,
  stepTag,
} from '../../agent/src/packer-contract.js';
import { readPackerLine } from '../../agent/src/packer/packer-output.js';
import type { SecretReference } from '../../agent/src/render/hcl.js';
import { renderPackerFile, type PackerFileOptions } from '../../agent/src/render/packer-template.js';
import { remoteCleanupScript } from '../../agent/src/run/remote-cleanup.js';
import { loadTemplateText } from '../../agent/src/template/load-template.js';
import type { ImageTemplate } from '../../agent/src/template/model.js';
import {
  WINDOWS_BUILD_SOURCE,
  deployment,
  imageTemplate,
  templateText,
} from '../helpers/template-builders.js';

const SECRET = 'Sup3r-S3cret-Token';

/** A template with securestring parameters (and values derived from them), customizers and validators. */
function loadedTemplate(os: 'linux' | 'windows'): ImageTemplate {
  const step =
    os === 'linux'
      ? (line: string) => ({ type: 'Shell', name: line, inline: [line] })
      : (line: string) => ({ type: 'PowerShell', name: line, inline: [line] });
  const resource = imageTemplate(
    {
      customize: [
        step("[concat('login --token ', parameters('token'))]"),
        step('echo two'),
        step("[concat('again ', parameters('other'))]"),
      ],
      validate: { inVMValidations: [step('echo check'), step('echo check again')] },
    },
    os === 'linux' ? undefined : WINDOWS_BUILD_SOURCE,
  );
  const text = templateText(
    deployment([resource], {
      parameters: { token: { type: 'securestring' }, other: { type: 'securestring' } },
    }),
  );
  const parameters = new Map([
    ['token', SECRET],
    ['other', `${SECRET}-2`],
  ]);
  return loadTemplateText(text, `${os}.json`, { parameters }).template;
}

function render(template: ImageTemplate, kind: PackerFileOptions['kind']): string {
  const secrets: SecretReference[] = template.secureValues.map((value, i) => ({
    value,
    variable: secureParameterVariable(i),
  }));
  const steps = kind === 'validation' ? template.validate.inVMValidations : template.customize;
  return renderPackerFile({
    template,
    kind,
    steps: kind === 'deprovision' ? [] : steps.map((step) => ({ step })),
    deprovisionScript: 'artifacts/isobuild-deprovision.sh',
    supportsPlugins: false,
    secrets,
    sourceLabel: 'contract test',
  });
}

/** The variables `isobuild build` sets for a build of this OS (run/phases/connect.ts). */
function runnerVariables(template: ImageTemplate): string[] {
  const v = PACKER_VARIABLES;
  return [
    v.host,
    v.port,
    v.username,
    v.runId,
    v.connectTimeout,
    ...(template.os === 'linux'
      ? [v.sshKeyFile, v.sshPassword]
      : [v.winrmPassword, v.winrmUseNtlm, v.winrmInsecure]),
    ...template.secureValues.map((_, i) => secureParameterVariable(i)),
  ];
}

/** Each `variable "name" { … }` block of the HCL, by name, with whether it is sensitive. */
function declaredVariables(hcl: string): Map<string, { sensitive: boolean }> {
  const blocks = [...hcl.matchAll(/^variable "([^"]+)" \{\n((?: {2}.*\n)*)\}/gm)];
  return new Map(blocks.map((m) => [m[1]!, { sensitive: /^\s+sensitive\s+= true$/m.test(m[2]!) }]));
}

describe.each(['linux', 'windows'] as const)('the rendered HCL of a %s template', (os) => {
  const template = loadedTemplate(os);

  it.each(['customization', 'validation', 'deprovision'] as const)(
    'declares in %s every variable the runner sets, the secret ones sensitive',
    (kind) => {
      const declared = declaredVariables(render(template, kind));

      expect(template.secureValues.length).toBeGreaterThan(1);
      expect([...declared.keys()].sort()).toEqual(runnerVariables(template).sort());
      // The passwords and the securestring values are the secrets; Packer hides sensitive values in its output.
      const secret = (name: string): boolean =>
        name === PACKER_VARIABLES.sshPassword ||
        name === PACKER_VARIABLES.winrmPassword ||
        name.startsWith('secure_parameter_');
      for (const [name, { sensitive }] of declared) expect(sensitive, name).toBe(secret(name));
      expect([...SECRET_PACKER_VARIABLES].every(secret)).toBe(true);
    },
  );

  it('uses only variables it declares, and never a secret value', () => {
    for (const kind of ['customization', 'validation', 'deprovision'] as const) {
      const hcl = render(template, kind);
      const used = new Set([...hcl.matchAll(/var\.(\w+)/g)].map((m) => m[1]!));

      expect([...used].filter((name) => !declaredVariables(hcl).has(name))).toEqual([]);
      expect(hcl).not.toContain(SECRET);
    }
  });

  it('prints the marker of every step, in order, before its provisioner', () => {
    const markers = (hcl: string): string[] =>
      [...hcl.matchAll(/provisioner "shell-local" \{\n\s+inline = \[\n\s+"([^"]*)",/g)].map((m) => m[1]!);

    expect(markers(render(template, 'customization'))).toEqual(
      template.customize.map((s) => stepMarkerCommand(stepTag('customization', s.index))),
    );
    expect(markers(render(template, 'validation'))).toEqual(
      template.validate.inVMValidations.map((s) => stepMarkerCommand(stepTag('validation', s.index))),
    );
    expect(markers(render(template, 'deprovision'))).toEqual([stepMarkerCommand(DEPROVISION_TAG)]);
  });
});

describe('the step marker', () => {
  it.each(['c00', 'c07', 'c12', 'v00', 'v03', DEPROVISION_TAG])(
    'reads back as %s from the line Packer prints for its command',
    (tag) => {
      const hcl = render(loadedTemplate('linux'), 'customization');
      const [type, name] = /^source "(\w+)" "(\w+)"/m.exec(hcl)!.slice(1);
      // shell-local prints the command's stdout as remote stdout: 4 spaces, the build's name, the line.
      const echoed = stepMarkerCommand(tag).replace(/^echo /, '');

      expect(readPackerLine(`    ${type}.${name}: ${echoed}`)).toEqual({ kind: 'step', tag });
    },
  );

  it('gives each step its own tag', () => {
    const tags = [0, 1, 9, 10, 99].flatMap((i) => [stepTag('customization', i), stepTag('validation', i)]);

    expect(new Set([...tags, DEPROVISION_TAG]).size).toBe(tags.length + 1);
    expect(tags.slice(0, 2)).toEqual(['c00', 'v00']);
  });
});

describe('the remote cleanup pattern', () => {
  const runId = 'run-1';
  /** The remote paths of a Linux build's scripts: Packer's remote_folder and render's remote_file. */
  const remotePaths = (['customization', 'deprovision'] as const).flatMap((kind) =>
    [...render(loadedTemplate('linux'), kind).matchAll(/remote_file\s+= "([^"]+)"/g)].map(
      (m) => `${REMOTE_SCRIPT_FOLDER}/${m[1]!.replace(`\${var.${PACKER_VARIABLES.runId}}`, runId)}`,
    ),
  );

  it('matches the path of every script render names', () => {
    expect(remotePaths).toEqual([
      '/tmp/isobuild-run-1-c00.sh',
      '/tmp/isobuild-run-1-c01.sh',
      '/tmp/isobuild-run-1-c02.sh',
      '/tmp/isobuild-run-1-deprovision.sh',
    ]);
    for (const path of remotePaths) expect(path.startsWith(remoteScriptPattern(runId))).toBe(true);
  });

  it('is what the cleanup script looks for and removes', () => {
    const script = remoteCleanupScript(runId);

    expect(script).toContain(`pat='${remoteScriptPattern(runId)}'`);
    expect(script).toContain(`rm -f ${remoteScriptPattern(runId)}*`);
  });

  it("matches no other run's scripts, even one whose id starts with this one", () => {
    const other = remotePaths.map((path) => path.replace(runId, `${runId}0`));

    for (const path of other) expect(path.startsWith(remoteScriptPattern(runId))).toBe(false);
  });
});
