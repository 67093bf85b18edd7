/**
 * isobuild-proxy configuration from flags and PROXY_* environment variables (flags win), validated in one
 * pass that lists every problem. Both sources go through the same strict parsing. The forwarding target is
 * fixed here: a client can never choose where its traffic goes.
 */
import { parseArgs } from 'node:util';
import { parseCidr, type Allowlist, type Cidr } from './policy.js';
import { isAddress, isHostName, parseDecimal } from './values.js';

export interface Route {
  readonly name: 'ssh' | 'winrm';
  readonly listenPort: number;
  readonly targetPort: number;
}

export interface ProxyConfig {
  /** The build VM: every connection goes to this address, nowhere else. */
  readonly target: string;
  readonly listenAddress: string;
  /** Listening port → target port: 60001 → 22 (SSH) and 60000 → 5986 (WinRM over HTTPS), as AIB's proxy VM. */
  readonly routes: readonly Route[];
  /** Source networks allowed to connect (models the NSG rule that admits only the load balancer). */
  readonly allow: Allowlist;
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
  --target ADDRESS         the build VM (IP address or host name)          PROXY_TARGET
  --listen ADDRESS         IP address to listen on (default 0.0.0.0)       PROXY_LISTEN
  --ssh-port N             listening port for SSH (default 60001)          PROXY_SSH_PORT
  --winrm-port N           listening port for WinRM (default 60000)        PROXY_WINRM_PORT
  --target-ssh-port N      SSH port on the target (default 22)             PROXY_TARGET_SSH_PORT
  --target-winrm-port N    WinRM port on the target (default 5986)         PROXY_TARGET_WINRM_PORT
  --allow CIDR[,CIDR]      source networks allowed (default any source)    PROXY_ALLOW
                           an empty list is an error: leave the option out
  --max-connections N      concurrent connections (default 512)            PROXY_MAX_CONNECTIONS
  --connect-timeout MS     to reach the target (default 10000)             PROXY_CONNECT_TIMEOUT_MS
  --idle-timeout MS        close connections idle this long (default 3600000) PROXY_IDLE_TIMEOUT_MS
                           (no byte in either direction)
  --drain-timeout MS       on SIGTERM, wait this long for connections (default 30000) PROXY_DRAIN_TIMEOUT_MS
  --health-port N          HTTP health check port, -1 to disable (default 60080) PROXY_HEALTH_PORT
  -h, --help               show this help

Numbers are plain decimal. Ports are 1 to 65535; a listening port of 0 picks a free one, and the three
listening ports must differ. Every listener is bound before any connection is served; if one cannot be,
none is.

Exit codes: 0 stopped cleanly, 1 could not listen, 2 invalid configuration, 70 internal error.`;

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

type OptionName = keyof typeof OPTIONS;

/** Every environment variable isobuild-proxy reads (container files are checked against it). */
export const PROXY_ENVIRONMENT: readonly string[] = Object.values(OPTIONS).map((o) => o.env);

const isOptionName = (name: string): name is OptionName => Object.hasOwn(OPTIONS, name);

interface ListeningPort {
  readonly listener: string;
  readonly option: OptionName;
  readonly port: number;
}

/** Where a value came from, as messages name it. */
interface Setting {
  readonly text: string;
  readonly source: string;
}

/** Returns the config, or 'help' when help was asked for. Throws ProxyConfigError listing every problem. */
export function loadProxyConfig(argv: string[], env: NodeJS.ProcessEnv): ProxyConfig | 'help' {
  const problems: string[] = [];
  /** Options whose value was refused: their fallback must not cause follow-up problems. */
  const invalid = new Set<OptionName>();
  const flags = readFlags(argv, problems);
  if (flags === 'help') return 'help';
  const read = (name: OptionName): Setting | undefined => {
    const flag = flags.get(name);
    if (flag !== undefined) return { text: flag, source: `--${name}` };
    const value = env[OPTIONS[name].env];
    return value === undefined ? undefined : { text: value, source: OPTIONS[name].env };
  };
  /** A setting that is present must not be empty: an empty value is a mistake, not "use the default". */
  const present = (name: OptionName, unsetAdvice: string): Setting | undefined => {
    const setting = read(name);
    if (setting?.text === '') {
      invalid.add(name);
      problems.push(`${setting.source} is empty: ${unsetAdvice}.`);
      return undefined;
    }
    return setting;
  };
  /** A decimal whole number from min to max; the health port also takes -1 (off). */
  const number = (name: OptionName, fallback: number, min: number, max: number, allowed?: string): number => {
    const setting = present(name, `leave it out for the default ${fallback}, or give a number`);
    if (!setting) return fallback;
    const value = setting.text === '-1' && name === 'health-port' ? -1 : parseDecimal(setting.text);
    if (value === undefined || (value !== -1 && (value < min || value > max))) {
      invalid.add(name);
      problems.push(
        `${setting.source} "${setting.text}" is invalid: give ${allowed ?? `a decimal number from ${min} to ${max}`}.`,
      );
      return fallback;
    }
    return value;
  };
  const listenPort = (name: OptionName, fallback: number): number =>
    number(
      name,
      fallback,
      0,
      65535,
      `a decimal port from 1 to 65535, 0 for a free port${name === 'health-port' ? ', or -1 to turn the health check off' : ''}`,
    );
  const targetPort = (name: OptionName, fallback: number): number =>
    number(name, fallback, 1, 65535, 'a decimal port from 1 to 65535');

  const target = readTarget(read('target'), problems);
  const listen = present('listen', 'leave it out to listen on 0.0.0.0, or give an address');
  if (listen && !isAddress(listen.text))
    problems.push(
      `${listen.source} "${listen.text}" is not an IPv4 or IPv6 address: use 0.0.0.0 (every IPv4 address), :: (every address) or one of this machine's addresses.`,
    );
  const allowSetting = read('allow');
  const allow = allowSetting ? readAllowlist(allowSetting, problems) : 'any';

  const sshPort = listenPort('ssh-port', 60001);
  const winrmPort = listenPort('winrm-port', 60000);
  const healthPort = listenPort('health-port', 60080);
  const listening: ListeningPort[] = [
    { listener: 'ssh', option: 'ssh-port', port: sshPort },
    { listener: 'winrm', option: 'winrm-port', port: winrmPort },
    { listener: 'health', option: 'health-port', port: healthPort },
  ];
  checkDistinctPorts(
    listening.filter((l) => !invalid.has(l.option)),
    (name) => read(name)?.source,
    problems,
  );

  const config: ProxyConfig = {
    target: target ?? '',
    listenAddress: listen && isAddress(listen.text) ? listen.text : '0.0.0.0',
    routes: [
      { name: 'ssh', listenPort: sshPort, targetPort: targetPort('target-ssh-port', 22) },
      { name: 'winrm', listenPort: winrmPort, targetPort: targetPort('target-winrm-port', 5986) },
    ],
    allow,
    maxConnections: number('max-connections', 512, 1, 100_000),
    connectTimeoutMs: number('connect-timeout', 10_000, 100, 600_000),
    idleTimeoutMs: number('idle-timeout', 3_600_000, 1000, 86_400_000),
    drainTimeoutMs: number('drain-timeout', 30_000, 0, 3_600_000),
    healthPort,
  };
  if (problems.length > 0) throw new ProxyConfigError(problems.join('\n'));
  return Object.freeze(config);
}

/**
 * Flags by name, or 'help'. Option values may start with a dash (`--health-port -1`): parseArgs' strict
 * mode would refuse that, so unknown options, missing values and stray arguments are checked here.
 */
function readFlags(argv: string[], problems: string[]): Map<OptionName, string> | 'help' {
  const { tokens } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(Object.keys(OPTIONS).map((name) => [name, { type: 'string' as const }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const flags = new Map<OptionName, string>();
  for (const token of tokens) {
    if (token.kind === 'positional')
      problems.push(`"${token.value}" is not an option: options are --name value.`);
    if (token.kind !== 'option') continue;
    if (token.name === 'help') return 'help';
    if (!isOptionName(token.name)) problems.push(`${token.rawName} is not an option.`);
    else if (token.value === undefined) problems.push(`${token.rawName} needs a value.`);
    else if (!token.inlineValue && token.value.startsWith('--'))
      problems.push(`${token.rawName} needs a value, but is followed by the option ${token.value}.`);
    else flags.set(token.name, token.value);
  }
  return flags;
}

function readTarget(setting: Setting | undefined, problems: string[]): string | undefined {
  if (!setting) {
    problems.push(
      '--target / PROXY_TARGET is missing: the build VM address every connection is forwarded to.',
    );
    return undefined;
  }
  if (setting.text === '') {
    problems.push(`${setting.source} is empty: give the build VM address every connection is forwarded to.`);
    return undefined;
  }
  if (isAddress(setting.text) || isHostName(setting.text)) return setting.text;
  const hint = /^[^:]+:\d+$/.test(setting.text)
    ? ' Give the address alone: the ports are --target-ssh-port and --target-winrm-port.'
    : setting.text.includes('://')
      ? ' Give the address alone, not a URL.'
      : setting.text.startsWith('[')
        ? ' Give an IPv6 address without brackets.'
        : '';
  problems.push(
    `${setting.source} "${setting.text}" is not an IPv4 or IPv6 address or a host name (letters, digits and hyphens in dot-separated labels).${hint}`,
  );
  return undefined;
}

/** Explicitly empty is an error: "allow nobody" is never what a forwarder is started for, and "any" is the default. */
function readAllowlist(setting: Setting, problems: string[]): Cidr[] {
  const entries = setting.text.split(',').map((s) => s.trim());
  if (entries.every((entry) => entry === '')) {
    problems.push(
      `${setting.source} is empty: list the source networks allowed to connect (such as 10.0.0.0/16,168.63.129.16), or leave it out to allow any source.`,
    );
    return [];
  }
  const allow: Cidr[] = [];
  for (const [index, entry] of entries.entries()) {
    if (entry === '') {
      problems.push(
        `${setting.source} "${setting.text}": entry ${index + 1} is empty; remove the extra comma.`,
      );
      continue;
    }
    const parsed = parseCidr(entry);
    if ('problem' in parsed) problems.push(`${setting.source}: "${entry}" ${parsed.problem}.`);
    else allow.push(parsed);
  }
  return allow;
}

/** Two listeners on one port would half-start the proxy: refuse that before binding anything. */
function checkDistinctPorts(
  listeners: ListeningPort[],
  sourceOf: (name: OptionName) => string | undefined,
  problems: string[],
): void {
  const ports = new Set(listeners.map((l) => l.port).filter((port) => port > 0));
  for (const port of ports) {
    const sharing = listeners.filter((l) => l.port === port);
    if (sharing.length < 2) continue;
    const names = sharing.map((l) => `${l.listener} (${sourceOf(l.option) ?? 'default'})`);
    problems.push(
      `${names.slice(0, -1).join(', ')} and ${names.at(-1)} would ${sharing.length === 2 ? 'both' : 'all'} listen on port ${port}: give each listener a port of its own.`,
    );
  }
}
