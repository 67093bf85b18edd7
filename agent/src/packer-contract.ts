/**
 * The contract between the rendered Packer HCL and the runner that executes it: variable names (and which
 * hold secrets), step tags, the step marker, where remote scripts land, and the rendered file names.
 * render/ writes HCL from these names; run/ and packer/ read Packer's output with them. Nothing here
 * imports render/, packer/ or run/, so they can all depend on it without depending on each other.
 */

/** Variables every rendered file declares; `isobuild build` fills them through PKR_VAR_* environment variables. */
export const PACKER_VARIABLES = {
  host: 'build_host',
  port: 'build_port',
  username: 'build_username',
  sshKeyFile: 'ssh_private_key_file',
  sshPassword: 'ssh_password',
  winrmPassword: 'winrm_password',
  winrmInsecure: 'winrm_insecure',
  winrmUseNtlm: 'winrm_use_ntlm',
  connectTimeout: 'connect_timeout',
  runId: 'run_id',
} as const;

/** The fixed variables whose values are secrets: declared `sensitive`, so Packer hides them in its output. */
export const SECRET_PACKER_VARIABLES: ReadonlySet<string> = new Set([
  PACKER_VARIABLES.sshPassword,
  PACKER_VARIABLES.winrmPassword,
]);

/** The variable that carries the template's i-th securestring value (always sensitive). */
export function secureParameterVariable(index: number): string {
  return `secure_parameter_${index}`;
}

/** The three Packer runs of one build, each from its own rendered file. */
export type PackerPhase = 'customization' | 'validation' | 'deprovision';

/** Rendered file names, by phase. */
export const CUSTOMIZATION_FILE = 'customization.pkr.hcl';
export const VALIDATION_FILE = 'validation.pkr.hcl';
export const DEPROVISION_FILE = 'deprovision.pkr.hcl';
export const PACKER_FILES: Readonly<Record<PackerPhase, string>> = {
  customization: CUSTOMIZATION_FILE,
  validation: VALIDATION_FILE,
  deprovision: DEPROVISION_FILE,
};

/** The tag of the deprovision step, which has no index of its own. */
export const DEPROVISION_TAG = 'deprovision';

/** The tag of a customizer (`c00`, `c01`, …) or an in-VM validator (`v00`, …), by its index in the template. */
export function stepTag(phase: 'customization' | 'validation', index: number): string {
  return `${phase === 'validation' ? 'v' : 'c'}${String(index).padStart(2, '0')}`;
}

/** Printed (locally) before each step, so isobuild knows which step runs: Debian's Packer has no telemetry lines. */
export const STEP_MARKER = 'isobuild-step-start';

/** The shell-local command that prints the marker for the step `tag`. */
export function stepMarkerCommand(tag: string): string {
  return `echo ${STEP_MARKER} ${tag}`;
}

/** Remote script names carry the run id, so a cancelled run's processes can be found on the VM. */
export const REMOTE_SCRIPT_PREFIX = 'isobuild-';

/** Where Packer's shell provisioner puts `remote_file` (its default `remote_folder`; the HCL leaves it be). */
export const REMOTE_SCRIPT_FOLDER = '/tmp';

/** The start of every remote script name of one run: `isobuild-<runId>-`. */
function runScriptStem(runId: string): string {
  return `${REMOTE_SCRIPT_PREFIX}${runId}-`;
}

/**
 * The `remote_file` name of one step's script. Render passes the HCL interpolation of the run id variable;
 * the runner passes the run id itself.
 */
export function remoteScriptFile(runId: string, tag: string): string {
  return `${runScriptStem(runId)}${tag}.sh`;
}

/** The start every remote script path of one run shares (`/tmp/isobuild-<runId>-`): what remote cleanup looks for. */
export function remoteScriptPattern(runId: string): string {
  return `${REMOTE_SCRIPT_FOLDER}/${runScriptStem(runId)}`;
}

/** The installed Packer, as `packer version` describes it; it decides what the rendered HCL may use. */
export interface PackerInfo {
  readonly path: string;
  readonly version: string;
  /** Packer 1.7 added `required_plugins` and `packer init`; 1.6 cannot load external plugins. */
  readonly supportsPlugins: boolean;
}

/**
 * Where `isobuild build` stages Windows File customizers' sources before Packer runs (one directory per run,
 * removed at the end), and the staged name of the customizer at `index`. Render passes the HCL interpolation
 * of the run id variable; the runner passes the run id itself.
 */
export function windowsStagingDir(runId: string): string {
  return `C:\\Windows\\Temp\\isobuild-${runId}`;
}

export function stagedFileName(index: number): string {
  return `customize-${String(index).padStart(2, '0')}`;
}

/**
 * Windows File sources at least this large are staged by isobuild; smaller ones keep Packer's file
 * provisioner, which is cheaper for them: staging costs a few seconds of PowerShell start-ups per step, and
 * Packer's copy moves about 0.25 MB/s, so the two break even near 1 MB (docs/benchmarks.md).
 */
export const STAGED_FILE_MIN_BYTES = 1024 * 1024;
