#!/usr/bin/env node
// Relay benchmark (issue 4), every path measured side by side in one run on loopback:
// direct, the isobuild relay, relay + isobuild-proxy, socat (nodelay) and haproxy (mode tcp).
//  1. iperf3 throughput (3 s per path, 3 runs, median);
//  2. 1-byte round trips (3,000 per path): p50 and p99;
//  3. RSS of isobuild-proxy holding 1,000 idle connections.
// Usage: node bench/relay-bench.mjs   (after `npm run build`; needs iperf3, socat, haproxy)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'isobuild-relay-bench-'));
const children = [];
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

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
    proxyPid: proxyChild.pid,
  };
}

async function rtt(port, n = 3000) {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise((done) => socket.once('connect', done));
  const samples = [];
  const one = Buffer.from([1]);
  // The first 500 round trips warm up every path's JIT and buffers; they are not counted.
  for (let i = -500; i < n; i++) {
    const start = performance.now();
    await new Promise((done) => {
      socket.once('data', done);
      socket.write(one);
    });
    if (i >= 0) samples.push((performance.now() - start) * 1000);
  }
  socket.destroy();
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(n * 0.5)], p99: samples[Math.floor(n * 0.99)] };
}

function iperf(port) {
  const results = [];
  for (let i = 0; i < 3; i++) {
    const json = JSON.parse(
      execFileSync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', '3', '-J'], { encoding: 'utf8' }),
    );
    results.push(json.end.sum_received.bits_per_second / 1e9);
  }
  return results.sort((a, b) => a - b)[1];
}

try {
  // Throughput against iperf3.
  const iperfPort = await freePort();
  run('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);
  await sleep(300);
  const tp = await forwarders(iperfPort);
  // Round trips against a Node echo server (noDelay).
  const echo = createServer({ noDelay: true }, (socket) => socket.on('data', (chunk) => socket.write(chunk)));
  await new Promise((done) => echo.listen(0, '127.0.0.1', done));
  const rt = await forwarders(echo.address().port);

  const paths = [
    'direct',
    'isobuild relay',
    'relay + isobuild-proxy',
    'socat (nodelay)',
    'haproxy (mode tcp)',
  ];
  const rows = [];
  for (const name of paths) rows.push({ name, gbit: iperf(tp[name]), ...(await rtt(rt[name])) });

  // 1,000 idle connections held through isobuild-proxy.
  const idle = [];
  for (let i = 0; i < 1000; i++) {
    const socket = connect({ host: '127.0.0.1', port: rt.proxyPort });
    idle.push(socket);
    await new Promise((done) => socket.once('connect', done));
  }
  await sleep(500);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${rt.proxyPid}/status`, 'utf8'))[1]) / 1024;
  for (const socket of idle) socket.destroy();
  echo.close();

  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  const direct = byName.direct;
  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  );
  console.log('');
  console.log('| path | iperf3 Gbit/s (median of 3) | 1-byte RTT p50 | p99 | added p99 vs direct |');
  console.log('|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.gbit.toFixed(2)} | ${r.p50.toFixed(0)} µs | ${r.p99.toFixed(0)} µs | ${r === direct ? '—' : `${(r.p99 - direct.p99).toFixed(0)} µs`} |`,
    );
  const relay = byName['isobuild relay'];
  console.log('');
  console.log(
    `Relay throughput: ${(relay.gbit / byName['haproxy (mode tcp)'].gbit).toFixed(2)}× haproxy (target ≥ 0.9), ${(relay.gbit / byName['socat (nodelay)'].gbit).toFixed(2)}× socat (target ≥ 1.3).`,
  );
  console.log(
    `Added p99 per hop: relay ${(relay.p99 - direct.p99).toFixed(0)} µs, relay + proxy ${((byName['relay + isobuild-proxy'].p99 - direct.p99) / 2).toFixed(0)} µs per hop (target ≤ 150 µs).`,
  );
  console.log(`isobuild-proxy RSS with 1,000 idle connections: ${rss.toFixed(0)} MB (target ≤ 100 MB).`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
