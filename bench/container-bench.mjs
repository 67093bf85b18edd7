#!/usr/bin/env node
// Container benchmark (issue 12), side by side in one run, each pair alternating:
//  0. the engine's floor: `node -e 0` in the proxy image against `node -e 0` on the host;
//  1. start of the isobuild-proxy image until its first healthy /healthz, against the same program
//     started on the host (`node dist/proxy/src/main.js`);
//  2. start of the agent image until its first log line, against `node dist/agent/src/cli/main.js build`;
//  3. a build of images/linux-baseline through the compose stack (`docker-compose run --rm isobuild build`:
//     agent → proxy → test VM containers, logs in the Azurite container) against the same build from the
//     host CLI, through the same proxy container to the same test VM, logs to the same Azurite;
// plus the size of each image. Containers run hardened (read-only root, no capabilities), with host
// networking for 1 and 2 so that only the container start differs. Medians, and container/host ratios.
// Usage: make images && node bench/container-bench.mjs   (root; podman or Docker; BENCH_RUNS=7)
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROXY_NODE_FLAGS } from '../dist/proxy/src/runtime.js';

const root = resolve(import.meta.dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const env = { ...process.env, CONTAINERS_CONF: join(root, 'containers.conf') };
const engine = execFileSync(
  'bash',
  ['-c', 'source scripts/images/common.sh && choose_engine && echo "$ENGINE"'],
  { cwd: root, env, encoding: 'utf8' },
).trim();
const HARDENED = ['--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];
const IMAGES = {
  agent: 'localhost/isobuild:latest',
  proxy: 'localhost/isobuild-proxy:latest',
  testvm: 'localhost/isobuild-testvm:latest',
  azurite: 'mcr.microsoft.com/azure-storage/azurite:3.35.0',
};
const cli = join(root, 'dist/agent/src/cli/main.js');
const REWRITE = 'https://isobuildexamples.blob.core.windows.net/artifacts/=';
const work = mkdtempSync(join(tmpdir(), 'isobuild-container-bench-'));
chmodSync(work, 0o755);
const cleanups = [];

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const freePort = () =>
  new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });

const exited = (child) =>
  new Promise((done) => (child.exitCode !== null ? done(child.exitCode) : child.once('close', done)));

async function until(what, check, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(5);
  }
}

const healthy = (port) =>
  fetch(`http://127.0.0.1:${port}/healthz`).then(
    (r) => r.ok,
    () => false,
  );

/** Milliseconds from spawning `command` until /healthz answers 200. */
async function proxyStart(command, args, stop) {
  const [ssh, winrm, health] = [await freePort(), await freePort(), await freePort()];
  const settings = {
    PROXY_TARGET: '127.0.0.1',
    PROXY_LISTEN: '127.0.0.1',
    PROXY_SSH_PORT: String(ssh),
    PROXY_WINRM_PORT: String(winrm),
    PROXY_HEALTH_PORT: String(health),
  };
  const started = performance.now();
  const child = spawn(command, args(settings), { env: { ...env, ...settings }, stdio: 'ignore' });
  await until('proxy /healthz', () => healthy(health), 60_000);
  const ms = performance.now() - started;
  await stop(child);
  await exited(child);
  return ms;
}

/** Milliseconds from spawning `command` until the first line on stdout or stderr. */
async function firstLine(command, args, stop) {
  const started = performance.now();
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`${command}: no output within 60 s`)), 60_000);
    const first = () => {
      clearTimeout(timer);
      done(performance.now() - started);
    };
    child.stdout.once('data', first);
    child.stderr.once('data', first);
  });
  await stop(child);
  await exited(child);
  return ms;
}

/** Milliseconds a command takes; it must succeed. */
async function timed(command, args, extraEnv = {}) {
  const started = performance.now();
  const child = spawn(command, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await exited(child);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
  return performance.now() - started;
}

const removeContainer = (name) => async () => {
  execFileSync(engine, ['rm', '-f', name], { env, stdio: 'ignore' });
};
let counter = 0;
const name = (what) => `isobuild-bench-${process.pid}-${counter++}-${what}`;

/** Runs the host variant and each container variant in turn, RUNS times; one result row per container variant. */
async function pairs(label, host, ...containers) {
  const hostMs = [];
  const containerMs = containers.map(() => []);
  for (let i = 0; i < RUNS; i++) {
    hostMs.push(await host());
    for (const [j, [, run]] of containers.entries()) containerMs[j].push(await run());
  }
  return containers.map(([variant], j) => {
    const row = {
      label: `${label}${variant ? ` (${variant})` : ''}`,
      host: median(hostMs),
      container: median(containerMs[j]),
    };
    console.error(`${row.label}: host ${row.host.toFixed(0)} ms, container ${row.container.toFixed(0)} ms`);
    return row;
  });
}

const results = [];
try {
  // 0. the engine's floor: Node doing nothing, in the proxy image and on the host.
  results.push(
    ...(await pairs('floor: `node -e 0` to its exit', () => timed(process.execPath, ['-e', '0']), [
      `${engine} run --rm`,
      () =>
        timed(engine, [
          'run',
          '--rm',
          '--network',
          'host',
          ...HARDENED,
          '--entrypoint',
          '/usr/local/bin/node',
          IMAGES.proxy,
          '-e',
          '0',
        ]),
    ])),
  );

  // 1. proxy start to first healthy /healthz
  results.push(
    ...(await pairs(
      'isobuild-proxy start → first healthy /healthz',
      () =>
        proxyStart(
          process.execPath,
          () => [...PROXY_NODE_FLAGS, join(root, 'dist/proxy/src/main.js')],
          async (child) => child.kill('SIGTERM'),
        ),
      [
        '',
        () => {
          const n = name('proxy');
          return proxyStart(
            engine,
            (settings) => [
              'run',
              '--rm',
              '--name',
              n,
              '--network',
              'host',
              ...HARDENED,
              ...Object.entries(settings).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
              IMAGES.proxy,
            ],
            removeContainer(n),
          );
        },
      ],
    )),
  );

  // 2. agent start to first log line: a build whose VM port is closed, stopped once it has said something.
  const keyDir = mkdtempSync(join(tmpdir(), 'isobuild-bench-key-'));
  cleanups.push(() => rmSync(keyDir, { recursive: true, force: true }));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'key')]);
  chownSync(join(keyDir, 'key'), 1000, 1000);
  const closedPort = await freePort();
  const buildEnv = [
    'ISOBUILD_HOST=127.0.0.1',
    `ISOBUILD_PORT=${closedPort}`,
    'ISOBUILD_USER=isobuild',
    'ISOBUILD_LOCAL_LOGS_ONLY=1',
    'ISOBUILD_LOG_FORMAT=json',
    'ISOBUILD_READY_TIMEOUT=30s',
  ];
  results.push(
    ...(await pairs(
      'agent start → first log line',
      () =>
        firstLine(
          'env',
          [
            ...buildEnv,
            `ISOBUILD_SSH_KEY_FILE=${join(keyDir, 'key')}`,
            `ISOBUILD_WORK_DIR=${join(work, 'host-runs')}`,
            `ISOBUILD_REWRITE_URI=${REWRITE}${join(root, 'images')}/`,
            process.execPath,
            cli,
            'build',
            join(root, 'images/linux-baseline/template.json'),
          ],
          async (child) => child.kill('SIGTERM'),
        ),
      [
        '',
        () => {
          const n = name('agent');
          return firstLine(
            engine,
            [
              'run',
              '--rm',
              '--name',
              n,
              '--network',
              'host',
              ...HARDENED,
              '--tmpfs',
              '/tmp',
              '-v',
              `${join(root, 'images')}:/templates:ro`,
              '-v',
              `${join(keyDir, 'key')}:/run/secrets/ssh_key:ro`,
              ...[
                ...buildEnv,
                'ISOBUILD_SSH_KEY_FILE=/run/secrets/ssh_key',
                'ISOBUILD_WORK_DIR=/tmp/runs',
                `ISOBUILD_REWRITE_URI=${REWRITE}/templates/`,
              ].flatMap((e) => ['-e', e]),
              IMAGES.agent,
              'build',
              '/templates/linux-baseline/template.json',
            ],
            removeContainer(n),
          );
        },
      ],
    )),
  );

  // 3. a whole build, from the host CLI and from the agent container, through the same proxy container to
  // the same test VM container, logs to the same Azurite container: only where the agent runs differs.
  const project = `isobuild-bench-${process.pid}`;
  let dockerHost = process.env.DOCKER_HOST;
  if (engine === 'podman') {
    const socketDir = mkdtempSync('/run/isobuild-podman-bench.');
    const service = spawn('podman', ['system', 'service', '--time=0', `unix://${socketDir}/podman.sock`], {
      env,
      stdio: 'ignore',
    });
    cleanups.push(async () => {
      service.kill('SIGTERM');
      await exited(service);
      rmSync(socketDir, { recursive: true, force: true });
    });
    dockerHost = `unix://${socketDir}/podman.sock`;
    await until(
      'podman API socket',
      async () => {
        try {
          execFileSync('curl', ['-fs', '--unix-socket', `${socketDir}/podman.sock`, 'http://d/_ping'], {
            stdio: 'ignore',
          });
          return true;
        } catch {
          return false;
        }
      },
      20_000,
    );
  }
  const composeEnv = { ...(dockerHost ? { DOCKER_HOST: dockerHost } : {}) };
  const compose = (args) => [
    '--ansi',
    'never',
    '-p',
    project,
    '-f',
    join(root, 'docker-compose.yml'),
    ...args,
  ];
  execFileSync('bash', [join(root, 'scripts/compose-setup.sh')], { stdio: 'ignore' });
  cleanups.push(() =>
    timed('docker-compose', compose(['down', '--volumes', '--remove-orphans', '-t', '20']), composeEnv),
  );
  await timed(
    'docker-compose',
    compose(['up', '-d', '--no-build', 'azurite', 'testvm', 'proxy']),
    composeEnv,
  );
  await until(
    'the Azurite container',
    async () => {
      const logs = execFileSync('docker-compose', compose(['logs', '--no-color', 'azurite']), {
        env: { ...env, ...composeEnv },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      return logs.includes('successfully listens');
    },
    60_000,
  );

  // The host reaches the compose networks (the key travels in the environment, never on a command line) through their bridges (its address, .1, is in PROXY_ALLOW).
  const address = (service, network) =>
    execFileSync(
      engine,
      [
        'inspect',
        '--format',
        `{{(index .NetworkSettings.Networks "${project}_${network}").IPAddress}}`,
        `${project}_${service}_1`,
      ],
      { env, encoding: 'utf8' },
    ).trim();
  const composeDir = join(root, '.work/compose');
  const connectionString = readFileSync(join(composeDir, 'isobuild.env'), 'utf8')
    .trim()
    .replace(/^ISOBUILD_STORAGE_CONNECTION_STRING=/, '')
    .replace('//azurite:', `//${address('azurite', 'aci')}:`);
  results.push(
    ...(await pairs(
      'build of images/linux-baseline (through the proxy, logs to Azurite)',
      () =>
        timed(
          process.execPath,
          [
            cli,
            'build',
            join(root, 'images/linux-baseline/template.json'),
            '--host',
            'testvm',
            '--user',
            'isobuild',
            '--ssh-key-file',
            join(composeDir, 'id_ed25519'),
            '--topology',
            'proxy',
            '--proxy-host',
            address('proxy', 'aci'),
            '--skip-deprovision',
            '--rewrite-uri',
            `${REWRITE}${join(root, 'images')}/`,
            '--work-dir',
            join(work, 'runs'),
            '--run-id',
            `bench-host-${counter++}`,
          ],
          { ISOBUILD_STORAGE_CONNECTION_STRING: connectionString },
        ),
      // The agent image run by the engine on the compose network, as compose would, without its client.
      [
        `${engine} run`,
        () =>
          timed(engine, [
            'run',
            '--rm',
            '--network',
            `${project}_aci`,
            ...HARDENED,
            '--tmpfs',
            '/tmp',
            '-v',
            `${project}_isobuild-work:/work`,
            '-v',
            `${join(root, 'images')}:/templates:ro`,
            '-v',
            `${join(composeDir, 'id_ed25519')}:/run/secrets/ssh_key:ro`,
            '--env-file',
            join(composeDir, 'isobuild.env'),
            ...[
              'ISOBUILD_TEMPLATE=/templates/linux-baseline/template.json',
              'ISOBUILD_HOST=testvm',
              'ISOBUILD_USER=isobuild',
              'ISOBUILD_SSH_KEY_FILE=/run/secrets/ssh_key',
              'ISOBUILD_TOPOLOGY=proxy',
              'ISOBUILD_PROXY_HOST=proxy',
              'ISOBUILD_SKIP_DEPROVISION=1',
              `ISOBUILD_REWRITE_URI=${REWRITE}/templates/`,
              `ISOBUILD_RUN_ID=bench-run-${counter++}`,
            ].flatMap((e) => ['-e', e]),
            IMAGES.agent,
            'build',
          ]),
      ],
      [
        'docker-compose run',
        () =>
          timed(
            'docker-compose',
            compose([
              'run',
              '--rm',
              '-T',
              '-e',
              `ISOBUILD_RUN_ID=bench-compose-${counter++}`,
              'isobuild',
              'build',
            ]),
            composeEnv,
          ),
      ],
    )),
  );

  console.log(`\nMachine: ${engine}, Node ${process.version}, ${RUNS} runs each, medians\n`);
  console.log('| measurement | host | container | ratio |');
  console.log('|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.label} | ${r.host.toFixed(0)} ms | ${r.container.toFixed(0)} ms | ${(r.container / r.host).toFixed(2)}× |`,
    );
  console.log('\n| image | size |');
  console.log('|---|---|');
  for (const image of Object.values(IMAGES)) {
    const bytes = Number(
      execFileSync(engine, ['image', 'inspect', '--format', '{{.Size}}', image], { env, encoding: 'utf8' }),
    );
    console.log(`| ${image} | ${(bytes / 1e6).toFixed(0)} MB |`);
  }
} finally {
  for (const cleanup of cleanups.reverse())
    await Promise.resolve(cleanup()).catch((e) => console.error(String(e)));
  rmSync(work, { recursive: true, force: true });
}
