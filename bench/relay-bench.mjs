#!/usr/bin/env node
// Relay benchmark (issue 4), every path measured side by side in one run on loopback:
// direct, the isobuild relay, relay + isobuild-proxy, socat (nodelay) and haproxy (mode tcp).
//  1. iperf3 throughput (2 s per path, 5 interleaved runs, median);
//  2. 1-byte round trips against an echo process: a fresh process's first 1,000 (cold), then 5 interleaved
//     rounds of 1,000 per path after a 5,000 warm-up: p50 and p99;
//  3. isobuild-proxy's memory beside haproxy and socat: bench/proxy-memory-bench.mjs, run from here so that
//     `make bench` includes it (skip it with --no-memory).
// Usage: node bench/relay-bench.mjs [--no-memory]   (after `npm run build`; needs iperf3, socat, haproxy)
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

const root = resolve(import.meta.dirname, '..');
const { PROXY_NODE_FLAGS } = await import('../dist/proxy/src/runtime.js');
const work = mkdtempSync(join(tmpdir(), 'isobuild-relay-bench-'));
const children = [];
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const ROUNDS = 5;
const ROUND = 1000;
/** A fresh Node process runs its first few thousand round trips through unoptimised code (JIT tiers). */
const WARMUP = 5000;

function run(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}
function firstLine(child) {
  return new Promise((done) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) done(out.split('\n')[0]);
    });
  });
}
async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const port = server.address().port;
  await new Promise((done) => server.close(done));
  return port;
}

/** Starts every forwarder in front of `targetPort`; returns { name: port }. */
async function forwarders(targetPort) {
  const relay = Number(
    await firstLine(
      run(process.execPath, [join(root, 'bench/relay-process.mjs'), '127.0.0.1', String(targetPort)]),
    ),
  );
  const proxyChild = run(process.execPath, [
    ...PROXY_NODE_FLAGS,
    join(root, 'dist/proxy/src/main.js'),
    '--listen',
    '127.0.0.1',
    '--ssh-port',
    '0',
    '--winrm-port',
    '0',
    '--health-port=-1',
    '--target',
    '127.0.0.1',
    '--target-ssh-port',
    String(targetPort),
  ]);
  const proxyPort = JSON.parse((await firstLine(proxyChild)).trim()).ports.ssh;
  const relayViaProxy = Number(
    await firstLine(
      run(process.execPath, [join(root, 'bench/relay-process.mjs'), '127.0.0.1', String(proxyPort)]),
    ),
  );
  const socatPort = await freePort();
  run('socat', [
    `TCP-LISTEN:${socatPort},bind=127.0.0.1,fork,reuseaddr,nodelay`,
    `TCP:127.0.0.1:${targetPort},nodelay`,
  ]);
  const haproxyPort = await freePort();
  const cfg = join(work, `haproxy-${targetPort}.cfg`);
  writeFileSync(
    cfg,
    `global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\nfrontend f\n  bind 127.0.0.1:${haproxyPort}\n  default_backend b\nbackend b\n  server s 127.0.0.1:${targetPort}\n`,
  );
  run('haproxy', ['-f', cfg, '-db']);
  await sleep(500);
  return {
    direct: targetPort,
    'isobuild relay': relay,
    'relay + isobuild-proxy': relayViaProxy,
    'socat (nodelay)': socatPort,
    'haproxy (mode tcp)': haproxyPort,
    proxyPort,
  };
}

/** 1-byte round trips on one connection, in µs; `warmup` more are made first and not counted. */
async function roundTrips(port, n, warmup = 0) {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise((done) => socket.once('connect', done));
  const samples = [];
  const one = Buffer.from([1]);
  for (let i = -warmup; i < n; i++) {
    const start = performance.now();
    await new Promise((done) => {
      socket.once('data', done);
      socket.write(one);
    });
    if (i >= 0) samples.push((performance.now() - start) * 1000);
  }
  socket.destroy();
  return samples;
}

function percentiles(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return { p50: at(0.5), p99: at(0.99) };
}

function iperfGbit(port) {
  // iperf3's server runs one test at a time and may still be finishing the previous one ("busy").
  for (let attempt = 1; ; attempt++) {
    const result = spawnSync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', '2', '-J'], {
      encoding: 'utf8',
    });
    const json = JSON.parse(result.stdout || '{}');
    if (json.end?.sum_received) return json.end.sum_received.bits_per_second / 1e9;
    if (attempt === 5) throw new Error(`iperf3 through port ${port} failed: ${json.error ?? result.stderr}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

try {
  // Throughput against iperf3.
  const iperfPort = await freePort();
  run('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);
  await sleep(300);
  const tp = await forwarders(iperfPort);
  // Round trips against an echo server in its own process, as the build VM's sshd would be.
  const echoPort = Number(
    await firstLine(
      run(process.execPath, [
        '-e',
        `const s = require('node:net').createServer({ noDelay: true }, (c) => c.on('data', (d) => c.write(d)));
         s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
      ]),
    ),
  );
  const rt = await forwarders(echoPort);

  const paths = [
    'direct',
    'isobuild relay',
    'relay + isobuild-proxy',
    'socat (nodelay)',
    'haproxy (mode tcp)',
  ];
  // Every path is measured in interleaved rounds, so a noisy moment on this shared machine hits all alike.
  const cold = {};
  for (const name of paths) cold[name] = percentiles(await roundTrips(rt[name], ROUND)).p99;
  for (const name of paths) await roundTrips(rt[name], 0, WARMUP);
  const warm = Object.fromEntries(paths.map((name) => [name, []]));
  const gbit = Object.fromEntries(paths.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++)
    for (const name of paths) warm[name].push(...(await roundTrips(rt[name], ROUND)));
  for (let round = 0; round < 5; round++) for (const name of paths) gbit[name].push(iperfGbit(tp[name]));
  const rows = paths.map((name) => ({
    name,
    gbit: median(gbit[name]),
    cold: cold[name],
    ...percentiles(warm[name]),
  }));

  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  const direct = byName.direct;
  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  );
  console.log('');
  console.log(
    `| path | iperf3 Gbit/s (median of 5) | RTT p50 | RTT p99 | added p99 vs direct | cold p99 (first ${ROUND}) |`,
  );
  console.log('|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.gbit.toFixed(2)} | ${r.p50.toFixed(0)} µs | ${r.p99.toFixed(0)} µs | ${r === direct ? '—' : `${(r.p99 - direct.p99).toFixed(0)} µs`} | ${r.cold.toFixed(0)} µs |`,
    );
  console.log('');
  console.log(
    `RTT: 1-byte round trips, ${ROUNDS} interleaved rounds of ${ROUND} per path after ${WARMUP} warm-up round trips; cold = a fresh process's first ${ROUND}.`,
  );
  const relay = byName['isobuild relay'];
  console.log('');
  console.log(
    `Relay throughput: ${(relay.gbit / byName['haproxy (mode tcp)'].gbit).toFixed(2)}× haproxy (target ≥ 0.9), ${(relay.gbit / byName['socat (nodelay)'].gbit).toFixed(2)}× socat (target ≥ 1.3).`,
  );
  console.log(
    `Added p99 per hop: relay ${(relay.p99 - direct.p99).toFixed(0)} µs, relay + proxy ${((byName['relay + isobuild-proxy'].p99 - direct.p99) / 2).toFixed(0)} µs per hop (target ≤ 150 µs).`,
  );
} finally {
  for (const child of children) child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

if (!process.argv.includes('--no-memory')) {
  console.log('');
  spawnSync(process.execPath, [join(root, 'bench/proxy-memory-bench.mjs')], { stdio: 'inherit' });
}
