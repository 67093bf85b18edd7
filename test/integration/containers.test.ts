/**
 * The container images, built and run for real with the engine `make images` picks (Docker when a daemon
 * answers, else podman from Debian with the project's containers.conf). The images are built by the same
 * script as `make images`, from whatever image storage there is (empty too: then the base images are made
 * locally). The proxy and agent images then run hardened (non-root, read-only root filesystem, no
 * capabilities, no new privileges) and do real work: the proxy forwards and drains, the agent builds on a
 * test VM with its logs in Azurite, is cancelled by `stop`, reads an extra CA at run time, and names an
 * unreadable input. Last, `make compose-demo` runs a real build through the compose stack and leaves nothing
 * behind. Nothing is skipped: without an engine, building the images fails with what is missing.
 */
import { BlobServiceClient } from '@azure/storage-blob';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../agent/src/build/run-status.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { linuxTemplate } from '../helpers/build-cli.js';
import { startHttpServer } from '../helpers/http-server.js';
import { sshExec } from '../helpers/ssh.js';

const root = resolve('.');
const AGENT_IMAGE = 'localhost/isobuild:latest';
const PROXY_IMAGE = 'localhost/isobuild-proxy:latest';
/** The agent image's user (`node`); mounted inputs must be readable by it. */
const AGENT_UID = 1000;
const HARDENED = ['--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];
/** From empty image storage on a busy 2-core machine the images take about 8 minutes; warm, seconds. */
const BUILD_IMAGES_TIMEOUT_MS = 30 * 60_000;
const REWRITE = 'https://isobuildexamples.blob.core.windows.net/artifacts/=/templates/';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/**
 * Runs a command to its end or its deadline. At the deadline its process group gets SIGTERM (so scripts
 * tear down what they started), SIGKILL a minute later, and the run fails saying which command hung.
 */
function run(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  env: Record<string, string> = {},
): Promise<Run> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, CONTAINERS_CONF: join(root, 'containers.conf'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid) process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killer = setTimeout(() => signalGroup('SIGKILL'), 60_000);
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      clearTimeout(killer);
      if (timedOut)
        reject(
          new Error(
            `${command} ${args.join(' ')} did not finish within ${timeoutMs / 1000} s:\n${stderr.slice(-2000)}`,
          ),
        );
      else resolvePromise({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

let engine = '';
const containers = new Set<string>();
const volumes = new Set<string>();
const cleanups: (() => Promise<unknown>)[] = [];
let counter = 0;

const engineRun = (args: readonly string[], timeoutMs = 120_000): Promise<Run> =>
  run(engine, args, timeoutMs);

async function engineOk(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const result = await engineRun(args, timeoutMs);
  if (result.code !== 0)
    throw new Error(`${engine} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout.trim();
}

/** A container name this test owns and removes afterwards. */
function containerName(what: string): string {
  const name = `isobuild-test-${process.pid}-${counter++}-${what}`;
  containers.add(name);
  return name;
}

async function inspect(name: string, format: string): Promise<string> {
  return engineOk(['inspect', '--format', format, name]);
}

/** What the kernel says about a container's main process: its uid, capabilities and no_new_privs. */
async function processSecurity(name: string): Promise<{ uid: string; capEff: string; noNewPrivs: string }> {
  const pid = await inspect(name, '{{.State.Pid}}');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (key: string): string => new RegExp(`^${key}:\\s+(\\S+)`, 'm').exec(status)?.[1] ?? '';
  return { uid: field('Uid'), capEff: field('CapEff'), noNewPrivs: field('NoNewPrivs') };
}

/** Whether the container's root filesystem is mounted read-only (its mount table, seen from the host). */
async function rootIsReadOnly(name: string): Promise<boolean> {
  const pid = await inspect(name, '{{.State.Pid}}');
  const mountinfo = await readFile(`/proc/${pid}/mountinfo`, 'utf8');
  const rootMount = mountinfo.split('\n').find((line) => line.split(' ')[4] === '/');
  return /^ro(,|$)/.test(rootMount?.split(' ')[5] ?? '');
}

/** Polls `check` until it is true; a check that throws ends the wait with its error. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePromise(port));
    });
  });
}

/** A TCP echo server on loopback, standing in for a build VM's port. */
async function startEcho(): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  cleanups.push(() => new Promise((done) => server.close(done)));
  return { port: (server.address() as AddressInfo).port, server };
}

function echoOnce(socket: Socket, text: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of "${text}" within 10 s`)), 10_000);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolvePromise(chunk.toString());
    });
    socket.write(text);
  });
}

/** A directory the agent's user can write (bind-mounted as /work, so the host can read the run afterwards). */
async function agentWorkDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'isobuild-ct-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await chown(dir, AGENT_UID, AGENT_UID);
  return dir;
}

/** A copy of the test VM's key that only the agent's user can read, as compose-setup.sh makes it. */
async function agentKey(vm: TestVm, dir: string): Promise<string> {
  const key = join(dir, 'ssh_key');
  await copyFile(vm.keyFile, key);
  await chown(key, AGENT_UID, AGENT_UID);
  await chmod(key, 0o400);
  return key;
}

async function readRunStatus(work: string, runId: string): Promise<RunStatus | undefined> {
  const text = await readFile(join(work, 'runs', runId, 'status.json'), 'utf8').catch(() => undefined);
  return text ? (JSON.parse(text) as RunStatus) : undefined;
}

/** `run` arguments for the agent image building a template on a test VM, logs to Azurite. */
function agentBuildArgs(
  name: string,
  vm: TestVm,
  work: string,
  key: string,
  azurite: AzuriteInstance,
  runId: string,
  template = '/templates/linux-baseline/template.json',
): string[] {
  return [
    'run',
    '--name',
    name,
    // The test VM is a network namespace reached from the host, and Azurite listens on loopback.
    '--network',
    'host',
    ...HARDENED,
    '--tmpfs',
    '/tmp',
    '-v',
    `${work}:/work`,
    '-v',
    `${join(root, 'images')}:/templates:ro`,
    '-v',
    `${key}:/run/secrets/ssh_key:ro`,
    '-e',
    `ISOBUILD_TEMPLATE=${template}`,
    '-e',
    `ISOBUILD_HOST=${vm.address}`,
    '-e',
    `ISOBUILD_USER=${vm.user}`,
    '-e',
    'ISOBUILD_SSH_KEY_FILE=/run/secrets/ssh_key',
    '-e',
    `ISOBUILD_RUN_ID=${runId}`,
    '-e',
    'ISOBUILD_TOPOLOGY=direct',
    '-e',
    `ISOBUILD_REWRITE_URI=${REWRITE}`,
    '-e',
    `ISOBUILD_STORAGE_CONNECTION_STRING=${azurite.connectionString}`,
    ...(vm.azureAgent ? [] : ['-e', 'ISOBUILD_SKIP_DEPROVISION=1']),
    AGENT_IMAGE,
    'build',
  ];
}

beforeAll(async () => {
  const chosen = await run(
    'bash',
    ['-c', 'source scripts/images/common.sh && choose_engine && echo "$ENGINE"'],
    60_000,
  );
  if (chosen.code !== 0) throw new Error(`no container engine: ${chosen.stderr.trim()}`);
  engine = chosen.stdout.trim();
  const built = await run('bash', ['scripts/images/build-images.sh'], BUILD_IMAGES_TIMEOUT_MS);
  if (built.code !== 0)
    throw new Error(`make images failed (exit ${built.code}):\n${built.stderr.slice(-4000)}`);
  console.log(`make images: ${(built.ms / 1000).toFixed(0)} s\n${built.stderr}`);
}, BUILD_IMAGES_TIMEOUT_MS + 60_000);

afterEach(async () => {
  for (const name of containers) await engineRun(['rm', '-f', name]).catch(() => undefined);
  containers.clear();
  for (const name of volumes) await engineRun(['volume', 'rm', '-f', name]).catch(() => undefined);
  volumes.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
}, 120_000);

describe('the isobuild-proxy image', () => {
  it('runs hardened, answers /healthz, forwards, and drains on stop (exit 0)', async () => {
    const echo = await startEcho();
    const [sshPort, winrmPort, healthPort] = [await freePort(), await freePort(), await freePort()];
    const name = containerName('proxy');

    await engineOk([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      ...HARDENED,
      '-e',
      'PROXY_TARGET=127.0.0.1',
      '-e',
      `PROXY_TARGET_SSH_PORT=${echo.port}`,
      '-e',
      'PROXY_LISTEN=127.0.0.1',
      '-e',
      `PROXY_SSH_PORT=${sshPort}`,
      '-e',
      `PROXY_WINRM_PORT=${winrmPort}`,
      '-e',
      `PROXY_HEALTH_PORT=${healthPort}`,
      PROXY_IMAGE,
    ]);
    await waitFor(
      'the proxy container answers /healthz',
      async () =>
        (await fetch(`http://127.0.0.1:${healthPort}/healthz`).catch(() => undefined))?.status === 200,
      30_000,
    );

    expect(await processSecurity(name)).toEqual({
      uid: String(AGENT_UID),
      capEff: '0000000000000000',
      noNewPrivs: '1',
    });
    expect(await rootIsReadOnly(name)).toBe(true);
    // Started with the young-generation limit it is tuned for, so it does not warn about it.
    expect((await engineRun(['logs', name])).stdout).not.toContain('without the young-generation limit');

    const client = connect(sshPort, '127.0.0.1');
    cleanups.push(() => Promise.resolve(client.destroy()));
    expect(await echoOnce(client, 'hello through the proxy image')).toBe('hello through the proxy image');

    // SIGTERM with a connection open: the proxy stops listening but lets it finish, then exits 0.
    const stopping = engineRun(['stop', '-t', '60', name], 90_000);
    await waitFor(
      'the proxy logs that it is draining',
      async () => (await engineRun(['logs', name])).stdout.includes('"draining"'),
      20_000,
    );
    expect(await echoOnce(client, 'still open while draining')).toBe('still open while draining');
    client.end();
    const stopped = await stopping;

    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.ms).toBeLessThan(30_000); // drained when the client left, not killed at the deadline
    expect(await inspect(name, '{{.State.ExitCode}}')).toBe('0');
  }, 180_000);
});

describe('the agent image', () => {
  let vm: TestVm;
  let azurite: AzuriteInstance;

  beforeAll(async () => {
    vm = await startTestVm();
    azurite = await startAzurite();
  }, 120_000);

  afterAll(async () => {
    await azurite?.close();
    if (vm) await stopTestVm(vm.id);
  }, 120_000);

  const storedBlob = async (runId: string, blob: string): Promise<string> => {
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
      'packerlogs',
    );
    return (await container.getBlobClient(`${runId}/${blob}`).downloadToBuffer()).toString('utf8');
  };

  it('runs hardened and builds images/linux-baseline on a test VM, logs in Azurite', async () => {
    const work = await agentWorkDir();
    const key = await agentKey(vm, await agentWorkDir());
    const runId = `container-${process.pid}-${counter}`;
    const name = containerName('agent');

    const result = await engineRun(agentBuildArgs(name, vm, work, key, azurite, runId), 300_000);

    expect(result.code, result.stdout.slice(-3000) + result.stderr.slice(-3000)).toBe(0);
    const status = await readRunStatus(work, runId);
    expect(status?.runState).toBe('Succeeded');
    // Written by the image's user, not root.
    expect((await stat(join(work, 'runs', runId, 'status.json'))).uid).toBe(AGENT_UID);
    const stored = await storedBlob(runId, 'customization.log');
    expect(stored).toContain('[baseline] starting on');
    expect(JSON.parse(await storedBlob(runId, 'status.json'))).toMatchObject({ runState: 'Succeeded' });
  }, 300_000);

  it('is Canceled with exit 143 when stopped mid-build, leaving nothing running on the VM', async () => {
    const work = await agentWorkDir();
    const key = await agentKey(vm, await agentWorkDir());
    const runId = `container-stop-${process.pid}-${counter}`;
    const marker = `isobuild-stop-test-${process.pid}`;
    // On the VM: a shell whose command line carries the marker, and its sleep (pgrep patterns that do not
    // match the pgrep command line itself).
    const leftovers = `pgrep -f '[s]leep 317|[t]rue ${marker}'`;
    const templates = await agentWorkDir();
    await writeFile(
      join(templates, 'long.json'),
      JSON.stringify(
        linuxTemplate({
          customize: [{ type: 'Shell', name: 'long-step', inline: [`sh -c 'sleep 317; true ${marker}'`] }],
        }),
      ),
    );
    await chmod(templates, 0o755);
    const name = containerName('agent-stop');
    const args = agentBuildArgs(name, vm, work, key, azurite, runId, '/long/long.json');
    args.splice(args.indexOf(AGENT_IMAGE), 0, '-v', `${templates}:/long:ro`);
    await engineOk(['create', ...args.slice(1)]);
    await engineOk(['start', name]);
    await waitFor(
      'the long step runs on the VM',
      async () => {
        if ((await inspect(name, '{{.State.Running}}')) !== 'true')
          throw new Error(`the agent container ended early: ${(await engineRun(['logs', name])).stderr}`);
        return (await sshExec(vm, leftovers).catch(() => undefined))?.code === 0;
      },
      120_000,
    );
    // The running agent, as the kernel sees it (tini is PID 1 and has the container's privileges).
    expect(await processSecurity(name)).toEqual({
      uid: String(AGENT_UID),
      capEff: '0000000000000000',
      noNewPrivs: '1',
    });
    expect(await rootIsReadOnly(name)).toBe(true);

    const stopped = await engineRun(['stop', '-t', '120', name], 180_000);
    const code = await inspect(name, '{{.State.ExitCode}}');

    expect(stopped.code, stopped.stderr).toBe(0);
    expect(code).toBe('143');
    expect(stopped.ms).toBeLessThan(60_000); // isobuild ended the build itself, nobody killed it
    expect((await readRunStatus(work, runId))?.runState).toBe('Canceled');
    expect(JSON.parse(await storedBlob(runId, 'status.json'))).toMatchObject({ runState: 'Canceled' });
    expect((await sshExec(vm, leftovers)).code).toBe(1);
  }, 300_000);

  it.each([
    [
      'SSH key',
      '/run/secrets/ssh_key',
      'cannot read the SSH key file /run/secrets/ssh_key: permission denied',
    ],
    ['template', '/templates/linux-baseline/template.json', '/templates/linux-baseline/template.json'],
  ])(
    'names an unreadable %s and exits 2 (never a silent exit 13)',
    async (_what, path, expected) => {
      // Owned by root, mode 600: what a bind-mounted file looks like when nobody made it readable.
      const dir = await mkdtemp(join(tmpdir(), 'isobuild-ct-unreadable-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const unreadable = join(dir, 'file');
      await writeFile(unreadable, path.endsWith('.json') ? '{}' : 'not a key', { mode: 0o600 });
      const isKey = path === '/run/secrets/ssh_key';
      const key = isKey ? unreadable : await agentKey(vm, await agentWorkDir());
      const work = await agentWorkDir();
      const name = containerName('agent-unreadable');
      const args = agentBuildArgs(name, vm, work, key, azurite, `unreadable-${counter}`);
      if (!isKey) args.splice(args.indexOf(AGENT_IMAGE), 0, '-v', `${unreadable}:${path}:ro`);

      const result = await engineRun(args, 120_000);

      expect(result.code, result.stdout + result.stderr).toBe(2);
      expect(result.stderr).toContain(expected);
      expect(result.stderr).toMatch(/permission denied/);
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    },
    180_000,
  );

  it('shows its Packer and plugins in isobuild doctor', async () => {
    const name = containerName('agent-doctor');

    const result = await engineRun(
      ['run', '--name', name, '--network', 'none', ...HARDENED, AGENT_IMAGE, 'doctor', '--local-logs-only'],
      120_000,
    );

    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /^Packer\s+ok\s+\S*packer \d+\.\d+\.\d+; (loads no external plugins|plugins: )/m,
    );
  }, 180_000);

  it('trusts an extra CA given at run time with NODE_EXTRA_CA_CERTS (TLS-inspecting networks)', async () => {
    const script = Buffer.from('#!/bin/sh\necho from a server with a private CA\n');
    const server = await startHttpServer((_request, response) => response.end(script), { tls: true });
    cleanups.push(() => server.close());
    const dir = await agentWorkDir();
    await writeFile(join(dir, 'ca.pem'), server.certificate ?? '');
    await writeFile(
      join(dir, 'template.json'),
      JSON.stringify(
        linuxTemplate({
          customize: [
            {
              type: 'Shell',
              name: 'private-ca',
              scriptUri: `${server.url}/script.sh`,
              sha256Checksum: createHash('sha256').update(script).digest('hex'),
            },
          ],
        }),
      ),
    );
    await chmod(dir, 0o755);
    const render = (extra: string[]): Promise<Run> =>
      engineRun(
        [
          'run',
          '--name',
          containerName('agent-ca'),
          '--network',
          'host',
          ...HARDENED,
          '--tmpfs',
          '/tmp',
          '-v',
          `${dir}:/in:ro`,
          ...extra,
          AGENT_IMAGE,
          'render',
          '/in/template.json',
          '--out',
          '/tmp/out',
          '--download-total-timeout',
          '30s',
        ],
        120_000,
      );

    const untrusted = await render([]);
    const trusted = await render(['-e', 'NODE_EXTRA_CA_CERTS=/in/ca.pem']);

    expect(untrusted.code, untrusted.stderr).toBe(3);
    expect(untrusted.stderr).toMatch(/certificate/i);
    expect(trusted.code, trusted.stderr).toBe(0);
  }, 240_000);
});

describe('make compose-demo', () => {
  it('builds through agent, proxy and test VM containers, reads the run back, and leaves nothing', async () => {
    const project = `isobuild-test-${process.pid}`;
    const runId = `compose-test-${process.pid}`;

    const demo = await run('bash', ['scripts/compose-demo.sh'], 600_000, {
      COMPOSE_PROJECT_NAME: project,
      ISOBUILD_RUN_ID: runId,
    });

    const output = demo.stdout + demo.stderr;
    expect(demo.code, output.slice(-4000)).toBe(0);
    expect(output).toContain('proxy proxy:60001 accepts SSH');
    expect(output).toMatch(/^Succeeded: the build succeeded/m);
    // `isobuild logs`, in a second container, from the Azurite container.
    expect(output).toContain(`Run ${runId}: Succeeded`);
    expect(output).toContain('[baseline] starting on');
    const left = async (kind: string[]): Promise<string> =>
      engineOk([...kind, '--format', kind[0] === 'ps' ? '{{.Names}}' : '{{.Name}}']).then((out) =>
        out
          .split('\n')
          .filter((n) => n.includes(project))
          .join(' '),
      );
    expect(await left(['ps', '-a'])).toBe('');
    expect(await left(['network', 'ls'])).toBe('');
    expect(await left(['volume', 'ls'])).toBe('');
    const services = await run('pgrep', ['-f', 'podman system service .*isobuild-podman'], 10_000);
    expect(services.stdout.trim()).toBe('');
  }, 660_000);
});
