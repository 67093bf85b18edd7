/**
 * Every setting isobuild reads from a flag or an ISOBUILD_* environment variable, in one table. Parsing
 * (each command's parseArgs options), the option lines of --help, the environment list that container files
 * are checked against and the README check all come from it. The loaders read settings only through it.
 */
import { DEFAULT_LIMITS } from '../artifacts/download.js';
import { DEFAULT_MAX_BLOCKS } from '../logstore/append-uploader.js';
import { DEFAULT_CONTAINER } from '../logstore/blob-store.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from '../logstore/request-deadline.js';

export type CommandName = 'validate' | 'render' | 'build' | 'logs' | 'doctor' | 'testvm' | 'shell' | 'diff';

/** How a command takes a setting: its flag, its environment variable, or both (the flag wins). */
export type Takes = 'flag' | 'env' | 'flag+env';

/** string: one value; switch: a flag without value, `VAR=1` (or true) in the environment; list: repeatable. */
export type SettingKind = 'string' | 'switch' | 'list';

/** The groups the option lines of `isobuild build --help` are printed in. */
export type SettingGroup = 'vm' | 'windows' | 'run' | 'store' | 'process';

/**
 * How a setting's option line is printed: `  --flag ARG   text   ENV`. The printed help predates this table
 * and stays byte-identical, so a few lines keep their own columns (textColumn, envColumn).
 */
export interface OptionHelp {
  /** The value placeholder after the flag (ADDRESS, DUR); none for switches. */
  readonly arg?: string;
  /** The description, one entry per printed line; for a setting without a flag, what it is. */
  readonly text: readonly string[];
  /** Where the environment variable is printed: in a column of the first (default) or last line, or as
   *  a last line "(default …; ENV)". It is printed only when the command reads it. */
  readonly envAt?: 'first' | 'last' | 'inline';
  readonly envColumn?: number;
  readonly textColumn?: number;
}

export interface Setting {
  /** The flag without its dashes; none for credentials and switches that only come from the environment. */
  readonly flag?: string;
  readonly env?: string;
  readonly kind: SettingKind;
  /** The value used when the setting is not given (none: undefined or computed), and how help shows it. */
  readonly default?: { readonly value?: string | number; readonly text: string };
  /** The option line of `isobuild build --help` (and of every command without its own in helpIn). */
  readonly help: OptionHelp;
  readonly helpIn?: { readonly [C in CommandName]?: OptionHelp };
  /** Secrets are masked wherever they could be printed, and never have a default. */
  readonly secret: boolean;
  readonly commands: { readonly [C in CommandName]?: Takes };
  readonly group: SettingGroup;
}

const BUILD = { build: 'flag+env', doctor: 'flag+env' } as const;
const BUILD_ENV = { build: 'env', doctor: 'env' } as const;
const BUILD_AND_LOGS = { build: 'flag+env', doctor: 'flag+env', logs: 'flag+env' } as const;
/** `isobuild shell` reaches a run's VM with build's credentials and finds the run with its store settings. */
const BUILD_AND_SHELL = { ...BUILD, shell: 'flag+env' } as const;
const BUILD_ENV_AND_SHELL = { ...BUILD_ENV, shell: 'env' } as const;
/** `isobuild shell` and `isobuild diff` find runs where `build` stored them. */
const STORE_SETTING = { ...BUILD_AND_LOGS, shell: 'flag+env', diff: 'flag+env' } as const;
const EVERY_COMMAND = {
  validate: 'env',
  render: 'env',
  build: 'env',
  logs: 'env',
  doctor: 'env',
  testvm: 'env',
  shell: 'env',
  diff: 'env',
} as const;
/** Render's download deadlines print their variable inside the text. */
const renderDeadline = (text: string): OptionHelp => ({ arg: 'DUR', text: [text], envAt: 'inline' });

/** The table, in the order of `isobuild build --help`. */
export const SETTINGS = {
  template: {
    env: 'ISOBUILD_TEMPLATE',
    kind: 'string',
    help: { text: ['the AIB image template (when no template file is given as an argument)'] },
    secret: false,
    commands: BUILD_ENV,
    group: 'vm',
  },
  host: {
    flag: 'host',
    env: 'ISOBUILD_HOST',
    kind: 'string',
    help: { arg: 'ADDRESS', text: ['build VM address'] },
    secret: false,
    commands: BUILD,
    group: 'vm',
  },
  port: {
    flag: 'port',
    env: 'ISOBUILD_PORT',
    kind: 'string',
    default: { text: '22, or 5986 for Windows' },
    help: { arg: 'N', text: ['SSH or WinRM port (default 22, or 5986 for Windows)'] },
    secret: false,
    commands: BUILD,
    group: 'vm',
  },
  user: {
    flag: 'user',
    env: 'ISOBUILD_USER',
    kind: 'string',
    default: { value: 'packer', text: 'packer' },
    help: { arg: 'NAME', text: ['admin user on the VM (default packer)'] },
    secret: false,
    commands: BUILD,
    group: 'vm',
  },
  sshKeyFile: {
    flag: 'ssh-key-file',
    env: 'ISOBUILD_SSH_KEY_FILE',
    kind: 'string',
    help: {
      arg: 'FILE',
      text: [
        'private key file',
        '(or the key itself in ISOBUILD_SSH_KEY, or a password in ISOBUILD_SSH_PASSWORD)',
      ],
    },
    secret: false,
    commands: BUILD_AND_SHELL,
    group: 'vm',
  },
  sshKey: {
    env: 'ISOBUILD_SSH_KEY',
    kind: 'string',
    help: { text: ['the private key itself'] },
    secret: true,
    commands: BUILD_ENV_AND_SHELL,
    group: 'vm',
  },
  sshPassword: {
    env: 'ISOBUILD_SSH_PASSWORD',
    kind: 'string',
    help: { text: ['SSH password'] },
    secret: true,
    commands: BUILD_ENV_AND_SHELL,
    group: 'vm',
  },
  winrmPassword: {
    env: 'ISOBUILD_WINRM_PASSWORD',
    kind: 'string',
    help: { text: ['Windows administrator password'] },
    secret: true,
    commands: BUILD_ENV_AND_SHELL,
    group: 'windows',
  },
  winrmAuth: {
    flag: 'winrm-auth',
    env: 'ISOBUILD_WINRM_AUTH',
    kind: 'string',
    default: { value: 'ntlm', text: 'ntlm' },
    help: { arg: 'ntlm|basic', text: ["authentication (default ntlm, as AIB's Packer uses)"], envColumn: 80 },
    secret: false,
    commands: BUILD_AND_SHELL,
    group: 'windows',
  },
  winrmCa: {
    flag: 'winrm-ca',
    env: 'ISOBUILD_WINRM_CA',
    kind: 'string',
    help: { arg: 'FILE', text: ['trust only this CA/certificate (PEM) for the VM'] },
    secret: false,
    commands: BUILD_AND_SHELL,
    group: 'windows',
  },
  winrmCertSha256: {
    flag: 'winrm-cert-sha256',
    env: 'ISOBUILD_WINRM_CERT_SHA256',
    kind: 'string',
    default: { text: "accept the VM's self-signed certificate" },
    help: {
      arg: 'HEX',
      text: [
        'accept only the certificate with this fingerprint',
        "(default: accept the VM's self-signed certificate, as AIB does)",
      ],
    },
    secret: false,
    commands: BUILD_AND_SHELL,
    group: 'windows',
  },
  windowsUpload: {
    flag: 'windows-upload',
    env: 'ISOBUILD_WINDOWS_UPLOAD',
    kind: 'string',
    default: { value: 'isobuild', text: 'isobuild' },
    help: { arg: 'WHO', text: ['isobuild (default) or packer copies File sources'] },
    secret: false,
    commands: { build: 'flag+env' },
    group: 'windows',
  },
  runId: {
    flag: 'run-id',
    env: 'ISOBUILD_RUN_ID',
    kind: 'string',
    default: { text: 'a new UUID' },
    help: { arg: 'ID', text: ['run id (default: a new UUID)'] },
    secret: false,
    commands: BUILD,
    group: 'run',
  },
  resume: {
    flag: 'resume',
    env: 'ISOBUILD_RESUME',
    kind: 'string',
    help: {
      arg: 'RUN_ID',
      text: ['continue that failed run on its VM', '(from the step that did not succeed)'],
    },
    secret: false,
    commands: { build: 'flag+env' },
    group: 'run',
  },
  fromStep: {
    flag: 'from-step',
    env: 'ISOBUILD_FROM_STEP',
    kind: 'string',
    help: {
      arg: 'N',
      text: ['start at step N (number or step name), skipping', 'the steps before it'],
    },
    secret: false,
    commands: { build: 'flag+env' },
    group: 'run',
  },
  workDir: {
    flag: 'work-dir',
    env: 'ISOBUILD_WORK_DIR',
    kind: 'string',
    default: { value: '.work/runs', text: '.work/runs' },
    help: { arg: 'DIR', text: ['where run directories go (default .work/runs)'] },
    helpIn: {
      logs: {
        arg: 'DIR',
        text: ["the build's work directory, where the embedded store keeps its data", '(default .work/runs)'],
        envAt: 'last',
        envColumn: 83,
      },
    },
    secret: false,
    commands: STORE_SETTING,
    group: 'run',
  },
  readyTimeout: {
    flag: 'ready-timeout',
    env: 'ISOBUILD_READY_TIMEOUT',
    kind: 'string',
    default: { value: 5 * 60_000, text: '5m' }, // Packer's own ssh_timeout default
    help: { arg: 'DUR', text: ['how long to wait for SSH or WinRM (default 5m)'] },
    secret: false,
    commands: BUILD_AND_SHELL,
    group: 'run',
  },
  buildTimeout: {
    flag: 'build-timeout',
    env: 'ISOBUILD_BUILD_TIMEOUT',
    kind: 'string',
    default: { text: "the template's buildTimeoutInMinutes" },
    help: { arg: 'DUR', text: ["override the template's buildTimeoutInMinutes"] },
    secret: false,
    // doctor accepts every build flag, but a build timeout means nothing to it.
    commands: { build: 'flag+env', doctor: 'flag' },
    group: 'run',
  },
  killGrace: {
    flag: 'kill-grace',
    env: 'ISOBUILD_KILL_GRACE',
    kind: 'string',
    default: { value: 15 * 60_000, text: '15m' }, // longer than Packer's 10-minute Azure cleanup
    help: { arg: 'DUR', text: ["Packer's cleanup time after a cancel (default 15m)"] },
    secret: false,
    commands: BUILD,
    group: 'run',
  },
  packer: {
    flag: 'packer',
    env: 'ISOBUILD_PACKER',
    kind: 'string',
    default: { value: 'packer', text: 'packer on PATH' },
    help: { arg: 'PATH', text: ['Packer binary (default packer on PATH)'] },
    helpIn: { render: { arg: 'PATH', text: ['Packer binary (default: packer on PATH)'] } },
    secret: false,
    commands: { ...BUILD, render: 'flag' },
    group: 'run',
  },
  topology: {
    flag: 'topology',
    env: 'ISOBUILD_TOPOLOGY',
    kind: 'string',
    default: { text: 'from vmProfile.vnetConfig' },
    help: { arg: 'direct|proxy', text: ['override the network path vnetConfig implies'], envColumn: 78 },
    secret: false,
    commands: BUILD,
    group: 'run',
  },
  proxyHost: {
    flag: 'proxy-host',
    env: 'ISOBUILD_PROXY_HOST',
    kind: 'string',
    help: { arg: 'ADDRESS', text: ['isobuild-proxy for the proxy topology (:60001/60000)'], envColumn: 80 },
    helpIn: {
      shell: { arg: 'ADDRESS', text: ['replace the isobuild-proxy a proxy-topology run went through'] },
    },
    secret: false,
    // shell: only to replace the proxy a run recorded (a flag: a build's variable must not redirect it).
    commands: { ...BUILD, shell: 'flag' },
    group: 'run',
  },
  skipDeprovision: {
    flag: 'skip-deprovision',
    env: 'ISOBUILD_SKIP_DEPROVISION',
    kind: 'switch',
    default: { text: 'off' },
    help: { text: ["leave out AIB's deprovision step (no Azure agent)"] },
    helpIn: { render: { text: ["leave out AIB's deprovision step (for VMs without the Azure agent)"] } },
    secret: false,
    commands: { ...BUILD, render: 'flag' },
    group: 'run',
  },
  noSbom: {
    flag: 'no-sbom',
    env: 'ISOBUILD_NO_SBOM',
    kind: 'switch',
    default: { text: 'off' },
    help: { text: ['no software inventory, no SBOM (sbom.cdx.json)'] },
    secret: false,
    commands: { build: 'flag+env' },
    group: 'run',
  },
  rewriteUri: {
    flag: 'rewrite-uri',
    env: 'ISOBUILD_REWRITE_URI',
    kind: 'list',
    help: { arg: 'FROM=TO', text: ['fetch artifact URLs from a mirror (repeatable)'] },
    helpIn: {
      render: {
        arg: 'FROM=TO',
        text: [
          'fetch URLs starting with FROM from TO instead (repeatable; longest FROM',
          'wins); TO may be a URL or a local directory',
        ],
      },
    },
    secret: false,
    commands: { ...BUILD, render: 'flag' },
    group: 'run',
  },
  downloadTimeout: {
    flag: 'download-timeout',
    env: 'ISOBUILD_DOWNLOAD_TIMEOUT',
    kind: 'string',
    default: { value: DEFAULT_LIMITS.attemptTimeoutMs, text: '5m' },
    help: {
      arg: 'DUR',
      text: ['limit on one artifact download attempt: connect,', 'response and transfer (default 5m)'],
    },
    helpIn: { render: renderDeadline('limit on one download attempt: connect, response and transfer') },
    secret: false,
    commands: { ...BUILD, render: 'flag+env' },
    group: 'run',
  },
  downloadStallTimeout: {
    flag: 'download-stall-timeout',
    env: 'ISOBUILD_DOWNLOAD_STALL_TIMEOUT',
    kind: 'string',
    default: { value: DEFAULT_LIMITS.stallTimeoutMs, text: '60s' },
    help: { arg: 'DUR', text: ['an attempt fails when under 1 KiB arrives in DUR', '(default 60s)'] },
    helpIn: { render: renderDeadline('an attempt fails when under 1 KiB arrives in DUR') },
    secret: false,
    commands: { ...BUILD, render: 'flag+env' },
    group: 'run',
  },
  downloadTotalTimeout: {
    flag: 'download-total-timeout',
    env: 'ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT',
    kind: 'string',
    default: { value: DEFAULT_LIMITS.totalTimeoutMs, text: '15m' },
    help: {
      arg: 'DUR',
      text: ['limit on all attempts (up to 10) of one artifact', 'together (default 15m)'],
    },
    helpIn: { render: renderDeadline('limit on all attempts (up to 10) of one artifact together') },
    secret: false,
    commands: { ...BUILD, render: 'flag+env' },
    group: 'run',
  },
  storageConnectionString: {
    flag: 'storage-connection-string',
    env: 'ISOBUILD_STORAGE_CONNECTION_STRING',
    kind: 'string',
    help: { arg: 'S', text: ['Blob Storage connection string'], textColumn: 34, envColumn: 78 },
    secret: true,
    commands: STORE_SETTING,
    group: 'store',
  },
  storageSasUrl: {
    flag: 'storage-sas-url',
    env: 'ISOBUILD_STORAGE_SAS_URL',
    kind: 'string',
    help: { arg: 'URL', text: ['container or account SAS URL'] },
    secret: true,
    commands: STORE_SETTING,
    group: 'store',
  },
  storageAccountUrl: {
    flag: 'storage-account-url',
    env: 'ISOBUILD_STORAGE_ACCOUNT_URL',
    kind: 'string',
    help: {
      arg: 'URL',
      text: ['account URL, signed in with DefaultAzureCredential', '(managed identity in ACI)'],
    },
    secret: false,
    commands: STORE_SETTING,
    group: 'store',
  },
  storageContainer: {
    flag: 'storage-container',
    env: 'ISOBUILD_STORAGE_CONTAINER',
    kind: 'string',
    default: { value: DEFAULT_CONTAINER, text: DEFAULT_CONTAINER },
    help: { arg: 'NAME', text: [`container (default ${DEFAULT_CONTAINER})`] },
    secret: false,
    commands: STORE_SETTING,
    group: 'store',
  },
  storageTimeout: {
    flag: 'storage-timeout',
    env: 'ISOBUILD_STORAGE_TIMEOUT',
    kind: 'string',
    default: { value: DEFAULT_REQUEST_TIMEOUT_MS, text: '15s' },
    help: { arg: 'DUR', text: ['deadline of each request to the store (default 15s)'] },
    secret: false,
    commands: STORE_SETTING,
    group: 'store',
  },
  localLogsOnly: {
    flag: 'local-logs-only',
    env: 'ISOBUILD_LOCAL_LOGS_ONLY',
    kind: 'switch',
    default: { text: 'off' },
    help: { text: ['keep logs in the run directory only'] },
    secret: false,
    commands: BUILD,
    group: 'store',
  },
  logDrainTimeout: {
    flag: 'log-drain-timeout',
    env: 'ISOBUILD_LOG_DRAIN_TIMEOUT',
    kind: 'string',
    default: { value: 60_000, text: '1m' },
    help: { arg: 'DUR', text: ['time to upload the last lines at the end (default 1m)'] },
    secret: false,
    commands: BUILD,
    group: 'store',
  },
  logSpoolLimit: {
    flag: 'log-spool-limit',
    env: 'ISOBUILD_LOG_SPOOL_LIMIT',
    kind: 'string',
    default: { value: 1024 ** 3, text: '1GiB' },
    help: { arg: 'SIZE', text: ['log bytes kept waiting for storage (default 1GiB)'] },
    secret: false,
    commands: BUILD,
    group: 'store',
  },
  logMaxBlocks: {
    flag: 'log-max-blocks',
    env: 'ISOBUILD_LOG_MAX_BLOCKS',
    kind: 'string',
    default: { value: DEFAULT_MAX_BLOCKS, text: String(DEFAULT_MAX_BLOCKS) },
    help: {
      arg: 'N',
      text: ['blocks per log blob before customization.1.log …', '(default 40000; Azure allows 50,000)'],
    },
    secret: false,
    commands: BUILD,
    group: 'store',
  },
  logFormat: {
    flag: 'log-format',
    env: 'ISOBUILD_LOG_FORMAT',
    kind: 'string',
    default: { value: 'text', text: 'text' },
    help: {
      arg: 'text|json',
      text: [
        'text: progress on stderr (default); json: one pino',
        'line per event on stdout, for container logs',
      ],
    },
    secret: false,
    commands: BUILD,
    group: 'store',
  },
  debug: {
    env: 'ISOBUILD_DEBUG',
    kind: 'switch',
    default: { text: 'off' },
    help: { text: ['stack traces for internal errors'] },
    secret: false,
    commands: EVERY_COMMAND,
    group: 'process',
  },
} as const satisfies Record<string, Setting>;

export type SettingKey = keyof typeof SETTINGS;

/** The table as a list of rows, each with its key. */
export const SETTING_ROWS: readonly (Setting & { readonly key: SettingKey })[] = Object.entries(SETTINGS).map(
  ([key, setting]) => ({ key: key as SettingKey, ...setting }),
);

export function setting(key: SettingKey): Setting {
  return SETTINGS[key];
}

/** Whether a command reads the setting's flag (`flag`) or its environment variable (`env`). */
export function takes(row: Setting, command: CommandName, form: 'flag' | 'env'): boolean {
  const how = row.commands[command];
  return how !== undefined && how.includes(form) && (form === 'flag' ? row.flag : row.env) !== undefined;
}

/** How the variable is written in help and the README: switches as VAR=1. */
export function envDisplay(row: Setting): string | undefined {
  if (row.env === undefined) return undefined;
  return row.kind === 'switch' ? `${row.env}=1` : row.env;
}

type Table = typeof SETTINGS;
type FlagKeysOf<C extends CommandName> = {
  [K in keyof Table]: Table[K] extends { flag: string; commands: { [P in C]: 'flag' | 'flag+env' } }
    ? K
    : never;
}[keyof Table];
type ParseOption<K extends keyof Table> = Table[K]['kind'] extends 'switch'
  ? { type: 'boolean' }
  : Table[K]['kind'] extends 'list'
    ? { type: 'string'; multiple: true }
    : { type: 'string' };

/** A command's parseArgs options for the settings it takes as flags, typed so parseArgs types the values. */
export type CommandOptions<C extends CommandName> = {
  [K in FlagKeysOf<C> as Table[K] extends { flag: infer F extends string } ? F : never]: ParseOption<K>;
};

export function commandOptions<C extends CommandName>(command: C): CommandOptions<C> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: true }> = {};
  for (const row of SETTING_ROWS) {
    if (!takes(row, command, 'flag') || row.flag === undefined) continue;
    if (row.kind === 'switch') options[row.flag] = { type: 'boolean' };
    else if (row.kind === 'list') options[row.flag] = { type: 'string', multiple: true };
    else options[row.flag] = { type: 'string' };
  }
  return options as CommandOptions<C>;
}

/**
 * Every ISOBUILD_* variable `isobuild build` reads, including credentials and switches that have no flag
 * form (container files and the ACI template are checked against this list).
 */
export const BUILD_ENVIRONMENT: readonly string[] = SETTING_ROWS.filter((row) =>
  takes(row, 'build', 'env'),
).map((row) => row.env!);
