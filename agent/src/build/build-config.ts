/**
 * Configuration of one build, from flags and ISOBUILD_* environment variables (flags win), loaded once
 * into one validated, frozen object. Every problem is reported at once. Credentials become Secrets.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { parseRewrite, type UriRewrite } from '../artifacts/rewrite-uri.js';
import { IsobuildError, type Problem } from '../errors.js';
import { parseDuration } from '../duration.js';
import { Secret } from '../secret.js';

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
  readonly runId: string;
  readonly workDir: string;
  readonly readyTimeoutMs: number;
  /** How long Packer gets to clean up after SIGTERM before it is killed. */
  readonly killGraceMs: number;
  readonly packerPath: string;
  readonly skipDeprovision: boolean;
  readonly rewrites: readonly UriRewrite[];
  /** Overrides the topology vmProfile.vnetConfig implies. */
  readonly topology?: 'direct' | 'proxy';
  /** The isobuild-proxy (AIB's proxy VM) for the proxy topology. */
  readonly proxyHost?: string;
}

/** The flags `isobuild build` accepts, mapped to their environment variables. */
export const BUILD_SETTINGS = {
  host: { env: 'ISOBUILD_HOST', flag: 'host' },
  port: { env: 'ISOBUILD_PORT', flag: 'port' },
  user: { env: 'ISOBUILD_USER', flag: 'user' },
  sshKeyFile: { env: 'ISOBUILD_SSH_KEY_FILE', flag: 'ssh-key-file' },
  runId: { env: 'ISOBUILD_RUN_ID', flag: 'run-id' },
  workDir: { env: 'ISOBUILD_WORK_DIR', flag: 'work-dir' },
  readyTimeout: { env: 'ISOBUILD_READY_TIMEOUT', flag: 'ready-timeout' },
  killGrace: { env: 'ISOBUILD_KILL_GRACE', flag: 'kill-grace' },
  packer: { env: 'ISOBUILD_PACKER', flag: 'packer' },
  topology: { env: 'ISOBUILD_TOPOLOGY', flag: 'topology' },
  proxyHost: { env: 'ISOBUILD_PROXY_HOST', flag: 'proxy-host' },
} as const;

export const DEFAULT_READY_TIMEOUT_MS = 5 * 60_000; // Packer's own ssh_timeout default
export const DEFAULT_KILL_GRACE_MS = 15 * 60_000; // longer than Packer's 10-minute Azure cleanup
const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface BuildFlags {
  readonly [name: string]: string | boolean | string[] | undefined;
}

export function loadBuildConfig(flags: BuildFlags, env: NodeJS.ProcessEnv, cwd = process.cwd()): BuildConfig {
  const problems: Problem[] = [];
  const bad = (path: string, message: string): void => {
    problems.push({ severity: 'error', path, message });
  };
  const read = (key: keyof typeof BUILD_SETTINGS): { value?: string; source: string } => {
    const setting = BUILD_SETTINGS[key];
    const flag = flags[setting.flag];
    if (typeof flag === 'string') return { value: flag, source: `--${setting.flag}` };
    const fromEnv = env[setting.env];
    return fromEnv !== undefined && fromEnv !== ''
      ? { value: fromEnv, source: setting.env }
      : { source: `--${setting.flag}` };
  };

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
  const user = read('user').value ?? 'packer';

  const keyFile = read('sshKeyFile').value;
  const keyContent = env.ISOBUILD_SSH_KEY;
  const sshPassword = env.ISOBUILD_SSH_PASSWORD;
  if (keyFile && keyContent)
    bad(
      'ISOBUILD_SSH_KEY',
      'set either an SSH key file (--ssh-key-file / ISOBUILD_SSH_KEY_FILE) or the key itself (ISOBUILD_SSH_KEY), not both.',
    );

  const runId = read('runId').value ?? randomUUID();
  if (!RUN_ID_PATTERN.test(runId))
    bad(
      read('runId').source,
      `"${runId}" is not a usable run id: use 1–64 letters, digits, -, _ or . (starting with a letter or digit).`,
    );

  const readyTimeoutMs = duration(read('readyTimeout'), DEFAULT_READY_TIMEOUT_MS, bad);
  const killGraceMs = duration(read('killGrace'), DEFAULT_KILL_GRACE_MS, bad);

  const rewrites: UriRewrite[] = [];
  const rewriteSpecs = [
    ...(Array.isArray(flags['rewrite-uri']) ? flags['rewrite-uri'] : []),
    ...(env.ISOBUILD_REWRITE_URI ? env.ISOBUILD_REWRITE_URI.split(/\s+/).filter(Boolean) : []),
  ];
  for (const spec of rewriteSpecs) {
    try {
      rewrites.push(parseRewrite(spec, cwd));
    } catch (error) {
      bad('--rewrite-uri', (error as Error).message);
    }
  }

  const topology = read('topology');
  if (topology.value !== undefined && topology.value !== 'direct' && topology.value !== 'proxy') {
    bad(
      topology.source,
      `"${topology.value}" is not a topology: use direct (to the build VM) or proxy (through isobuild-proxy).`,
    );
  }
  const proxyHost = read('proxyHost').value;

  if (problems.length > 0) {
    throw new IsobuildError(
      'usage',
      `the build configuration has ${problems.length} problem(s); see isobuild build --help.`,
      { problems },
    );
  }
  return Object.freeze({
    host: host.value!,
    ...(portNumber !== undefined ? { port: portNumber } : {}),
    user,
    ...(keyFile ? { sshKeyFile: resolve(cwd, keyFile) } : {}),
    ...(keyContent ? { sshPrivateKey: new Secret(keyContent) } : {}),
    ...(sshPassword ? { sshPassword: new Secret(sshPassword) } : {}),
    ...(env.ISOBUILD_WINRM_PASSWORD ? { winrmPassword: new Secret(env.ISOBUILD_WINRM_PASSWORD) } : {}),
    runId,
    workDir: resolve(cwd, read('workDir').value ?? '.work/runs'),
    readyTimeoutMs,
    killGraceMs,
    packerPath: read('packer').value ?? 'packer',
    skipDeprovision:
      flags['skip-deprovision'] === true ||
      env.ISOBUILD_SKIP_DEPROVISION === '1' ||
      env.ISOBUILD_SKIP_DEPROVISION === 'true',
    rewrites,
    ...(topology.value === 'direct' || topology.value === 'proxy' ? { topology: topology.value } : {}),
    ...(proxyHost ? { proxyHost } : {}),
  });
}

/** Every secret value of a config, for the masker. */
export function configSecrets(config: BuildConfig): string[] {
  return [config.sshPrivateKey, config.sshPassword, config.winrmPassword].flatMap((s) =>
    s ? [s.reveal()] : [],
  );
}

function duration(
  input: { value?: string; source: string },
  fallback: number,
  bad: (path: string, message: string) => void,
): number {
  if (input.value === undefined) return fallback;
  const ms = parseDuration(input.value);
  if (ms === undefined) {
    bad(input.source, `"${input.value}" is not a duration; write it like 90s, 5m or 1h30m.`);
    return fallback;
  }
  return ms;
}

export { parseDuration };
