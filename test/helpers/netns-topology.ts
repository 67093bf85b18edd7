/**
 * AIB's network topologies (aib-reference §4) built from network namespaces, for the topology tests.
 *
 *  proxy:       [aci 10.232.0.2] ── [10.232.0.1 proxy 10.231.N.1] ── [10.231.N.2 vm]
 *               aci routes the VM's subnet to the proxy namespace, which does not forward: the only way
 *               from aci to the VM is through a TCP proxy listening in the proxy namespace.
 *  aci-subnet:  [aci 10.231.N.1] ── [10.231.N.2 vm]   (the container shares the build VM's network)
 *
 * Namespaces are named isobuild-topo-<ownerPid>-<k>-<role>; a run that crashed leaves namespaces whose
 * owner is dead, and every new topology removes those first (their test VM goes with its peer namespace).
 */
import { execa } from 'execa';
import { cleanupStaleTestVms, startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { isProcessAlive, killQuietly } from '../../agent/src/processes.js';

const PREFIX = 'isobuild-topo-';
export const ACI_ADDRESS = '10.232.0.2';
export const PROXY_ADDRESS = '10.232.0.1';

export interface Topology {
  readonly kind: 'proxy' | 'aci-subnet';
  /** Namespace where isobuild runs (AIB's container instance). */
  readonly aci: string;
  /** Namespace of the proxy VM (proxy topology only). */
  readonly proxy?: string;
  readonly vm: TestVm;
  stop(): Promise<void>;
}

let counter = 0;

export async function startTopology(
  kind: Topology['kind'],
  options: { ownerPid?: number } = {},
): Promise<Topology> {
  await cleanupStaleTopologies();
  const base = `${PREFIX}${options.ownerPid ?? process.pid}-${counter++}`;
  const aci = `${base}-aci`;
  const proxy = kind === 'proxy' ? `${base}-proxy` : undefined;
  const namespaces = proxy ? [aci, proxy] : [aci];
  let vm: TestVm | undefined;
  try {
    for (const ns of namespaces) {
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    if (proxy) {
      // The "ACI subnet" link between the container and the proxy VM's front end.
      // (Created inside the namespaces, so the names cannot clash with other topologies.)
      await ip(
        'link',
        'add',
        'to-proxy',
        'netns',
        aci,
        'type',
        'veth',
        'peer',
        'name',
        'to-aci',
        'netns',
        proxy,
      );
      await ip('-n', aci, 'addr', 'add', `${ACI_ADDRESS}/24`, 'dev', 'to-proxy');
      await ip('-n', proxy, 'addr', 'add', `${PROXY_ADDRESS}/24`, 'dev', 'to-aci');
      await ip('-n', aci, 'link', 'set', 'to-proxy', 'up');
      await ip('-n', proxy, 'link', 'set', 'to-aci', 'up');
      // Packets for the build subnet do reach the proxy VM, which must not route them on.
      await ip('-n', aci, 'route', 'add', '10.231.0.0/16', 'via', PROXY_ADDRESS);
      await execa('ip', ['netns', 'exec', proxy, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    }
    vm = await startTestVm({ peerNamespace: proxy ?? aci });
  } catch (error) {
    if (vm) await stopTestVm(vm.id);
    await removeNamespaces(namespaces);
    throw error;
  }
  const testVm = vm;
  return {
    kind,
    aci,
    ...(proxy ? { proxy } : {}),
    vm: testVm,
    stop: async () => {
      await stopTestVm(testVm.id);
      await removeNamespaces(namespaces);
    },
  };
}

/** Removes the namespaces (and whatever runs in them) of topologies whose owner process is gone. */
export async function cleanupStaleTopologies(): Promise<string[]> {
  const stale = (await topologyNamespaces()).filter((ns) => !isProcessAlive(ownerOf(ns)));
  await removeNamespaces(stale);
  if (stale.length > 0) await cleanupStaleTestVms();
  return stale;
}

export async function topologyNamespaces(): Promise<string[]> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(PREFIX));
}

async function removeNamespaces(namespaces: readonly string[]): Promise<void> {
  for (const ns of namespaces) {
    // Processes keep a namespace alive after `ip netns delete`; end them first.
    for (let attempt = 0; attempt < 50; attempt++) {
      const pids = await execa('ip', ['netns', 'pids', ns], { reject: false });
      const list = pids.exitCode === 0 ? pids.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
      if (list.length === 0) break;
      for (const pid of list) killQuietly(pid);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await execa('ip', ['netns', 'delete', ns], { reject: false });
  }
}

function ownerOf(namespace: string): number {
  return Number(namespace.slice(PREFIX.length).split('-')[0]);
}

async function ip(...args: string[]): Promise<void> {
  await execa('ip', args);
}
