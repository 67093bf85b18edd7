/**
 * Maps a normalised image template to the Packer HCL files AIB would run (aib-reference §2.2):
 * a null builder with an SSH or WinRM communicator whose address and credentials are variables,
 * one provisioner per customizer, and AIB's hidden deprovision step at the end.
 */
import type { ImageTemplate, Step } from '../template/model.js';
import {
  expr,
  hclPowerShellLiteral,
  hclString,
  writeHcl,
  type HclBlock,
  type HclValue,
  type SecretReference,
} from './hcl.js';
import { maskSecrets } from '../mask-secrets.js';
import {
  DEPROVISION_TAG,
  PACKER_VARIABLES,
  SECRET_PACKER_VARIABLES,
  remoteScriptFile,
  stagedFileName,
  stepMarkerCommand,
  stepTag,
  windowsStagingDir,
  type PackerPhase,
} from '../packer-contract.js';
import { stagedFileScript } from './staged-file.js';
import { VERSION } from '../version.js';

/** AIB waits 20 minutes for SSH and 10 for WinRM (aib-reference §2.1). */
export const DEFAULT_CONNECT_TIMEOUT = { linux: '20m', windows: '10m' } as const;

/** The windows-update provisioner is a plugin; Packer loads plugins from `required_plugins` from 1.7 on. */
export const WINDOWS_UPDATE_PLUGIN = {
  source: 'github.com/rgl/windows-update',
  version: '>= 0.14.0',
} as const;

export interface RenderedStep {
  readonly step: Step;
  /** Artifact file for scriptUri / sourceUri steps, relative to the output directory. */
  readonly artifact?: string;
  /** A Windows File step whose source `isobuild build` uploads itself: the sha256 the step checks. */
  readonly staged?: { readonly sha256: string };
}

export interface PackerFileOptions {
  readonly template: ImageTemplate;
  readonly steps: readonly RenderedStep[];
  /** customization and validation run `steps`; deprovision runs only `deprovisionScript`. */
  readonly kind: PackerPhase;
  /** Relative path of the deprovision script (kind 'deprovision'). */
  readonly deprovisionScript?: string;
  readonly supportsPlugins: boolean;
  readonly secrets: readonly SecretReference[];
  readonly sourceLabel: string;
}

export function renderPackerFile(options: PackerFileOptions): string {
  const { template } = options;
  const hasUpdates = options.steps.some((s) => s.step.type === 'WindowsUpdate');
  const packerBlock: HclBlock = {
    type: 'packer',
    attributes: [['required_version', '>= 1.6.6']],
    blocks:
      hasUpdates && options.supportsPlugins
        ? [
            {
              type: 'required_plugins',
              attributes: [
                [
                  'windows-update',
                  expr(
                    `{\n    version = ${hclString(WINDOWS_UPDATE_PLUGIN.version)}\n    source  = ${hclString(WINDOWS_UPDATE_PLUGIN.source)}\n  }`,
                  ),
                ],
              ],
            },
          ]
        : [],
  };
  const header = [
    `# Rendered by isobuild ${VERSION} from ${sanitizeComment(options.sourceLabel)} — do not edit; render again instead.`,
    `# ${KIND_TITLES[options.kind]} of a ${template.os === 'linux' ? 'Linux' : 'Windows'} build VM (imageTemplates API ${template.apiVersion}).`,
    '# Credentials are sensitive variables supplied as PKR_VAR_* environment variables; none is stored here.',
    '',
  ].join('\n');
  const kind = options.kind;
  const provisioners =
    kind === 'deprovision'
      ? [stepMarker(DEPROVISION_TAG), deprovisionProvisioner(template, options.deprovisionScript ?? '')]
      : options.steps.flatMap((s) => {
          const tag = stepTag(kind, s.step.index);
          return [stepMarker(tag), provisionerFor(s, options.secrets, tag)];
        });
  const blocks: HclBlock[] = [
    packerBlock,
    ...variableBlocks(template, options.secrets),
    sourceBlock(template),
    { type: 'build', attributes: [['sources', ['source.null.build_vm']]], blocks: provisioners },
  ];
  return `${header}\n${writeHcl(blocks)}`;
}

function variableBlocks(template: ImageTemplate, secrets: readonly SecretReference[]): HclBlock[] {
  const v = PACKER_VARIABLES;
  const variable = (
    name: string,
    type: 'string' | 'number' | 'bool',
    value: HclValue,
    description: string,
    sensitive = SECRET_PACKER_VARIABLES.has(name),
  ): HclBlock => ({
    type: 'variable',
    labels: [name],
    attributes: [
      ['type', expr(type)],
      ['default', value],
      ['description', description],
      ...(sensitive ? [['sensitive', true] as const] : []),
    ],
  });
  const common = [
    variable(
      v.host,
      'string',
      '127.0.0.1',
      'Address Packer connects to: the build VM, or the isobuild relay in front of it.',
    ),
    variable(
      v.port,
      'number',
      template.os === 'linux' ? 22 : 5986,
      template.os === 'linux' ? 'SSH port.' : 'WinRM HTTPS port.',
    ),
    variable(v.username, 'string', 'packer', 'Administrator account on the build VM.'),
    variable(
      v.connectTimeout,
      'string',
      DEFAULT_CONNECT_TIMEOUT[template.os],
      'How long to wait for the communicator to connect.',
    ),
    variable(
      v.runId,
      'string',
      'manual',
      'Run id; remote script files are named after it so a cancelled run can be cleaned up.',
    ),
  ];
  const auth =
    template.os === 'linux'
      ? [
          variable(v.sshKeyFile, 'string', '', 'Path of the SSH private key (set this or ssh_password).'),
          variable(v.sshPassword, 'string', '', 'SSH password (set this or ssh_private_key_file).'),
        ]
      : [
          variable(v.winrmPassword, 'string', '', 'WinRM password of the administrator account.'),
          variable(
            v.winrmInsecure,
            'bool',
            true,
            "Accept the build VM's self-signed WinRM certificate, as AIB does.",
          ),
          variable(v.winrmUseNtlm, 'bool', true, 'Authenticate with NTLM (true) or Basic (false).'),
        ];
  const secretVariables = secrets.map((s) =>
    variable(s.variable, 'string', '', 'A securestring template parameter.', true),
  );
  return [...common, ...auth, ...secretVariables];
}

function sourceBlock(template: ImageTemplate): HclBlock {
  const v = PACKER_VARIABLES;
  const attributes: [string, HclValue][] =
    template.os === 'linux'
      ? [
          ['communicator', 'ssh'],
          ['ssh_host', expr(`var.${v.host}`)],
          ['ssh_port', expr(`var.${v.port}`)],
          ['ssh_username', expr(`var.${v.username}`)],
          ['ssh_private_key_file', expr(`var.${v.sshKeyFile}`)],
          ['ssh_password', expr(`var.${v.sshPassword}`)],
          ['ssh_timeout', expr(`var.${v.connectTimeout}`)],
        ]
      : [
          ['communicator', 'winrm'],
          ['winrm_host', expr(`var.${v.host}`)],
          ['winrm_port', expr(`var.${v.port}`)],
          ['winrm_username', expr(`var.${v.username}`)],
          ['winrm_password', expr(`var.${v.winrmPassword}`)],
          ['winrm_use_ssl', true],
          ['winrm_insecure', expr(`var.${v.winrmInsecure}`)],
          ['winrm_use_ntlm', expr(`var.${v.winrmUseNtlm}`)],
          ['winrm_timeout', expr(`var.${v.connectTimeout}`)],
        ];
  return { type: 'source', labels: ['null', 'build_vm'], attributes };
}

const KIND_TITLES = {
  customization: 'Customization',
  validation: 'In-VM validation',
  deprovision: 'Deprovisioning',
} as const;

/** Packer's default execute_command, run through sudo; `{{ }}` here is Packer's own template syntax. */
export const SUDO_EXECUTE_COMMAND = 'chmod +x {{ .Path }}; {{ .Vars }} sudo -E {{ .Path }}';

/** A local step marker before each step tells isobuild which step runs (Debian's Packer has no telemetry lines). */
function stepMarker(tag: string): HclBlock {
  return {
    type: 'provisioner',
    labels: ['shell-local'],
    attributes: [['inline', [stepMarkerCommand(tag)]]],
  };
}

/** The script's name on the VM carries the run id (an HCL interpolation of its variable here). */
function remoteFile(tag: string): [string, HclValue] {
  return ['remote_file', expr(`"${remoteScriptFile(`\${var.${PACKER_VARIABLES.runId}}`, tag)}"`)];
}

/**
 * The provisioner block of one step as it is rendered (without its marker): what a resumed run compares
 * to tell whether an earlier step is still the same.
 */
export function renderedProvisioner(
  rendered: RenderedStep,
  kind: 'customization' | 'validation',
  secrets: readonly SecretReference[],
): string {
  return writeHcl([provisionerFor(rendered, secrets, stepTag(kind, rendered.step.index))]);
}

function provisionerFor(rendered: RenderedStep, secrets: readonly SecretReference[], tag: string): HclBlock {
  const { step, artifact } = rendered;
  const name = maskSecrets(
    step.name,
    secrets.map((s) => s.value),
  );
  const comment = [`${step.path}: ${step.type} ${JSON.stringify(name)}`.replace(/[\r\n\u2028\u2029]/g, ' ')];
  const text = (value: string): HclValue => expr(hclString(value, secrets));
  const scriptOrInline = (s: { inline?: readonly string[] }): [string, HclValue] =>
    artifact ? ['script', artifactPath(artifact)] : ['inline', (s.inline ?? []).map(text)];
  switch (step.type) {
    case 'Shell': {
      const attributes: [string, HclValue][] = [scriptOrInline(step), remoteFile(tag)];
      // AIB runs downloaded scripts as root (the quickstart's customizeScript.sh writes /etc/motd without
      // sudo) and inline commands as the build user (they need sudo).
      if (step.scriptUri) attributes.push(['execute_command', SUDO_EXECUTE_COMMAND]);
      return { type: 'provisioner', labels: ['shell'], comment, attributes };
    }
    case 'PowerShell': {
      const attributes: [string, HclValue][] = [
        scriptOrInline(step),
        ['valid_exit_codes', [...step.validExitCodes]],
      ];
      if (step.runAsSystem) attributes.push(['elevated_user', 'SYSTEM'], ['elevated_password', '']);
      else if (step.runElevated) {
        attributes.push(
          ['elevated_user', expr(`var.${PACKER_VARIABLES.username}`)],
          ['elevated_password', expr(`var.${PACKER_VARIABLES.winrmPassword}`)],
        );
      }
      return { type: 'provisioner', labels: ['powershell'], comment, attributes };
    }
    case 'File':
      if (rendered.staged) return stagedFileProvisioner(step, rendered.staged.sha256, name, comment, secrets);
      return {
        type: 'provisioner',
        labels: ['file'],
        comment,
        attributes: [
          ['source', artifactPath(artifact ?? '')],
          ['destination', text(step.destination)],
        ],
      };
    case 'WindowsRestart': {
      const attributes: [string, HclValue][] = [
        ['restart_command', text(step.restartCommand)],
        ['restart_timeout', step.restartTimeout],
      ];
      // AIB's default check command is empty, which leaves Packer's own default in place.
      if (step.restartCheckCommand !== '')
        attributes.splice(1, 0, ['restart_check_command', text(step.restartCheckCommand)]);
      return { type: 'provisioner', labels: ['windows-restart'], comment, attributes };
    }
    case 'WindowsUpdate':
      return {
        type: 'provisioner',
        labels: ['windows-update'],
        comment,
        attributes: [
          ['search_criteria', text(step.searchCriteria)],
          ['filters', step.filters.map(text)],
          ['update_limit', step.updateLimit],
        ],
      };
  }
}

/** Stand for the run id in the staged path and for the destination's literal, until the HCL is written. */
const RUN_ID_PLACEHOLDER = 'ISOBUILD_RUN_ID_PLACEHOLDER';
const DESTINATION_PLACEHOLDER = 'ISOBUILD_DESTINATION_PLACEHOLDER';

/** A staged Windows File step (staged-file.ts): a PowerShell step that checks and copies the uploaded copy. */
function stagedFileProvisioner(
  step: Extract<Step, { type: 'File' }>,
  sha256: string,
  name: string,
  comment: readonly string[],
  secrets: readonly SecretReference[],
): HclBlock {
  const lines = stagedFileScript(
    {
      stagedPath: `${windowsStagingDir(RUN_ID_PLACEHOLDER)}\\${stagedFileName(step.index)}`,
      destination: step.destination,
      sha256,
      label: `File ${JSON.stringify(name)}`,
    },
    { destinationLiteral: DESTINATION_PLACEHOLDER },
  );
  // The run id is an interpolation of its variable (the step must render the same in every run); a secret in
  // the destination stays a variable, quoted for PowerShell by Packer.
  const runId = [{ value: RUN_ID_PLACEHOLDER, variable: PACKER_VARIABLES.runId }];
  const destination = hclPowerShellLiteral(step.destination, secrets);
  return {
    type: 'provisioner',
    labels: ['powershell'],
    comment: [
      ...comment,
      'isobuild uploaded the source to the staging directory before Packer ran (decisions.md 37).',
    ],
    attributes: [
      [
        'inline',
        lines.map((line) => expr(hclString(line, runId).replace(DESTINATION_PLACEHOLDER, () => destination))),
      ],
      ['valid_exit_codes', [0]],
    ],
  };
}

function deprovisionProvisioner(template: ImageTemplate, script: string): HclBlock {
  const comment = [
    "AIB's hidden generalization step (aib-reference §2.3). A customizer can replace it by writing",
    template.os === 'linux' ? '/tmp/DeprovisioningScript.sh.' : 'c:\\DeprovisioningScript.ps1.',
  ];
  if (template.os === 'linux')
    return {
      type: 'provisioner',
      labels: ['shell'],
      comment,
      attributes: [['script', artifactPath(script)], remoteFile(DEPROVISION_TAG)],
    };
  return {
    type: 'provisioner',
    labels: ['powershell'],
    comment,
    attributes: [
      ['script', artifactPath(script)],
      ['elevated_user', expr(`var.${PACKER_VARIABLES.username}`)],
      ['elevated_password', expr(`var.${PACKER_VARIABLES.winrmPassword}`)],
    ],
  };
}

/** Artifact names are generated by isobuild ([A-Za-z0-9._-] only), so the path.root interpolation is safe. */
function artifactPath(relative: string): HclValue {
  if (!/^[A-Za-z0-9._/-]+$/.test(relative)) throw new Error(`unsafe artifact path ${relative}`);
  return expr(`"\${path.root}/${relative}"`);
}

function sanitizeComment(text: string): string {
  return text.replace(/[\r\n]/g, ' ');
}
