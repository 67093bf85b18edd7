/**
 * Configuration of one build, from flags and ISOBUILD_* environment variables (flags win), loaded once
 * into one validated, frozen object. Every problem is reported at once. Credentials become Secrets.
 */
import { randomUUID } from 'node:crypto';
import { readInputFile } from '../read-input-file.js';
import { resolve } from 'node:path';
import type { DownloadDeadlines } from '../artifacts/download.js';
import { parseRewrite, type UriRewrite } from '../artifacts/rewrite-uri.js';
import { IsobuildError, type Problem } from '../errors.js';
import { MIN_SECRET_LENGTH, isMaskable } from '../mask-secrets.js';
import { parseDuration, readDuration } from '../duration.js';
import { hideUrlSecrets } from '../hide-query.js';
import type { StoreAccess } from '../logstore/blob-store.js';
import { Secret } from '../secret.js';
import { normalizeFingerprint, type TlsPolicy } from '../winrm/transport.js';
import {
  listSetting,
  rawSetting,
  settingReader,
  switchSetting,
  type Read,
  type SettingFlags,
  type SettingInput,
} from './read-setting.js';
import { SETTINGS, type SettingKey } from './settings-table.js';

export interface BuildConfig {
  readonly host: string;
  /** Communicator port; undefined means the OS default (22 for SSH, 5986 for WinRM). */
  readonly port?: number;
  readonly user: string;
  readonly sshKeyFile?: string;
  /** Private key content (ISOBUILD_SSH_KEY), for containers that get it from a secret store. */
  readonly sshPrivateKey?: Secret;
  readonly sshPassword?: Secret;
  readonly winrmPassword?: Secret;
  /** WinRM authentication: NTLM (Packer's AIB setting) or Basic. */
  readonly winrmAuth: 'ntlm' | 'basic';
  /**
   * Who copies Windows File customizers' sources to the VM: isobuild (its WinRM upload, staged before Packer
   * runs and moved at the step's position) or Packer's file provisioner.
   */
  readonly windowsUpload: 'isobuild' | 'packer';
  /** How the WinRM certificate is checked: insecure (AIB's self-signed VMs), a pinned CA, or a fingerprint. */
  readonly winrmTls: TlsPolicy;
  readonly runId: string;
  readonly workDir: string;
  readonly readyTimeoutMs: number;
  /** How long Packer gets to clean up after SIGTERM before it is killed. */
  readonly killGraceMs: number;
  readonly packerPath: string;
  readonly skipDeprovision: boolean;
  /** Collect the VM's software inventory before and after customizing (the SBOM); off with --no-sbom. */
  readonly sbom: boolean;
  readonly rewrites: readonly UriRewrite[];
  /** Artifact download deadlines: per attempt, without progress, all attempts together. */
  readonly downloadDeadlines: DownloadDeadlines;
  /** Overrides the topology vmProfile.vnetConfig implies. */
  readonly topology?: 'direct' | 'proxy';
  /** The isobuild-proxy (AIB's proxy VM) for the proxy topology. */
  readonly proxyHost?: string;
  /** Where logs, status and the bundle go; undefined means the embedded Azurite under the work dir. */
  readonly store?: StoreAccess;
  readonly storeContainer: string;
  /** Keep logs on local disk only (no store at all). */
  readonly localLogsOnly: boolean;
  /** How long the end of a build waits for the last log lines to reach storage. */
  readonly logDrainMs: number;
  /** Bound on log bytes waiting for storage; beyond it lines are dropped and counted. */
  readonly logSpoolBytes: number;
  /** text: readable progress on stderr; json: pino lines on stdout (container logs). */
  readonly logFormat: 'text' | 'json';
  /** Blocks per log blob before it rolls over (Azure allows 50,000). */
  readonly logMaxBlocks: number;
  /** Deadline of each request to the log store (the default when unset). */
  readonly storageTimeoutMs?: number;
}

/** Every ISOBUILD_* variable `isobuild build` reads (from the settings table). */
export { BUILD_ENVIRONMENT } from './settings-table.js';

export const DEFAULT_READY_TIMEOUT_MS = SETTINGS.readyTimeout.default.value;
export const DEFAULT_KILL_GRACE_MS = SETTINGS.killGrace.default.value;
export const DEFAULT_LOG_DRAIN_MS = SETTINGS.logDrainTimeout.default.value;
export const DEFAULT_WORK_DIR = SETTINGS.workDir.default.value;
export const DEFAULT_LOG_SPOOL_BYTES = SETTINGS.logSpoolLimit.default.value;
/** What a run id may be: it names the run directory and the blob prefix (`isobuild logs` checks it too). */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Parsed flags of a command that takes build settings. */
export type BuildFlags = SettingFlags;

type Bad = (path: string, message: string) => void;

export function loadBuildConfig(flags: BuildFlags, env: NodeJS.ProcessEnv, cwd = process.cwd()): BuildConfig {
  const problems: Problem[] = [];
  const bad: Bad = (path, message) => {
    problems.push({ severity: 'error', path, message });
  };
  const read = settingReader(flags, env);
  // Problems are reported in this order, and the config's fields keep it (effective-config.json).
  const vm = readVmAccess(read, env, bad, cwd);
  const run = readRunSettings(read, flags, env, bad, cwd);
  const logs = readLogSettings(read, flags, env, bad);
  const winrm = readWinRm(read, bad, cwd);
  const logMaxBlocks = readMaxBlocks(read, bad);
  if (problems.length > 0) {
    throw new IsobuildError(
      'usage',
      `the build configuration has ${problems.length} problem(s); see isobuild build --help.`,
      { problems },
    );
  }
  return Object.freeze({ ...vm, ...run, ...logs, logMaxBlocks, ...winrm });
}

type VmAccess = Pick<
  BuildConfig,
  'host' | 'port' | 'user' | 'sshKeyFile' | 'sshPrivateKey' | 'sshPassword' | 'winrmPassword'
>;

/** The build VM's address, port, user and credentials. */
function readVmAccess(read: Read, env: NodeJS.ProcessEnv, bad: Bad, cwd: string): VmAccess {
  const host = read('host');
  if (!host.value)
    bad(
      '--host',
      'the build VM address is missing: pass --host or set ISOBUILD_HOST (e.g. 10.0.0.4, or a test VM from "isobuild testvm start").',
    );
  const port = read('port');
  let portNumber: number | undefined;
  if (port.value !== undefined) {
    portNumber = Number(port.value);
    if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535)
      bad(port.source, `"${port.value}" is not a TCP port (1–65535).`);
  }
  const user = read('user').value ?? SETTINGS.user.default.value;

  const keyFile = read('sshKeyFile').value;
  const keyContent = rawSetting({}, env, 'sshKey');
  const sshPassword = rawSetting({}, env, 'sshPassword');
  const winrmPassword = rawSetting({}, env, 'winrmPassword');
  if (keyFile && keyContent)
    bad(
      SETTINGS.sshKey.env,
      'set either an SSH key file (--ssh-key-file / ISOBUILD_SSH_KEY_FILE) or the key itself (ISOBUILD_SSH_KEY), not both.',
    );
  // A credential this short could not be masked in logs without hiding those characters everywhere.
  for (const key of ['sshPassword', 'winrmPassword', 'sshKey'] as const) {
    const value = rawSetting({}, env, key);
    if (value && !isMaskable(value))
      bad(
        SETTINGS[key].env,
        `the value is shorter than ${MIN_SECRET_LENGTH} characters, too short to mask in logs; set a longer one.`,
      );
  }
  return {
    host: host.value ?? '',
    ...(portNumber !== undefined ? { port: portNumber } : {}),
    user,
    ...(keyFile ? { sshKeyFile: resolve(cwd, keyFile) } : {}),
    ...(keyContent ? { sshPrivateKey: new Secret(keyContent) } : {}),
    ...(sshPassword ? { sshPassword: new Secret(sshPassword) } : {}),
    ...(winrmPassword ? { winrmPassword: new Secret(winrmPassword) } : {}),
  };
}

type RunSettings = Pick<
  BuildConfig,
  | 'runId'
  | 'workDir'
  | 'readyTimeoutMs'
  | 'killGraceMs'
  | 'packerPath'
  | 'skipDeprovision'
  | 'sbom'
  | 'rewrites'
  | 'downloadDeadlines'
  | 'topology'
  | 'proxyHost'
>;

/** The run's id, directory, deadlines, Packer, artifact sources and network path. */
function readRunSettings(
  read: Read,
  flags: BuildFlags,
  env: NodeJS.ProcessEnv,
  bad: Bad,
  cwd: string,
): RunSettings {
  const runId = read('runId').value ?? randomUUID();
  if (!RUN_ID_PATTERN.test(runId))
    bad(
      read('runId').source,
      `"${runId}" is not a usable run id: use 1–64 letters, digits, -, _ or . (starting with a letter or digit).`,
    );
  const readyTimeoutMs = duration(read('readyTimeout'), DEFAULT_READY_TIMEOUT_MS, bad);
  const killGraceMs = duration(read('killGrace'), DEFAULT_KILL_GRACE_MS, bad);

  const rewrites: UriRewrite[] = [];
  for (const spec of listSetting(flags, env, 'rewriteUri', 'build')) {
    try {
      rewrites.push(parseRewrite(spec, cwd));
    } catch (error) {
      bad(`--${SETTINGS.rewriteUri.flag}`, (error as Error).message);
    }
  }
  const downloadDeadlines = readDownloadDeadlines(read, bad);

  const topology = read('topology');
  if (topology.value !== undefined && topology.value !== 'direct' && topology.value !== 'proxy') {
    bad(
      topology.source,
      `"${topology.value}" is not a topology: use direct (to the build VM) or proxy (through isobuild-proxy).`,
    );
  }
  const proxyHost = read('proxyHost').value;
  return {
    runId,
    workDir: resolve(cwd, read('workDir').value ?? DEFAULT_WORK_DIR),
    readyTimeoutMs,
    killGraceMs,
    packerPath: read('packer').value ?? SETTINGS.packer.default.value,
    skipDeprovision: switchSetting(flags, env, 'skipDeprovision'),
    sbom: !switchSetting(flags, env, 'noSbom'),
    rewrites,
    downloadDeadlines,
    ...(topology.value === 'direct' || topology.value === 'proxy' ? { topology: topology.value } : {}),
    ...(proxyHost ? { proxyHost } : {}),
  };
}

type LogSettings = Pick<
  BuildConfig,
  | 'store'
  | 'storeContainer'
  | 'storageTimeoutMs'
  | 'localLogsOnly'
  | 'logDrainMs'
  | 'logSpoolBytes'
  | 'logFormat'
>;

/** Where the logs go and how they get there. */
function readLogSettings(read: Read, flags: BuildFlags, env: NodeJS.ProcessEnv, bad: Bad): LogSettings {
  const storage = readStoreAccess(read, bad);
  const storeContainer = readContainer(read, bad);
  const storageTimeoutMs = readStorageTimeout(read, bad);
  const localLogsOnly = switchSetting(flags, env, 'localLogsOnly');
  const logDrainMs = duration(read('logDrainTimeout'), DEFAULT_LOG_DRAIN_MS, bad);
  const spool = read('logSpoolLimit');
  const logSpoolBytes = spool.value === undefined ? DEFAULT_LOG_SPOOL_BYTES : parseSize(spool.value);
  if (logSpoolBytes === undefined)
    bad(spool.source, `"${spool.value}" is not a size; write it like 512MiB or 2GiB.`);

  const logFormat = read('logFormat');
  if (logFormat.value !== undefined && logFormat.value !== 'text' && logFormat.value !== 'json')
    bad(
      logFormat.source,
      `"${logFormat.value}" is not a log format: use text (terminals) or json (containers).`,
    );
  return {
    ...(storage ? { store: storage } : {}),
    storeContainer,
    storageTimeoutMs,
    localLogsOnly,
    logDrainMs,
    logSpoolBytes: logSpoolBytes ?? DEFAULT_LOG_SPOOL_BYTES,
    logFormat: logFormat.value === 'json' ? 'json' : 'text',
  };
}

/** WinRM's authentication and how its certificate is checked. */
function readWinRm(
  read: Read,
  bad: Bad,
  cwd: string,
): Pick<BuildConfig, 'winrmAuth' | 'winrmTls' | 'windowsUpload'> {
  const winrmAuth = read('winrmAuth');
  if (winrmAuth.value !== undefined && winrmAuth.value !== 'ntlm' && winrmAuth.value !== 'basic')
    bad(winrmAuth.source, `"${winrmAuth.value}" is not a WinRM authentication: use ntlm or basic.`);
  const winrmTls = readWinRmTls(read, bad, cwd);
  const upload = read('windowsUpload');
  if (upload.value !== undefined && upload.value !== 'isobuild' && upload.value !== 'packer')
    bad(
      upload.source,
      `"${upload.value}" is not a way to copy File steps: use isobuild (its own WinRM upload) or packer (Packer's file provisioner).`,
    );
  return {
    winrmAuth: winrmAuth.value === 'basic' ? 'basic' : 'ntlm',
    winrmTls,
    windowsUpload: upload.value === 'packer' ? 'packer' : 'isobuild',
  };
}

function readMaxBlocks(read: Read, bad: Bad): number {
  const maxBlocks = read('logMaxBlocks');
  const logMaxBlocks =
    maxBlocks.value === undefined ? SETTINGS.logMaxBlocks.default.value : Number(maxBlocks.value);
  if (!Number.isInteger(logMaxBlocks) || logMaxBlocks < 1 || logMaxBlocks > 49_000)
    bad(
      maxBlocks.source,
      `"${maxBlocks.value}" is not a block count from 1 to 49000 (Azure allows 50,000 per blob).`,
    );
  return logMaxBlocks;
}

/** Insecure by default (AIB's build VMs have self-signed certificates); a CA file or a fingerprint pins it. */
function readWinRmTls(read: Read, bad: (path: string, message: string) => void, cwd: string): TlsPolicy {
  const ca = read('winrmCa');
  const fingerprint = read('winrmCertSha256');
  if (ca.value !== undefined && fingerprint.value !== undefined) {
    bad(
      `${ca.source} / ${fingerprint.source}`,
      'pin the WinRM certificate one way: a CA file or a fingerprint.',
    );
    return { kind: 'insecure' };
  }
  if (ca.value !== undefined) {
    try {
      const pem = readInputFile(resolve(cwd, ca.value), {
        label: `the CA file ${ca.value}`,
        maxBytes: 1024 * 1024,
        code: 'usage',
        hint: 'pass a PEM file.',
      });
      return { kind: 'ca', ca: pem.toString('utf8') };
    } catch (error) {
      bad(ca.source, (error as Error).message);
    }
  }
  if (fingerprint.value !== undefined) {
    if (normalizeFingerprint(fingerprint.value).length !== 64)
      bad(
        fingerprint.source,
        `"${fingerprint.value}" is not a SHA-256 fingerprint (64 hex digits, colons allowed).`,
      );
    return { kind: 'fingerprint', sha256: fingerprint.value };
  }
  return { kind: 'insecure' };
}

export interface LogStoreConfig {
  readonly store?: StoreAccess;
  readonly storeContainer: string;
  readonly workDir: string;
  /** Deadline of each request to the store (the default when unset). */
  readonly storageTimeoutMs?: number;
}

/** The log store settings alone, read the same way as for a build (for `isobuild logs`). */
export function loadLogStoreConfig(
  flags: BuildFlags,
  env: NodeJS.ProcessEnv,
  cwd = process.cwd(),
): LogStoreConfig {
  const problems: Problem[] = [];
  const bad = (path: string, message: string): void => {
    problems.push({ severity: 'error', path, message });
  };
  const read = settingReader(flags, env);
  const store = readStoreAccess(read, bad);
  const storeContainer = readContainer(read, bad);
  const storageTimeoutMs = readStorageTimeout(read, bad);
  if (problems.length > 0)
    throw new IsobuildError('usage', `the log store configuration has ${problems.length} problem(s).`, {
      problems,
    });
  return Object.freeze({
    ...(store ? { store } : {}),
    storeContainer,
    workDir: resolve(cwd, read('workDir').value ?? DEFAULT_WORK_DIR),
    storageTimeoutMs,
  });
}

/** The artifact download deadlines alone, read the same way as for a build (for `isobuild render`). */
export function loadDownloadDeadlines(flags: BuildFlags, env: NodeJS.ProcessEnv): DownloadDeadlines {
  const problems: Problem[] = [];
  const bad = (path: string, message: string): void => {
    problems.push({ severity: 'error', path, message });
  };
  const deadlines = readDownloadDeadlines(settingReader(flags, env), bad);
  if (problems.length > 0)
    throw new IsobuildError('usage', `the download settings have ${problems.length} problem(s).`, {
      problems,
    });
  return deadlines;
}

function readDownloadDeadlines(read: Read, bad: (path: string, message: string) => void): DownloadDeadlines {
  const positive = (key: SettingKey, fallback: number): number => {
    const input = read(key);
    const ms = duration(input, fallback, bad);
    if (ms > 0) return ms;
    bad(input.source, `"${input.value}" is too short: a download deadline must be longer than zero.`);
    return fallback;
  };
  return Object.freeze({
    attemptTimeoutMs: positive('downloadTimeout', SETTINGS.downloadTimeout.default.value),
    stallTimeoutMs: positive('downloadStallTimeout', SETTINGS.downloadStallTimeout.default.value),
    totalTimeoutMs: positive('downloadTotalTimeout', SETTINGS.downloadTotalTimeout.default.value),
  });
}

/** How long one request to the log store may take; one that takes longer is tried again afresh. */
function readStorageTimeout(read: Read, bad: (path: string, message: string) => void): number {
  const input = read('storageTimeout');
  const ms = duration(input, SETTINGS.storageTimeout.default.value, bad);
  if (ms < 100)
    bad(
      input.source,
      `"${input.value}" is too short for a storage request: use 100ms or more (default 15s).`,
    );
  return ms;
}

function readContainer(read: Read, bad: (path: string, message: string) => void): string {
  const name = read('storageContainer').value ?? SETTINGS.storageContainer.default.value;
  if (!/^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(name))
    bad(
      read('storageContainer').source,
      `"${name}" is not a blob container name: 3–63 lowercase letters, digits and single hyphens.`,
    );
  return name;
}

/** At most one of the three ways to reach Blob Storage; none means the embedded Azurite. */
export function readStoreAccess(
  read: Read,
  bad: (path: string, message: string) => void,
): StoreAccess | undefined {
  const connectionString = read('storageConnectionString');
  const sasUrl = read('storageSasUrl');
  const accountUrl = read('storageAccountUrl');
  const given = [connectionString, sasUrl, accountUrl].filter((s) => s.value !== undefined);
  if (given.length > 1) {
    bad(
      given.map((s) => s.source).join(' / '),
      'configure the log store one way only: a connection string, a SAS URL or an account URL.',
    );
    return undefined;
  }
  if (connectionString.value !== undefined) {
    for (const problem of connectionStringProblems(connectionString.value))
      bad(connectionString.source, problem);
    return { kind: 'connection-string', connectionString: new Secret(connectionString.value) };
  }
  if (sasUrl.value !== undefined) {
    const url = parseHttpUrl(sasUrl.value);
    if (!url || !url.searchParams.has('sig'))
      bad(
        sasUrl.source,
        'expected a SAS URL such as https://ACCOUNT.blob.core.windows.net/packerlogs?sv=…&sig=… (with its signature).',
      );
    return { kind: 'sas-url', url: new Secret(sasUrl.value) };
  }
  if (accountUrl.value !== undefined) {
    const url = parseHttpUrl(accountUrl.value);
    if (!url || url.search !== '')
      bad(
        accountUrl.source,
        `"${hideUrlSecrets(accountUrl.value)}" is not an account URL such as https://ACCOUNT.blob.core.windows.net (no query; for a SAS use --storage-sas-url).`,
      );
    return { kind: 'account-url', url: accountUrl.value };
  }
  return undefined;
}

const CONNECTION_STRING_KEYS = new Set(
  [
    'DefaultEndpointsProtocol',
    'AccountName',
    'AccountKey',
    'EndpointSuffix',
    'BlobEndpoint',
    'QueueEndpoint',
    'TableEndpoint',
    'FileEndpoint',
    'SharedAccessSignature',
    'UseDevelopmentStorage',
    'DevelopmentStorageProxyUri',
  ].map((key) => key.toLowerCase()),
);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Everything that makes a connection string unusable, found before the build starts (a store that was
 * configured explicitly and cannot work is invalid input, not a warning mid-build). Messages name the
 * keys, never a value: the string holds the account key.
 */
export function connectionStringProblems(text: string): string[] {
  const fields = new Map<string, string>();
  const problems: string[] = [];
  const parts = text
    .split(';')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const [index, part] of parts.entries()) {
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : '';
    if (!key) {
      problems.push('it has a part that is not KEY=VALUE; parts are separated by ";".');
      continue;
    }
    if (!CONNECTION_STRING_KEYS.has(key.toLowerCase())) {
      // Keys are short words; anything else may be a pasted secret and is not repeated.
      const named = /^[A-Za-z]{1,32}$/.test(key) ? `"${key}"` : `part ${index + 1}`;
      problems.push(`${named} is not a connection string key (AccountName, AccountKey, BlobEndpoint, …).`);
      continue;
    }
    fields.set(key.toLowerCase(), part.slice(eq + 1).trim());
  }
  if (problems.length > 0) return problems;
  const get = (key: string): string | undefined => fields.get(key.toLowerCase());
  if (get('UseDevelopmentStorage')?.toLowerCase() === 'true') return [];
  const protocol = get('DefaultEndpointsProtocol');
  if (protocol !== undefined && !/^https?$/i.test(protocol))
    problems.push('DefaultEndpointsProtocol must be https or http.');
  for (const key of ['BlobEndpoint', 'QueueEndpoint', 'TableEndpoint', 'FileEndpoint']) {
    const value = get(key);
    if (value !== undefined && !parseHttpUrl(value))
      problems.push(`${key} is not an http(s) URL such as https://ACCOUNT.blob.core.windows.net.`);
  }
  const name = get('AccountName');
  const key = get('AccountKey');
  const sas = get('SharedAccessSignature');
  if (key !== undefined && (key === '' || !BASE64.test(key)))
    problems.push("AccountKey is not base64; copy the key again from the storage account's access keys.");
  if (key !== undefined && name === undefined) problems.push('AccountKey needs an AccountName.');
  if (sas !== undefined && !new URLSearchParams(sas.replace(/^\?/, '')).has('sig'))
    problems.push('SharedAccessSignature has no signature (sig=…).');
  if (name === undefined && get('BlobEndpoint') === undefined)
    problems.push(
      'it names no account: give AccountName=…;AccountKey=… or BlobEndpoint=…;SharedAccessSignature=….',
    );
  else if (key === undefined && sas === undefined)
    problems.push(
      'it has no credential: add AccountKey=… or SharedAccessSignature=… (or use --storage-account-url with a managed identity).',
    );
  return problems;
}

function parseHttpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** Sizes like 512MiB, 2GiB, 1048576 (bytes). */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)\s*(B|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }[(match[2] ?? 'b').toLowerCase()] ?? 1;
  const bytes = Number(match[1]) * unit;
  return bytes > 0 ? bytes : undefined;
}

/** Every secret value of a config, for the masker. */
export function configSecrets(config: BuildConfig): string[] {
  return [
    ...[config.sshPrivateKey, config.sshPassword, config.winrmPassword].flatMap((s) =>
      s ? [s.reveal()] : [],
    ),
    ...storeSecrets(config.store),
  ];
}

/** The store's credentials, and the parts of them that travel alone (a SAS signature, an account key). */
export function storeSecrets(store: StoreAccess | undefined): string[] {
  if (!store || store.kind === 'account-url') return [];
  const whole = store.kind === 'connection-string' ? store.connectionString.reveal() : store.url.reveal();
  const parts: string[] = [whole];
  if (store.kind === 'connection-string') {
    const key = /(?:^|;)\s*AccountKey=([^;]+)/i.exec(whole)?.[1];
    const sas = /(?:^|;)\s*SharedAccessSignature=([^;]+)/i.exec(whole)?.[1];
    if (key) parts.push(key);
    if (sas) parts.push(sas, ...sasSignatures(sas));
  } else {
    const query = whole.includes('?') ? whole.slice(whole.indexOf('?') + 1) : '';
    parts.push(query, ...sasSignatures(query));
  }
  return parts.filter((p) => p.length >= 8);
}

function sasSignatures(query: string): string[] {
  const sig = new URLSearchParams(query).get('sig');
  return sig ? [sig] : [];
}

function duration(
  input: SettingInput,
  fallback: number,
  bad: (path: string, message: string) => void,
): number {
  if (input.value === undefined) return fallback;
  const parsed = readDuration(input.value);
  if ('problem' in parsed) {
    bad(input.source, parsed.problem);
    return fallback;
  }
  return parsed.ms;
}

export { parseDuration };
