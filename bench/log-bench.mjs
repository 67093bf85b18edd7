#!/usr/bin/env node
// Log store benchmark (issue 5), side by side in one run against the embedded Azurite (its own process,
// data on disk, as `isobuild build` uses it):
//  1. ingest throughput: Packer-like lines from a child's pipe, masked, spooled and streamed with the real
//     uploader (bench/log-ingest-process.mjs), against a bare sequential append loop over the same lines
//     (batched into ≤ 1 MiB blocks, no masking, no spool) as baseline; and the producer's own write time
//     in each mode and with no upload at all (does uploading ever slow Packer's output pipe?);
//  2. line-to-blob latency at 1,000 lines/s, seen by a follower reading the blob (p50/p99);
//  3. peak RSS of the ingesting process under a 100 MB/s flood;
//  4. recovery after a 20 s outage of the path to storage, frozen (a forwarder that silently drops
//     everything and closes nothing: a dead firewall or NSG) or resetting every connection: from the
//     moment the path is back until every line written so far is stored, at two request deadlines.
// Usage: node bench/log-bench.mjs   (after `npm run build`)
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BuildLog } from '../dist/agent/src/run/build-log.js';
import { openBlobStore } from '../dist/agent/src/logstore/blob-store.js';
import { startEmbeddedAzurite } from '../dist/agent/src/logstore/embedded-azurite.js';
import { readLog } from '../dist/agent/src/logstore/log-reader.js';
import { RunUploads } from '../dist/agent/src/logstore/run-uploads.js';
import { Secret } from '../dist/agent/src/secret.js';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'isobuild-log-bench-'));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const pct = (values, q) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))];
let runs = 0;
/** How long the path to storage is down in the recovery measurement. */
const OUTAGE_MS = 20_000;

const azurite = await startEmbeddedAzurite(work);
try {
  const store = await openBlobStore({
    kind: 'connection-string',
    connectionString: azurite.connectionString,
  });
  await store.container.createIfNotExists();

  function ingest(totalMb, rateMb, mode = 'isobuild') {
    const out = execFileSync(process.execPath, [
      join(root, 'bench/log-ingest-process.mjs'),
      azurite.connectionString.reveal(),
      `ingest-${runs++}`,
      work,
      String(totalMb),
      String(rateMb),
      mode,
    ]);
    return JSON.parse(out.toString());
  }

  // 1. Throughput, interleaved rounds.
  const MB = 64;
  const ours = [];
  const bare = [];
  const producerWith = [];
  const producerWithout = [];
  const producerBare = [];
  const rate = (run) => run.bytes / 1024 / 1024 / (run.storedMs / 1000);
  for (let round = 0; round < 3; round++) {
    const run = ingest(MB, 0, 'isobuild');
    if (!run.complete) throw new Error('an ingest run did not store everything');
    ours.push(rate(run));
    producerWith.push(run.producerMs);
    const baseline = ingest(MB, 0, 'bare');
    bare.push(rate(baseline));
    producerBare.push(baseline.producerMs);
    producerWithout.push(ingest(MB, 0, 'local').producerMs);
  }

  // 2. Latency at 1,000 lines/s: each line carries its write time; a follower notes when it sees it.
  const runId = `latency-${runs++}`;
  const files = { customization: join(work, `${runId}.log`), validation: join(work, `${runId}.v.log`) };
  const log = new BuildLog(files.customization, runId, (t) => t);
  const uploads = new RunUploads({ store, runId, files });
  const latencies = [];
  const follower = (async () => {
    let pending = '';
    for await (const chunk of readLog(store.container, runId, 'customization', {
      follow: true,
      intervalMs: 50,
    })) {
      const now = performance.timeOrigin + performance.now();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const sent = /sent=(\d+\.\d+)/.exec(line);
        if (sent) latencies.push(now - Number(sent[1]));
      }
    }
  })();
  const SECONDS = 15;
  await new Promise((resolve) => {
    let written = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 10; i++)
        log.write(
          'PACKER OUT',
          `    null.build_vm: line ${written++} sent=${(performance.timeOrigin + performance.now()).toFixed(3)}`,
        );
      if (written >= SECONDS * 1000) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  await log.close();
  await uploads.close(60_000, () => '{"runState":"Succeeded"}');
  await follower;

  // 3. Peak RSS under a 100 MB/s flood.
  const flood = ingest(600, 100, 'isobuild');

  // 4. Recovery after an outage, 3 runs per case.
  const recovery = [];
  for (const [fault, timeoutMs] of [
    ['freeze', 15_000],
    ['freeze', 5_000],
    ['reset', 15_000],
  ]) {
    const runs = [];
    for (let round = 0; round < 3; round++) runs.push(await recoveryAfterOutage(store, fault, timeoutMs));
    recovery.push({ fault, timeoutMs, runs });
  }

  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  );
  console.log('');
  console.log('| measurement | median (3 runs) | runs | target |');
  console.log('|---|---|---|---|');
  const list = (values, digits = 1) => values.map((v) => v.toFixed(digits)).join(', ');
  console.log(
    `| isobuild ingest, masked, spooled, streamed (${MB} MB) | ${median(ours).toFixed(1)} MB/s | ${list(ours)} | ≥ 0.8× baseline |`,
  );
  console.log(
    `| bare sequential append loop over the same lines (baseline) | ${median(bare).toFixed(1)} MB/s | ${list(bare)} | — |`,
  );
  console.log(
    `| producer write time, isobuild | ${median(producerWith).toFixed(0)} ms | ${list(producerWith, 0)} | not slowed |`,
  );
  console.log(
    `| producer write time, bare loop | ${median(producerBare).toFixed(0)} ms | ${list(producerBare, 0)} | — |`,
  );
  console.log(
    `| producer write time, local file only (no upload) | ${median(producerWithout).toFixed(0)} ms | ${list(producerWithout, 0)} | — |`,
  );
  console.log('');
  console.log(
    `Ingest / baseline: ${(median(ours) / median(bare)).toFixed(2)}× (target ≥ 0.8). Producer time, isobuild / local only: ${(median(producerWith) / median(producerWithout)).toFixed(2)}×.`,
  );
  console.log(
    `Line-to-blob latency at 1,000 lines/s (${latencies.length} lines, follower polling every 50 ms): p50 ${pct(latencies, 0.5).toFixed(0)} ms, p99 ${pct(latencies, 0.99).toFixed(0)} ms (target p99 ≤ 1,500 ms).`,
  );
  console.log(
    `100 MB/s flood (${(flood.bytes / 1024 / 1024).toFixed(0)} MB): peak RSS ${flood.peakRssMb.toFixed(0)} MB (target ≤ 150 MB), producer ${flood.producerMs} ms, all stored after ${(flood.storedMs / 1000).toFixed(1)} s.`,
  );
  console.log('');
  console.log(
    `| recovery after a ${OUTAGE_MS / 1000} s outage (100 lines/s) | request deadline | median (3 runs) | runs |`,
  );
  console.log('|---|---|---|---|');
  for (const { fault, timeoutMs, runs } of recovery)
    console.log(
      `| ${fault === 'freeze' ? 'frozen path (dropped, nothing closed; old connections stay dead)' : 'every connection reset'} | ${timeoutMs / 1000} s | ${(median(runs) / 1000).toFixed(1)} s | ${list(runs.map((ms) => ms / 1000))} s |`,
    );
} finally {
  await azurite.stop();
  rmSync(work, { recursive: true, force: true });
}

/**
 * Streams 100 lines/s through a forwarder of our own, takes the path away for OUTAGE_MS (frozen: bytes
 * read and dropped, nothing closed; or reset: every connection reset at once), and returns how long after
 * the path is back everything written until then is stored.
 */
async function recoveryAfterOutage(directStore, fault, timeoutMs) {
  const forwarder = await startForwarder(Number(new URL(directStore.container.url).port));
  const connectionString = azurite.connectionString.reveal().replace(/:\d+\//, `:${forwarder.port}/`);
  const store = await openBlobStore(
    { kind: 'connection-string', connectionString: new Secret(connectionString) },
    undefined,
    { requestTimeoutMs: timeoutMs },
  );
  const runId = `recovery-${runs++}`;
  const files = { customization: join(work, `${runId}.log`), validation: join(work, `${runId}.v.log`) };
  writeFileSync(files.customization, '');
  writeFileSync(files.validation, '');
  const uploads = new RunUploads({ store, runId, files });
  let written = 0;
  const writer = setInterval(() => appendFileSync(files.customization, `line ${written++} of a build\n`), 10);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  forwarder.down(fault);
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
  const due = statSync(files.customization).size;
  forwarder.up();
  const back = performance.now();
  const blob = directStore.container.getBlobClient(`${runId}/customization.log`);
  while (((await blob.getProperties().catch(() => undefined))?.contentLength ?? 0) < due)
    await new Promise((resolve) => setTimeout(resolve, 20));
  const recoveredMs = performance.now() - back;
  clearInterval(writer);
  const summary = await uploads.close(60_000, () => '{"runState":"Succeeded"}');
  if (!summary.complete)
    throw new Error(`recovery run ${runId} did not store everything: ${summary.problem}`);
  store.close();
  await forwarder.close();
  return recoveredMs;
}

/**
 * A TCP forwarder that can go down: 'freeze' drops every byte and closes nothing, and the connections it
 * caught stay dead afterwards (a NAT or load balancer that lost their flows: the worst case, where only
 * abandoning a request helps); 'reset' resets every connection, and new ones, until up().
 */
async function startForwarder(targetPort) {
  const pairs = new Set();
  let state = 'up';
  const server = createServer((client) => {
    if (state === 'reset') return client.resetAndDestroy();
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    const pair = { client, upstream, dead: state === 'freeze' };
    pairs.add(pair);
    client.on('data', (chunk) => !pair.dead && upstream.write(chunk));
    upstream.on('data', (chunk) => !pair.dead && client.write(chunk));
    const end = () => {
      if (pair.dead) return; // a dead flow carries no close either
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const socket of [client, upstream]) socket.on('error', () => undefined).on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    down(fault) {
      state = fault;
      for (const pair of pairs) {
        if (fault === 'freeze') pair.dead = true;
        else (pair.client.resetAndDestroy(), pair.upstream.destroy());
      }
    },
    up() {
      state = 'up';
    },
    close: () =>
      new Promise((resolve) => {
        for (const { client, upstream } of pairs) (client.destroy(), upstream.destroy());
        server.close(resolve);
      }),
  };
}
