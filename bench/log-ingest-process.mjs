#!/usr/bin/env node
// One isobuild-like log ingest, for bench/log-bench.mjs: a producer child writes Packer-like lines to a
// pipe (as Packer does) at a given rate; this process reads them line by line, masks them (3 secrets),
// writes them through BuildLog (the local spool) and streams them to Azurite with the real uploader.
// Usage: log-ingest-process.mjs <connectionString> <runId> <workDir> <totalMB> <ratePerSecMB|0=flat out> [mode]
//   mode: isobuild (default), local (no upload), bare (the baseline: lines batched into ≤ 1 MiB blocks and
//   appended in a sequential loop while reading waits; no masking, no spool file, no timestamps)
// Prints JSON: { bytes, producerMs, storedMs, peakRssMb }
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { BuildLog } from '../dist/agent/src/run/build-log.js';
import { openBlobStore } from '../dist/agent/src/logstore/blob-store.js';
import { RunUploads } from '../dist/agent/src/logstore/run-uploads.js';
import { SecretMasker } from '../dist/agent/src/mask-secrets.js';
import { Secret } from '../dist/agent/src/secret.js';

const [connectionString, runId, workDir, totalMb, rateMb, mode = 'isobuild'] = process.argv.slice(2);
const masker = new SecretMasker(['s3cr3t-token-value', 'another/Secret+Value==', 'p@ssw0rd-for-winrm']);
const files = { customization: join(workDir, `${runId}.log`), validation: join(workDir, `${runId}.v.log`) };
const log = new BuildLog(files.customization, runId, (t) => masker.mask(t));
const store = await openBlobStore({
  kind: 'connection-string',
  connectionString: new Secret(connectionString),
});
const uploads =
  mode === 'isobuild' ? new RunUploads({ store, runId, files, flushIntervalMs: 250 }) : undefined;

// The producer: Packer-like debug lines, as fast as the pipe takes them or at `rate` MB/s.
const producer = spawn(
  process.execPath,
  [
    '-e',
    `const total = ${Number(totalMb)} * 1024 * 1024, rate = ${Number(rateMb)} * 1024 * 1024;
     const line = (i) => '2026/11/24 23:57:25 packer-builder-null plugin: [DEBUG] scp: Uploading file-' + i + '.sh: perms=C0644 size=74\\n';
     let written = 0, i = 0; const start = Date.now();
     function pump() {
       let batch = '';
       while (batch.length < 65536) batch += line(i++);
       written += batch.length;
       const ok = process.stdout.write(batch);
       if (written >= total) return process.stdout.end(() => process.stderr.write(String(Date.now() - start)));
       const due = rate > 0 ? start + (written / rate) * 1000 - Date.now() : 0;
       if (!ok) process.stdout.once('drain', () => setTimeout(pump, Math.max(0, due)));
       else setTimeout(pump, Math.max(0, due));
     }
     pump();`,
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
const producerExited = new Promise((resolve) => producer.once('exit', resolve));
let producerMs = '';
producer.stderr.on('data', (chunk) => (producerMs += chunk));
const start = performance.now();
let bytes = 0;
if (mode === 'bare') {
  const blob = store.container.getAppendBlobClient(`${runId}/customization.log`);
  await blob.createIfNotExists();
  let batch = [];
  let size = 0;
  const append = async () => {
    const block = Buffer.from(batch.join(''));
    await blob.appendBlock(block, block.length, { conditions: { appendPosition: bytes } });
    bytes += block.length;
    batch = [];
    size = 0;
  };
  for await (const line of createInterface({ input: producer.stdout })) {
    batch.push(`${line}\n`);
    size += line.length + 1;
    if (size >= 1024 * 1024 - 256) await append();
  }
  if (size > 0) await append();
} else {
  for await (const line of createInterface({ input: producer.stdout })) log.write('PACKER ERR', line);
}
await producerExited;
await log.close();
const summary = uploads ? await uploads.close(600_000, () => '{"runState":"Succeeded"}') : { complete: true };
const storedMs = performance.now() - start;
if (mode !== 'bare') bytes = log.bytesWritten;
const peakRssMb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
process.stdout.write(
  `${JSON.stringify({ bytes, producerMs: Number(producerMs), storedMs, peakRssMb, complete: summary.complete })}\n`,
);
