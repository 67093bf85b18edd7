/**
 * The path to the build VM, worked out once from the build configuration and the template: which protocol
 * and port, direct or through isobuild-proxy (the relay's upstream hop), and the credentials, read once.
 * `build` and `doctor` both start from it, so they check the same inputs with the same messages.
 */
import { IsobuildError } from '../errors.js';
import { readSshKeyFile } from '../readiness/ssh-key-file.js';
import { describeHop, type Hop } from '../relay/relay.js';
import type { Secret } from '../secret.js';
import type { BuildConfig } from '../settings/build-config.js';
import type { ImageTemplate } from '../template/model.js';
import { COMMUNICATOR_PORT, PROXY_PORT } from '../template/topology.js';
import type { TlsPolicy, WinRmAuth } from '../winrm/transport.js';

/** What of the template decides the path (doctor without a template passes `{ os: 'linux', topology: 'direct' }`). */
export type VmPathTemplate = Pick<ImageTemplate, 'os' | 'topology'>;

interface VmPathCommon {
  readonly os: 'linux' | 'windows';
  /** Communicator port on the VM: --port, or 22 (SSH) / 5986 (WinRM). */
  readonly port: number;
  /** --topology, or what the template's vnetConfig implies. */
  readonly topology: 'direct' | 'proxy';
  /** Where the relay dials: the VM itself, or the proxy (PROXY_PORT[os]) in front of it. */
  readonly hop: Hop;
  /** How messages name the hop, e.g. "build VM 10.0.0.4:22" or "proxy 10.0.0.5:60001". */
  readonly label: string;
  readonly user: string;
}

/** A Linux build VM, reached over SSH. */
export interface SshVmPath extends VmPathCommon {
  readonly protocol: 'SSH';
  readonly ssh: {
    /** The private key's bytes: the --ssh-key-file read once, or ISOBUILD_SSH_KEY's content. */
    readonly privateKey?: Buffer;
    /** The key file as given (Packer reads keys from files); absent when the key came as content. */
    readonly keyFile?: string;
    readonly password?: Secret;
  };
}

/** A Windows build VM, reached over WinRM (HTTPS). */
export interface WinRmVmPath extends VmPathCommon {
  readonly protocol: 'WinRM';
  readonly winrm: {
    readonly auth: WinRmAuth;
    readonly tls: TlsPolicy;
    /** The certificate names the VM, not the local relay in front of it. */
    readonly servername: string;
  };
}

export type VmPath = SshVmPath | WinRmVmPath;

/**
 * Works out the path to the build VM and checks its inputs, before anything is contacted.
 * @throws IsobuildError 'usage' (exit 2): an unreadable --ssh-key-file, the proxy topology without
 *   --proxy-host, or a Windows template without ISOBUILD_WINRM_PASSWORD.
 */
export function resolveVmPath(config: BuildConfig, template: VmPathTemplate): VmPath {
  // Read whenever it is given (also for Windows, as build always did): a bad key file is bad input.
  const keyBytes = config.sshKeyFile ? readSshKeyFile(config.sshKeyFile) : undefined;
  const port = config.port ?? COMMUNICATOR_PORT[template.os];
  const topology = config.topology ?? (template.topology === 'proxy' ? 'proxy' : 'direct');
  if (topology === 'proxy' && !config.proxyHost) {
    // Say where the proxy topology came from: the template's vnetConfig, or --topology itself.
    const chosen =
      template.topology === 'proxy' && config.topology !== 'proxy'
        ? "this template uses AIB's proxy topology (vmProfile.vnetConfig.subnetId without containerInstanceSubnetId)"
        : '--topology proxy asks for the proxy topology';
    throw new IsobuildError(
      'usage',
      `${chosen}, but no proxy is configured: pass --proxy-host ADDRESS (an isobuild-proxy in front of the build VM) or --topology direct.`,
    );
  }
  const hop: Hop =
    topology === 'proxy'
      ? {
          kind: 'proxy',
          host: config.proxyHost ?? '',
          port: PROXY_PORT[template.os],
          vm: `${config.host}:${port}`,
        }
      : { kind: 'direct', host: config.host, port };
  const common = { os: template.os, port, topology, hop, label: describeHop(hop), user: config.user };
  if (template.os === 'linux') {
    const privateKey =
      keyBytes ?? (config.sshPrivateKey ? Buffer.from(config.sshPrivateKey.reveal()) : undefined);
    return {
      ...common,
      protocol: 'SSH',
      ssh: {
        ...(privateKey ? { privateKey } : {}),
        ...(config.sshKeyFile ? { keyFile: config.sshKeyFile } : {}),
        ...(config.sshPassword ? { password: config.sshPassword } : {}),
      },
    };
  }
  if (!config.winrmPassword) {
    throw new IsobuildError(
      'usage',
      'Windows builds need the administrator password: set ISOBUILD_WINRM_PASSWORD (for --user).',
    );
  }
  return {
    ...common,
    protocol: 'WinRM',
    winrm: {
      auth: { kind: config.winrmAuth, user: config.user, password: config.winrmPassword },
      tls: config.winrmTls,
      servername: config.host,
    },
  };
}
