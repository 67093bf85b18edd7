/**
 * Disposable Linux "VMs" for tests, the demo and users without Azure: each is a set of namespaces with
 * its own address (10.231.N.2, reachable from the host over a veth pair), a copy-on-write view of the
 * host's root filesystem, sshd on port 22 with key-only login and a non-root admin user with passwordless
 * sudo. Starting one first removes leftovers of crashed runs; stopping one leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { ensureAzureAgentLayer } from './azure-agent-layer.js';
import { sshdConfig, vmBootScript } from './vm-boot-script.js';
import { isProcessAlive, killQuietly } from '../processes.js';

export const TEST_VM_USER = 'isobuild';
const NETNS_PREFIX = 'isobuild-vm-';
const MAX_VMS = 250;
const BOOT_TIMEOUT_MS = 10_000;
/** A VM without a record younger than this is being started by someone else, not left over. */
const STARTING_GRACE_MS = 2 * BOOT_TIMEOUT_MS;

export interface TestVm {
  readonly id: number;
  /**
   * What users name the VM by: the slot number plus a token of this start. Slot numbers are reused, so a
   * stale number alone could name someone else's VM; a stale handle names nothing.
   */
  readonly handle: string;
  readonly name: string;
  /** The VM's own address; port 22 there is its sshd. */
  readonly address: string;
  /** The host's address on the VM's link (what the VM sees as its peer). */
  readonly hostAddress: string;
  readonly port: 22;
  readonly user: string;
  /** Private key that logs in as `user`. */
  readonly keyFile: string;
  readonly stateDir: string;
  /** PID of the process that holds the VM's namespaces; killing it ends every process in the VM. */
  readonly holderPid: number;
  /** Process that owns the VM: when it is gone, the VM counts as a leftover. 0 means "kept until stopped". */
  readonly ownerPid: number;
  /** Network namespace that holds the VM's peer end (hostAddress); absent means the host's own. */
  readonly peerNamespace?: string;
  /**
   * Whether the VM has the Azure Linux agent (waagent), so AIB's deprovision step runs for real; when it
   * could not be prepared, `azureAgentProblem` says why.
   */
  readonly azureAgent: boolean;
  readonly azureAgentProblem?: string;
}

export interface StartTestVmOptions {
  /** Keep the VM after this process exits (the CLI's `testvm start`). */
  readonly detached?: boolean;
  /**
   * Put the VM's link into this network namespace instead of the host's, so only that namespace reaches
   * the VM (the topology tests put it behind a "proxy" namespace, as AIB's build subnet is).
   */
  readonly peerNamespace?: string;
  readonly signal?: AbortSignal;
}

/**
 * Root-only state (keys, the files the VM boots from): never in world-writable /tmp, where another user
 * could plant what the boot script then runs as root.
 */
export function testVmRoot(): string {
  return '/run/isobuild-testvm';
}

export async function startTestVm(options: StartTestVmOptions = {}): Promise<TestVm> {
  await ensureTestVmRoot();
  // Before a slot is claimed: a slow download must not hold a slot that others may take for a leftover.
  const agent = await prepareAzureAgent(options.signal);
  await cleanupStaleTestVms();
  const id = await claimNamespace();
  const name = `${NETNS_PREFIX}${id}`;
  const stateDir = join(testVmRoot(), String(id));
  try {
    await rm(stateDir, { recursive: true, force: true });
    for (const dir of ['upper', 'overlay-work', 'root'])
      await mkdir(join(stateDir, dir), { recursive: true });
    const keygen = (comment: string, file: string) =>
      execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', join(stateDir, file)]);
    await Promise.all([
      keygen(`isobuild-vm-${id}-host`, 'ssh_host_ed25519_key'),
      keygen(`isobuild-vm-${id}`, 'id_ed25519'),
    ]);
    await writeFile(join(stateDir, 'authorized_key.pub'), await readFile(join(stateDir, 'id_ed25519.pub')));
    await writeFile(join(stateDir, 'sshd_config'), sshdConfig(TEST_VM_USER));
    const { address, hostAddress } = await wireNetwork(id, name, options.peerNamespace);

    const log = openSync(join(stateDir, 'vm.log'), 'w');
    const holder = spawn(
      'ip',
      [
        'netns',
        'exec',
        name,
        'unshare',
        '--mount',
        '--pid',
        '--uts',
        '--ipc',
        '--kill-child',
        '/bin/sh',
        '-c',
        vmBootScript({
          stateDir,
          hostname: name,
          user: TEST_VM_USER,
          ...(agent.layer ? { preload: agent.layer } : {}),
        }),
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    closeSync(log);
    holder.unref();
    const vm: TestVm = {
      id,
      handle: `${id}-${randomBytes(3).toString('hex')}`,
      name,
      address,
      hostAddress,
      port: 22,
      user: TEST_VM_USER,
      keyFile: join(stateDir, 'id_ed25519'),
      stateDir,
      holderPid: holder.pid ?? 0,
      ownerPid: options.detached ? 0 : process.pid,
      ...(options.peerNamespace ? { peerNamespace: options.peerNamespace } : {}),
      azureAgent: agent.layer !== undefined,
      ...(agent.problem ? { azureAgentProblem: agent.problem } : {}),
    };
    await writeFile(join(stateDir, 'vm.json'), `${JSON.stringify(vm, null, 2)}\n`);
    await waitForSsh(vm, holder, options.signal);
    return vm;
  } catch (error) {
    await stopTestVm(id);
    throw error;
  }
}

/** Creates the state root, or refuses one that someone other than this user could have written to. */
async function ensureTestVmRoot(): Promise<void> {
  const root = testVmRoot();
  await mkdir(root, { recursive: true, mode: 0o700 });
  const info = await lstat(root);
  const uid = process.getuid?.() ?? 0;
  if (!info.isDirectory() || info.uid !== uid || (info.mode & 0o022) !== 0) {
    throw new Error(
      `${root} is not a private directory of this user (a link, another owner, or writable by others); remove it and start again.`,
    );
  }
}

/** After a failed download, starts do not try again for this long (each try may wait on the network). */
const AGENT_RETRY_AFTER_MS = 10 * 60_000;

/** A VM without the agent still works for everything but deprovisioning, so a failure here is reported, not fatal. */
async function prepareAzureAgent(signal?: AbortSignal): Promise<{ layer?: string; problem?: string }> {
  const failure = join(testVmRoot(), 'azure-agent-layer.failed');
  const recent = await stat(failure).catch(() => undefined);
  if (recent && Date.now() - recent.mtimeMs < AGENT_RETRY_AFTER_MS)
    return {
      problem: (await readFile(failure, 'utf8').catch(() => '')).trim() || 'an earlier download failed',
    };
  try {
    return { layer: await ensureAzureAgentLayer(testVmRoot(), signal) };
  } catch (error) {
    signal?.throwIfAborted();
    const problem = error instanceof Error ? error.message : String(error);
    await writeFile(failure, `${problem}\n`).catch(() => undefined);
    return { problem };
  }
}

/** The running VM a handle (from `start` or `list`) names, if it is still that start's VM. */
export async function findTestVm(handle: string): Promise<TestVm | undefined> {
  const id = Number(/^(\d+)-[0-9a-f]+$/.exec(handle)?.[1]);
  if (!Number.isInteger(id)) return undefined;
  const record = await readRecord(join(testVmRoot(), String(id)));
  return record?.handle === handle ? record : undefined;
}

/**
 * Stops a VM and removes all it had: processes, namespaces, the veth pair and its files. Idempotent. With
 * `handle`, only if the slot still holds that very start's VM.
 */
export async function stopTestVm(id: number, handle?: string): Promise<void> {
  const name = `${NETNS_PREFIX}${id}`;
  const stateDir = join(testVmRoot(), String(id));
  const record = await readRecord(stateDir);
  if (handle !== undefined && record?.handle !== handle) return;
  if (record?.holderPid) killQuietly(record.holderPid);
  // Anything still inside the network namespace (there should be nothing once the holder is gone).
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = await namespacePids(name);
    if (pids.length === 0) break;
    pids.forEach((pid) => killQuietly(pid));
    await sleep(20);
  }
  await execa('ip', ['netns', 'delete', name], { reject: false });
  await execa('ip', ['link', 'delete', hostLink(id)], { reject: false });
  await rm(stateDir, { recursive: true, force: true });
}

export async function listTestVms(): Promise<TestVm[]> {
  const ids = await knownIds();
  const records = await Promise.all(ids.map((id) => readRecord(join(testVmRoot(), String(id)))));
  return records.filter((r): r is TestVm => r !== undefined);
}

/**
 * Removes VMs whose owner process is gone (a crashed test run), whose peer namespace was deleted, and
 * namespaces without a record.
 */
export async function cleanupStaleTestVms(): Promise<number[]> {
  const removed: number[] = [];
  for (const id of await knownIds()) {
    const record = await readRecord(join(testVmRoot(), String(id)));
    // No record yet may just mean another process is starting this VM right now: only old ones are leftovers.
    const stale = record
      ? (record.ownerPid !== 0 && !isProcessAlive(record.ownerPid)) ||
        !isProcessAlive(record.holderPid) ||
        (record.peerNamespace !== undefined && !existsSync(`/run/netns/${record.peerNamespace}`))
      : !(await changedWithin(
          [`/run/netns/${NETNS_PREFIX}${id}`, join(testVmRoot(), String(id))],
          STARTING_GRACE_MS,
        ));
    if (stale) {
      await stopTestVm(id);
      removed.push(id);
    }
  }
  return removed;
}

async function claimNamespace(): Promise<number> {
  // `ip netns add` fails if the name exists, so it doubles as a lock between concurrent starts.
  for (let id = 1; id <= MAX_VMS; id++) {
    const result = await execa('ip', ['netns', 'add', `${NETNS_PREFIX}${id}`], { reject: false });
    if (result.exitCode === 0) return id;
    if (!/File exists/.test(result.stderr)) {
      throw new Error(
        `cannot create a network namespace for the test VM (ip netns add: ${result.stderr.trim()}); test VMs need root.`,
      );
    }
  }
  throw new Error(`all ${MAX_VMS} test VM slots are in use; stop some with "isobuild testvm stop --all".`);
}

async function wireNetwork(
  id: number,
  name: string,
  peerNamespace?: string,
): Promise<{ address: string; hostAddress: string }> {
  const hostAddress = `10.231.${id}.1`;
  const address = `10.231.${id}.2`;
  const run = (args: string[]) => execa('ip', args);
  const peer = peerNamespace ? ['-n', peerNamespace] : [];
  await run(['link', 'add', hostLink(id), 'type', 'veth', 'peer', 'name', `ibvm${id}`, 'netns', name]);
  if (peerNamespace) await run(['link', 'set', hostLink(id), 'netns', peerNamespace]);
  await run([...peer, 'addr', 'add', `${hostAddress}/30`, 'dev', hostLink(id)]);
  await run([...peer, 'link', 'set', hostLink(id), 'up']);
  await run(['-n', name, 'link', 'set', 'lo', 'up']);
  await run(['-n', name, 'link', 'set', `ibvm${id}`, 'name', 'eth0']);
  await run(['-n', name, 'addr', 'add', `${address}/30`, 'dev', 'eth0']);
  await run(['-n', name, 'link', 'set', 'eth0', 'up']);
  return { address, hostAddress };
}

function hostLink(id: number): string {
  return `ibvm${id}h`;
}

async function waitForSsh(vm: TestVm, holder: ReturnType<typeof spawn>, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  let exited = false;
  holder.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (exited) break;
    if (await (vm.peerNamespace ? sshdListens(vm.name) : hasSshBanner(vm.address))) return;
    await sleep(20);
  }
  const log = await readFile(join(vm.stateDir, 'vm.log'), 'utf8').catch(() => '');
  throw new Error(
    `the test VM did not start sshd within ${BOOT_TIMEOUT_MS / 1000} s. Its boot log:\n${log.trim().split('\n').slice(-15).join('\n')}`,
  );
}

function hasSshBanner(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: 22, timeout: 500 });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (data) => done(data.toString('latin1').startsWith('SSH-')));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** For a VM the host cannot reach (its link is in another namespace): is sshd listening inside it? */
async function sshdListens(name: string): Promise<boolean> {
  const result = await execa('ss', ['-N', name, '-H', '-l', '-t', '-n', 'sport = :22'], { reject: false });
  return result.exitCode === 0 && result.stdout.trim() !== '';
}

async function knownIds(): Promise<number[]> {
  const ids = new Set<number>();
  const listed = await execa('ip', ['netns', 'list'], { reject: false });
  for (const line of listed.stdout.split('\n')) {
    const match = new RegExp(`^${NETNS_PREFIX}(\\d+)\\b`).exec(line.trim());
    if (match) ids.add(Number(match[1]));
  }
  for (const entry of await readdir(testVmRoot()).catch(() => [])) {
    if (/^\d+$/.test(entry)) ids.add(Number(entry));
  }
  return [...ids].sort((a, b) => a - b);
}

async function readRecord(stateDir: string): Promise<TestVm | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'vm.json'), 'utf8')) as TestVm;
  } catch {
    return undefined;
  }
}

/** True when any of the paths that exist was modified less than `ageMs` ago. */
async function changedWithin(paths: readonly string[], ageMs: number): Promise<boolean> {
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs < ageMs) return true;
  }
  return false;
}

async function namespacePids(name: string): Promise<number[]> {
  const result = await execa('ip', ['netns', 'pids', name], { reject: false });
  return result.exitCode === 0 ? result.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}
