#!/usr/bin/env node
// isobuild-proxy memory benchmark (issue 11 §5), side by side in one run on loopback with haproxy (mode tcp)
// and socat (fork), every forwarder as its own process in front of an echo server process:
//  1. RSS at rest;
//  2. RSS with 2,000 idle connections (each made one round trip, so both legs are open), and the bytes per
//     idle connection: (RSS with them − RSS at rest) / 2,000;
//  3. peak RSS with those 2,000 idle connections plus 600 slow clients dripping one byte every 200 ms each
//     for 10 s (the field report: 143 MB).
// isobuild-proxy runs as Dockerfile.proxy starts it (with PROXY_NODE_FLAGS), and once more without those
// flags to show what V8's default young generation costs. Fresh forwarder per round, 3 interleaved rounds,
// medians. socat forks a process per connection, so its figure is the sum of the PSS of all its processes
// (RSS would count shared pages once per process).
// Usage: node bench/proxy-memory-bench.mjs [--rounds N] [--only isobuild-proxy]   (after `npm run build`)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { PROXY_NODE_FLAGS } = await import('../dist/proxy/src/runtime.js');
const { values: options } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, only: { type: 'string' } },
});
const ROUNDS = Number(options.rounds);
const IDLE = 2000;
const SLOW = 600;
const DRIP_INTERVAL_MS = 200;
const DRIP_DURATION_MS = 10_000;
const STEP_DEADLINE_MS = 60_000;

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'isobuild-proxy-memory-bench-'));
const children = new Set();
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const mb = (bytes) => bytes / 1024 / 1024;

function run(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGKILL');
  await Promise.race([exited, sleep(5000)]);
}
function firstLine(child) {
  return withDeadline(
    new Promise((done, fail) => {
      let out = '';
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('\n')) done(out.split('\n')[0]);
      });
      child.once('exit', (code) =>
        fail(new Error(`${child.spawnargs[0]} exited with ${code} before starting`)),
      );
    }),
    'a forwarder to start',
  );
}
function withDeadline(promise, what, ms = STEP_DEADLINE_MS) {
  let timer;
  const deadline = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const port = server.address().port;
  await new Promise((done) => server.close(done));
  return port;
}
async function waitForPort(port) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise((done) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after 5 s`);
    await sleep(50);
  }
}

/** Memory of a forwarder in bytes: RSS of its process, or the PSS of it and its children (socat forks). */
function memoryOf(forwarder) {
  if (!forwarder.forks) return kb(`/proc/${forwarder.pid}/status`, 'VmRSS') * 1024;
  const pids = [forwarder.pid, ...childPids(forwarder.pid)];
  return pids.reduce((sum, pid) => sum + kb(`/proc/${pid}/smaps_rollup`, 'Pss') * 1024, 0);
}
function kb(file, field) {
  try {
    return Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(file, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // the process ended between listing and reading
  }
}
function childPids(parent) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // gone already
    }
  }
  return pids;
}

async function isobuildProxy(targetPort, nodeFlags) {
  const child = run(process.execPath, [
    ...nodeFlags,
    join(root, 'dist/proxy/src/main.js'),
    '--listen',
    '127.0.0.1',
    '--ssh-port',
    '0',
    '--winrm-port',
    '0',
    '--health-port',
    '0',
    '--max-connections',
    '5000',
    '--target',
    '127.0.0.1',
    '--target-ssh-port',
    String(targetPort),
  ]);
  const port = JSON.parse(await firstLine(child)).ports.ssh;
  return { child, pid: child.pid, port };
}

const FORWARDERS = {
  'isobuild-proxy': (targetPort) => isobuildProxy(targetPort, PROXY_NODE_FLAGS),
  'isobuild-proxy, default young generation': (targetPort) => isobuildProxy(targetPort, []),
  async 'haproxy (mode tcp)'(targetPort) {
    const port = await freePort();
    const cfg = join(work, `haproxy-${port}.cfg`);
    writeFileSync(
      cfg,
      `global\n  maxconn 4096\ndefaults\n  mode tcp\n  maxconn 4096\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\nfrontend f\n  bind 127.0.0.1:${port}\n  default_backend b\nbackend b\n  server s 127.0.0.1:${targetPort}\n`,
    );
    const child = run('haproxy', ['-f', cfg, '-db']);
    await waitForPort(port);
    return { child, pid: child.pid, port };
  },
  async 'socat (fork)'(targetPort) {
    const port = await freePort();
    const child = run('socat', [
      `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=4096`,
      `TCP:127.0.0.1:${targetPort},nodelay`,
    ]);
    await waitForPort(port);
    return { child, pid: child.pid, port, forks: true };
  },
};

/** Opens `count` connections in batches, each making one round trip so both legs exist. */
async function openConnections(port, count, sockets) {
  for (let done = 0; done < count; done += 100) {
    const batch = Array.from({ length: Math.min(100, count - done) }, () =>
      withDeadline(
        new Promise((ready, fail) => {
          const socket = connect({ host: '127.0.0.1', port });
          sockets.push(socket);
          socket.once('error', fail);
          socket.once('connect', () => socket.write('x'));
          socket.once('data', () => ready(socket));
        }),
        'a round trip through a new connection',
      ),
    );
    await Promise.all(batch);
  }
}

async function measure(name, targetPort) {
  const forwarder = await FORWARDERS[name](targetPort);
  const sockets = [];
  try {
    await sleep(1000);
    const rest = memoryOf(forwarder);
    await openConnections(forwarder.port, IDLE, sockets);
    await sleep(1000);
    const idle = memoryOf(forwarder);
    const slow = [];
    await openConnections(forwarder.port, SLOW, slow);
    sockets.push(...slow);
    // One timer drips into a slice of the slow clients every 10 ms: each gets a byte every 200 ms.
    const slices = DRIP_INTERVAL_MS / 10;
    let tick = 0;
    let peak = memoryOf(forwarder);
    const drip = setInterval(() => {
      const slice = tick++ % slices;
      for (let i = slice; i < slow.length; i += slices) slow[i].write('.');
    }, 10);
    const sample = setInterval(() => (peak = Math.max(peak, memoryOf(forwarder))), 250);
    await sleep(DRIP_DURATION_MS);
    clearInterval(drip);
    clearInterval(sample);
    peak = Math.max(peak, memoryOf(forwarder));
    if (!forwarder.forks) peak = Math.max(peak, kb(`/proc/${forwarder.pid}/status`, 'VmHWM') * 1024);
    return { rest, idle, perIdle: (idle - rest) / IDLE, peak };
  } finally {
    for (const socket of sockets) socket.destroy();
    await stop(forwarder.child);
    await sleep(500); // let the echo server and the kernel let go of the connections
  }
}

try {
  const echo = run(process.execPath, [
    '-e',
    `const s = require('node:net').createServer({ noDelay: true }, (c) => { c.on('data', (d) => c.write(d)); c.on('error', () => {}); });
     s.maxConnections = 20000;
     s.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => console.log(s.address().port));`,
  ]);
  const echoPort = Number(await firstLine(echo));
  const names = Object.keys(FORWARDERS).filter((name) => !options.only || name === options.only);
  const results = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++)
    for (const name of names) {
      const result = await measure(name, echoPort);
      results[name].push(result);
      process.stderr.write(
        `round ${round + 1} ${name}: rest ${mb(result.rest).toFixed(1)} MB, ${IDLE} idle ${mb(result.idle).toFixed(1)} MB (${(result.perIdle / 1024).toFixed(1)} KiB each), peak with ${SLOW} slow ${mb(result.peak).toFixed(1)} MB\n`,
      );
    }

  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  );
  console.log('');
  console.log(
    `| forwarder | at rest | ${IDLE} idle | per idle connection | peak, ${IDLE} idle + ${SLOW} dripping | rounds (peak) |`,
  );
  console.log('|---|---|---|---|---|---|');
  const medians = {};
  for (const name of names) {
    const runs = results[name];
    const m = (key) => median(runs.map((r) => r[key]));
    medians[name] = { rest: m('rest'), idle: m('idle'), perIdle: m('perIdle'), peak: m('peak') };
    console.log(
      `| ${name} | ${mb(medians[name].rest).toFixed(1)} MB | ${mb(medians[name].idle).toFixed(1)} MB | ${(medians[name].perIdle / 1024).toFixed(1)} KiB | ${mb(medians[name].peak).toFixed(1)} MB | ${runs.map((r) => mb(r.peak).toFixed(0)).join(', ')} |`,
    );
  }
  console.log('');
  console.log(
    `Medians of ${ROUNDS} rounds; each connection made one round trip through an echo server process first. socat: sum of PSS over its processes.`,
  );
  const ours = medians['isobuild-proxy'];
  if (ours) {
    const ratios = names
      .filter((name) => !name.startsWith('isobuild-proxy'))
      .map(
        (name) =>
          `${(ours.perIdle / medians[name].perIdle).toFixed(2)}× ${name} per idle connection, ${(ours.peak / medians[name].peak).toFixed(2)}× its peak`,
      );
    if (ratios.length > 0) console.log(`isobuild-proxy: ${ratios.join('; ')}.`);
    console.log(
      `isobuild-proxy peak with ${IDLE} idle + ${SLOW} dripping: ${mb(ours.peak).toFixed(0)} MB (target < 100 MB).`,
    );
  }
} finally {
  await Promise.all([...children].map(stop));
  rmSync(work, { recursive: true, force: true });
}
