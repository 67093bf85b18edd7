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
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { startHttpServer } from '../helpers/http-server.js';
import { startTopology } from '../helpers/netns-topology.js';
import { writeSelfSignedCertificate } from '../helpers/self-signed-certificate.js';
import { sshExec } from '../helpers/ssh.js';
import { linuxTemplate } from '../helpers/template-builders.js';

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
    expect(await storedBlob(runId, 'customization.log')).toContain('Shell "long-step" started');
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

/**
 * A stand-in for Azure's instance metadata service at 169.254.169.254 (what a managed identity asks in ACI):
 * it answers the availability probe like IMDS (400 without the Metadata header) and issues a token for the
 * client id it was started with, in the format Azurite's basic OAuth checks (audience, issuer, lifetime; no
 * signature). Each request is printed as a JSON line.
 */
const IMDS_SCRIPT = `
const [clientId, tenant] = process.argv.slice(1);
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
require('node:http').createServer((request, response) => {
  const url = new URL(request.url, 'http://imds');
  console.log(JSON.stringify({ path: url.pathname, query: Object.fromEntries(url.searchParams), metadata: request.headers.metadata ?? null }));
  const fail = (description) => response.writeHead(400, { 'content-type': 'application/json' })
    .end(JSON.stringify({ error: 'invalid_request', error_description: description }));
  if (url.pathname !== '/metadata/identity/oauth2/token' || request.headers.metadata !== 'true')
    return fail('Required metadata header not specified');
  if (url.searchParams.get('client_id') !== clientId) return fail('Identity not found');
  const now = Math.floor(Date.now() / 1000);
  const claims = { aud: 'https://storage.azure.com', iss: 'https://sts.windows.net/' + tenant + '/', iat: now,
    nbf: now - 60, exp: now + 3600, oid: clientId, appid: clientId, tid: tenant };
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
    access_token: b64({ alg: 'RS256', typ: 'JWT' }) + '.' + b64(claims) + '.c2lnbmF0dXJl',
    client_id: clientId, expires_in: '3600', expires_on: String(now + 3600), ext_expires_in: '3600',
    not_before: String(now), resource: url.searchParams.get('resource'), token_type: 'Bearer' }));
}).listen(80, '169.254.169.254', () => console.log('listening'));
`;

/** A process in a network namespace, resolved once it printed `ready` on stdout. */
async function startIn(
  namespace: string,
  args: readonly string[],
  ready: string,
): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn('ip', ['netns', 'exec', namespace, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((done) => child.once('close', done));
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(
    `${args.slice(0, 2).join(' ')} in ${namespace}`,
    () => {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited ${child.exitCode}: ${output}`);
      return Promise.resolve(output.includes(ready));
    },
    30_000,
  );
  return { child, output: () => output };
}

describe('the ACI deployment template (docs/aci/isobuild-aci.json)', () => {
  it('runs the agent image with its command, environment and secret volume: the build succeeds', async () => {
    // The contract is the container group's command, environmentVariables and volumes, evaluated with test
    // parameter values. ACI's part is played by real pieces in a network namespace wired like AIB's
    // containerInstanceSubnetId topology: the test VM, an IMDS stand-in for the managed identity, and
    // Azurite over HTTPS with OAuth (the storage SDK sends tokens over HTTPS only). The one addition to the
    // contract is NODE_EXTRA_CA_CERTS for that emulator's self-made certificate.
    if (engine !== 'podman')
      throw new Error(
        `the ACI contract test needs podman (a container in a given network namespace); the engine is ${engine}`,
      );
    const topology = await startTopology('aci-subnet');
    cleanups.push(() => topology.stop());
    const ns = topology.aci;
    const ip = await run('ip', ['-n', ns, 'addr', 'add', '169.254.169.254/32', 'dev', 'lo'], 10_000);
    expect(ip.code, ip.stderr).toBe(0);
    const clientId = '6f3c3c5e-1b1a-4c1e-9d43-0a5e2b7f2c11';
    const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';

    const tls = await mkdtemp(join(tmpdir(), 'isobuild-ct-aci-tls-'));
    cleanups.push(() => rm(tls, { recursive: true, force: true }));
    await chmod(tls, 0o755);
    writeSelfSignedCertificate(tls);
    await chmod(join(tls, 'cert.pem'), 0o644);
    await startIn(
      ns,
      [
        process.execPath,
        join(root, 'node_modules/azurite/dist/src/blob/main.js'),
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        '10000',
        '--oauth',
        'basic',
        '--cert',
        join(tls, 'cert.pem'),
        '--key',
        join(tls, 'key.pem'),
        '--inMemoryPersistence',
        '--skipApiVersionCheck',
        '--disableTelemetry',
      ],
      'successfully listens',
    );
    const imds = await startIn(ns, [process.execPath, '-e', IMDS_SCRIPT, clientId, tenant], 'listening');

    const aci = JSON.parse(await readFile(join(root, 'docs/aci/isobuild-aci.json'), 'utf8')) as {
      parameters: Record<string, { defaultValue?: string | number }>;
      resources: {
        properties: {
          restartPolicy: string;
          containers: {
            properties: {
              image: string;
              command: string[];
              environmentVariables: { name: string; value?: string; secureValue?: string }[];
              volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
              resources: { requests: { cpu: string; memoryInGB: string } };
            };
          }[];
          volumes: { name: string; secret?: Record<string, string> }[];
        };
      }[];
    };
    const runId = `aci-${process.pid}`;
    const template = linuxTemplate({
      customize: [{ type: 'Shell', name: 'aci-contract', inline: ['echo built from the ACI contract'] }],
    });
    const parameters: Record<string, string> = {
      ...Object.fromEntries(
        Object.entries(aci.parameters)
          .filter(([, p]) => typeof p.defaultValue !== 'string' || !p.defaultValue.startsWith('['))
          .map(([name, p]) => [name, `${p.defaultValue ?? ''}`]),
      ),
      image: AGENT_IMAGE,
      identityId:
        '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/isobuild',
      aciSubnetId:
        '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci',
      storageAccountUrl: 'https://127.0.0.1:10000/devstoreaccount1',
      runId,
      buildVmAddress: topology.vm.address,
      buildVmUser: topology.vm.user,
      templateJsonBase64: Buffer.from(JSON.stringify(template)).toString('base64'),
      sshPrivateKeyBase64: (await readFile(topology.vm.keyFile)).toString('base64'),
    };
    const evaluate = (expression: string): string => {
      const parameter = /^\[parameters\('([^']+)'\)\]$/.exec(expression)?.[1];
      if (parameter !== undefined) {
        const value = parameters[parameter];
        if (value === undefined) throw new Error(`no test value for parameter ${parameter}`);
        return value;
      }
      if (/^\[reference\(parameters\('identityId'\), '[^']+'\)\.clientId\]$/.test(expression))
        return clientId;
      if (expression.startsWith('['))
        throw new Error(`the ACI template uses ${expression}: teach this test to evaluate it`);
      return expression;
    };
    const group = aci.resources[0]!.properties;
    const container = group.containers[0]!.properties;
    const volumeArgs: string[] = [];
    for (const mount of container.volumeMounts) {
      const volume = group.volumes.find((v) => v.name === mount.name);
      if (!volume?.secret)
        throw new Error(`volume ${mount.name} is not a secret volume: teach this test to mount it`);
      // A secret volume: each entry a file, base64-decoded. (ACI's owner and mode for them are not known;
      // these are root's, readable by all, as Kubernetes makes secret volumes by default.)
      const dir = join(tls, mount.name);
      await mkdir(dir, { mode: 0o755 });
      for (const [file, value] of Object.entries(volume.secret))
        await writeFile(join(dir, file), Buffer.from(evaluate(value), 'base64'), { mode: 0o644 });
      volumeArgs.push('-v', `${dir}:${mount.mountPath}${mount.readOnly ? ':ro' : ''}`);
    }
    const envArgs = container.environmentVariables.flatMap((variable) => [
      '-e',
      `${variable.name}=${evaluate(variable.value ?? variable.secureValue ?? '')}`,
    ]);
    const aciRun = (name: string, command: readonly string[]): Promise<Run> =>
      engineRun(
        [
          'run',
          '--name',
          name,
          '--network',
          `ns:/run/netns/${ns}`,
          '--restart',
          group.restartPolicy === 'Never' ? 'no' : 'always',
          '--cpus',
          evaluate(container.resources.requests.cpu),
          ...envArgs,
          ...volumeArgs,
          '-v',
          `${join(tls, 'cert.pem')}:/etc/isobuild/emulator-ca.pem:ro`,
          '-e',
          'NODE_EXTRA_CA_CERTS=/etc/isobuild/emulator-ca.pem',
          '--entrypoint',
          command[0]!,
          evaluate(container.image),
          ...command.slice(1),
        ],
        300_000,
      );

    const build = await aciRun(containerName('aci'), container.command);
    const logs = await aciRun(containerName('aci-logs'), [...container.command.slice(0, -1), 'logs', runId]);

    expect(build.code, build.stdout.slice(-3000) + build.stderr.slice(-3000)).toBe(0);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout + logs.stderr).toContain(`Run ${runId}: Succeeded`);
    expect(logs.stdout).toContain('built from the ACI contract');
    // The log store was reached with the managed identity named by AZURE_CLIENT_ID.
    const tokenRequests = imds
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { metadata: string | null; query: Record<string, string> })
      .filter((request) => request.metadata === 'true');
    expect(tokenRequests.length).toBeGreaterThan(0);
    for (const request of tokenRequests) expect(request.query.client_id).toBe(clientId);
  }, 600_000);
});
