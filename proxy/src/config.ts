/**
 * isobuild-proxy configuration from flags and PROXY_* environment variables (flags win), validated in one
 * pass. The forwarding target is fixed here: a client can never choose where its traffic goes.
 */
import { parseArgs } from 'node:util';
import { parseCidr, type Cidr } from './policy.js';

export interface ProxyConfig {
  /** The build VM: every connection goes to this address, nowhere else. */
  readonly target: string;
  readonly listenAddress: string;
  /** Listening port → target port: 60001 → 22 (SSH) and 60000 → 5986 (WinRM over HTTPS), as AIB's proxy VM. */
  readonly routes: readonly {
    readonly listenPort: number;
    readonly targetPort: number;
    readonly name: string;
  }[];
  /** Source networks allowed to connect; empty means any (models the NSG rule that admits only the load balancer). */
  readonly allow: readonly Cidr[];
  readonly maxConnections: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly drainTimeoutMs: number;
  /** Port of the HTTP health check (GET /healthz); 0 picks a free port, -1 disables it. */
  readonly healthPort: number;
}

export const PROXY_HELP = `Usage: isobuild-proxy --target ADDRESS [options]

Forwards TCP like Azure VM Image Builder's proxy VM: port 60001 to ADDRESS:22 (SSH) and port 60000 to
ADDRESS:5986 (WinRM over HTTPS). The target is fixed by configuration; clients cannot choose it.

Options (each also as an environment variable; the flag wins):
  --target ADDRESS         the build VM                                   PROXY_TARGET
  --listen ADDRESS         address to listen on (default 0.0.0.0)          PROXY_LISTEN
  --ssh-port N             listening port for SSH (default 60001)          PROXY_SSH_PORT
  --winrm-port N           listening port for WinRM (default 60000)        PROXY_WINRM_PORT
  --target-ssh-port N      SSH port on the target (default 22)             PROXY_TARGET_SSH_PORT
  --target-winrm-port N    WinRM port on the target (default 5986)         PROXY_TARGET_WINRM_PORT
  --allow CIDR[,CIDR]      source networks allowed to connect (default any) PROXY_ALLOW
  --max-connections N      concurrent connections (default 512)            PROXY_MAX_CONNECTIONS
  --connect-timeout MS     to reach the target (default 10000)             PROXY_CONNECT_TIMEOUT_MS
  --idle-timeout MS        close connections idle this long (default 3600000) PROXY_IDLE_TIMEOUT_MS
  --drain-timeout MS       on SIGTERM, wait this long for connections (default 30000) PROXY_DRAIN_TIMEOUT_MS
  --health-port N          HTTP health check port, -1 to disable (default 60080) PROXY_HEALTH_PORT
  -h, --help               show this help

Exit codes: 0 stopped cleanly, 2 invalid configuration, 1 could not listen.`;

export class ProxyConfigError extends Error {}

const OPTIONS = {
  target: { env: 'PROXY_TARGET' },
  listen: { env: 'PROXY_LISTEN' },
  'ssh-port': { env: 'PROXY_SSH_PORT' },
  'winrm-port': { env: 'PROXY_WINRM_PORT' },
  'target-ssh-port': { env: 'PROXY_TARGET_SSH_PORT' },
  'target-winrm-port': { env: 'PROXY_TARGET_WINRM_PORT' },
  allow: { env: 'PROXY_ALLOW' },
  'max-connections': { env: 'PROXY_MAX_CONNECTIONS' },
  'connect-timeout': { env: 'PROXY_CONNECT_TIMEOUT_MS' },
  'idle-timeout': { env: 'PROXY_IDLE_TIMEOUT_MS' },
  'drain-timeout': { env: 'PROXY_DRAIN_TIMEOUT_MS' },
  'health-port': { env: 'PROXY_HEALTH_PORT' },
} as const;

/** Every environment variable isobuild-proxy reads (container files are checked against it). */
export const PROXY_ENVIRONMENT: readonly string[] = Object.values(OPTIONS).map((o) => o.env);

/** Returns the config, or 'help' when help was asked for. Throws ProxyConfigError listing every problem. */
export function loadProxyConfig(argv: string[], env: NodeJS.ProcessEnv): ProxyConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(Object.keys(OPTIONS).map((name) => [name, { type: 'string' as const }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const problems: string[] = [];
  const flags = values as Record<string, string | boolean | undefined>;
  const read = (name: keyof typeof OPTIONS): string | undefined => {
    const flag = flags[name];
    return typeof flag === 'string' ? flag : env[OPTIONS[name].env] || undefined;
  };
  const number = (name: keyof typeof OPTIONS, fallback: number, min: number, max: number): number => {
    const text = read(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(
        `--${name} / ${OPTIONS[name].env}: "${text}" must be a whole number from ${min} to ${max}.`,
      );
      return fallback;
    }
    return value;
  };
  const target = read('target');
  if (!target)
    problems.push(
      '--target / PROXY_TARGET is missing: the build VM address every connection is forwarded to.',
    );
  const allow: Cidr[] = [];
  for (const entry of (read('allow') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const cidr = parseCidr(entry);
    if (cidr) allow.push(cidr);
    else
      problems.push(`--allow / PROXY_ALLOW: "${entry}" is not an IPv4 or IPv6 network such as 10.0.0.0/16.`);
  }
  const config: ProxyConfig = {
    target: target ?? '',
    listenAddress: read('listen') ?? '0.0.0.0',
    routes: [
      {
        name: 'ssh',
        listenPort: number('ssh-port', 60001, 0, 65535),
        targetPort: number('target-ssh-port', 22, 1, 65535),
      },
      {
        name: 'winrm',
        listenPort: number('winrm-port', 60000, 0, 65535),
        targetPort: number('target-winrm-port', 5986, 1, 65535),
      },
    ],
    allow,
    maxConnections: number('max-connections', 512, 1, 100_000),
    connectTimeoutMs: number('connect-timeout', 10_000, 100, 600_000),
    idleTimeoutMs: number('idle-timeout', 3_600_000, 1000, 86_400_000),
    drainTimeoutMs: number('drain-timeout', 30_000, 0, 3_600_000),
    healthPort: number('health-port', 60080, -1, 65535),
  };
  if (problems.length > 0) throw new ProxyConfigError(problems.join('\n'));
  return Object.freeze(config);
}
