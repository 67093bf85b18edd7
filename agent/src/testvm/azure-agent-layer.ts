/**
 * The Azure Linux agent (Debian's `waagent` package) as an overlay layer for test VMs, so AIB's deprovision
 * step (`waagent -force -deprovision+user`) runs for real inside them. The packages are unpacked into a
 * directory, never installed on the host: installing them there would start an agent that calls Azure's
 * wire server.
 */
import { mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/** The agent and the one dependency a minimal Debian may lack; the rest (python3, openssl) is on the host. */
const PACKAGES = ['waagent', 'python3-distro'] as const;
const APT_TIMEOUT_MS = 120_000;
const WAAGENT = 'usr/sbin/waagent';

function agentLayerDir(cacheRoot: string): string {
  return join(cacheRoot, 'azure-agent-layer');
}

/**
 * Returns the layer directory, unpacking the packages on first use. Concurrent callers are safe: each
 * unpacks into its own directory and the first rename wins.
 */
export async function ensureAzureAgentLayer(cacheRoot: string, signal?: AbortSignal): Promise<string> {
  const layer = agentLayerDir(cacheRoot);
  if (await isFile(join(layer, WAAGENT))) return layer;
  const scratch = await mkdtemp(join(cacheRoot, '.azure-agent-'));
  try {
    await download(scratch, signal);
    const root = join(scratch, 'root');
    for (const deb of (await readdir(scratch)).filter((name) => name.endsWith('.deb'))) {
      await execa('dpkg-deb', ['-x', join(scratch, deb), root], {
        cancelSignal: signal,
        timeout: APT_TIMEOUT_MS,
      });
    }
    // The packages' /lib holds udev rules and systemd units, which a VM without systemd never reads; copied
    // over a merged-/usr root as a real directory, it would hide the /lib symlink and every library.
    await rm(join(root, 'lib'), { recursive: true, force: true });
    await rename(root, layer).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await isFile(join(layer, WAAGENT)))) throw error;
    });
    return layer;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function download(dir: string, signal?: AbortSignal): Promise<void> {
  // Only reads the package lists `make deps` fetched; never updates them or installs anything here.
  const result = await execa('apt-get', ['download', '-qq', ...PACKAGES], {
    cwd: dir,
    reject: false,
    cancelSignal: signal,
    timeout: APT_TIMEOUT_MS,
  });
  if (result.exitCode !== 0 || result.failed) {
    const last = result.stderr.trim().split('\n').pop() || result.shortMessage || `exit ${result.exitCode}`;
    throw new Error(`apt-get download ${PACKAGES.join(' ')} failed (${last})`);
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
