/**
 * Blob Storage goes away in the middle of a real build: the build neither stops nor waits, the lines
 * spool to local disk, and once storage is back the stored customization.log ends byte-identical to the
 * local transcript. Storage goes away in three ways: Azurite stopped (refused connections), a path
 * that freezes (a forwarder that silently drops everything without closing: a dead firewall or NSG) and
 * a path that resets every connection. An outage that outlasts the drain budget leaves a stored status
 * that says "incomplete", never "stored", and `isobuild logs` then warns and exits 4.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import { openBlobStore, type BlobStore } from '../../agent/src/logstore/blob-store.js';
import { readLog } from '../../agent/src/logstore/log-reader.js';
import { Secret } from '../../agent/src/secret.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import {
  startAzurite,
  startAzuriteProcess,
  type AzuriteInstance,
  type AzuriteProcess,
} from '../helpers/azurite.js';
import { CLI, finished, startBuild, writeTemplate } from '../helpers/build-cli.js';
import { startFreezingForwarder, type FreezingForwarder } from '../helpers/freezing-forwarder.js';
import { runProcess } from '../helpers/run-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

let vm: TestVm;
let work: string;
let azurite: AzuriteProcess | undefined;
let memoryAzurite: AzuriteInstance;
let direct: BlobStore;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-log-outage-'));
  memoryAzurite = await startAzurite();
  direct = await openBlobStore({
    kind: 'connection-string',
    connectionString: new Secret(memoryAzurite.connectionString),
  });
});
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});
afterAll(async () => {
  direct?.close();
  await memoryAzurite?.close();
  await azurite?.stop();
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function storedLog(store: BlobStore, runId: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of readLog(store, runId, 'customization', { follow: false })) parts.push(chunk);
  return Buffer.concat(parts);
}

async function storedStatus(runId: string): Promise<RunStatus> {
  const data = await direct.container.getBlobClient(`${runId}/status.json`).downloadToBuffer();
  return JSON.parse(data.toString()) as RunStatus;
}

/** `output line N` numbers in a log, in order. */
const outputLines = (log: string): number[] =>
  [...log.matchAll(/ output line (\d+)$/gm)].map((match) => Number(match[1]));

function logsCli(
  args: string[],
  connectionString = memoryAzurite.connectionString,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [
    CLI,
    'logs',
    ...args,
    '--storage-connection-string',
    connectionString,
  ]);
}

/** A build printing `lines` numbered lines, `gapSeconds` apart, storing through a forwarder of ours. */
async function buildThroughForwarder(
  runId: string,
  lines: number,
  gapSeconds: number,
  args: string[],
): Promise<{ child: ChildProcess; forwarder: FreezingForwarder; stderr: () => string }> {
  const forwarder = await startFreezingForwarder(Number(new URL(memoryAzurite.url).port));
  closers.push(() => forwarder.close());
  const templateFile = await writeTemplate(
    work,
    runId,
    linuxTemplate({
      customize: [
        {
          type: 'Shell',
          name: 'chatty',
          inline: [`for i in $(seq 1 ${lines}); do echo "output line $i"; sleep ${gapSeconds}; done`],
        },
      ],
    }),
  );
  const child = startBuild(vm, work, templateFile, runId, [
    '--storage-connection-string',
    memoryAzurite.connectionString.replace(/:\d+\//, `:${forwarder.port}/`),
    ...args,
  ]);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, forwarder, stderr: () => stderr };
}

const localLogHas = (runId: string, text: string) => async () =>
  (await readFile(join(work, runId, 'customization.log'), 'utf8').catch(() => '')).includes(text);

describe('isobuild logs against a frozen store', () => {
  it('gives up after the request deadline and says where, with exit 4', async () => {
    const forwarder = await startFreezingForwarder(Number(new URL(memoryAzurite.url).port));
    closers.push(() => forwarder.close());
    forwarder.freeze('drop');
    const started = Date.now();

    const logs = await logsCli(
      ['some-run', '--storage-timeout', '1s'],
      memoryAzurite.connectionString.replace(/:\d+\//, `:${forwarder.port}/`),
    );

    expect(logs.code, logs.stderr).toBe(4);
    expect(logs.stderr).toMatch(
      new RegExp(
        `cannot read http://127\\.0\\.0\\.1:${forwarder.port}/.*: no reply from storage within 1\\.0 s`,
      ),
    );
    expect(logs.stderr).not.toMatch(/\n\s+at /);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses a storage timeout too short to mean anything (exit 2)', async () => {
    const logs = await logsCli(['some-run', '--storage-timeout', '0s']);

    expect(logs.code).toBe(2);
    expect(logs.stderr).toContain('--storage-timeout: "0s" is too short for a storage request');
  });
});

describe('a storage outage during a build', () => {
  it('keeps building, spools, and stores a log identical to the local one after 30 s without storage', async () => {
    const dataDir = join(work, 'azurite-data');
    azurite = await startAzuriteProcess(dataDir);
    const port = azurite.port;
    const runId = `outage-${process.pid}`;
    const templateFile = await writeTemplate(
      work,
      runId,
      linuxTemplate({
        customize: [
          {
            type: 'Shell',
            name: 'chatty',
            inline: ['for i in $(seq 1 90); do echo "output line $i"; sleep 0.5; done'],
          },
        ],
      }),
    );
    const child = startBuild(vm, work, templateFile, runId, [
      '--storage-connection-string',
      azurite.connectionString,
      '--log-drain-timeout',
      '60s',
    ]);
    const done = finished(child, join(work, runId));

    await new Promise((resolve) => setTimeout(resolve, 6_000));
    await azurite.stop();
    const outageStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 30_000));
    azurite = await startAzuriteProcess(dataDir, port);
    const outageMs = Date.now() - outageStart;

    const run = await done;
    expect(run.code, run.stderr).toBe(0);
    expect(outageMs).toBeGreaterThanOrEqual(30_000);
    expect(run.stderr).toMatch(/log storage is unreachable \(.*ECONNREFUSED/);
    expect(run.stderr).toContain('log storage is reachable again');
    expect(run.status.logStore?.state).toBe('stored');

    const store = await openBlobStore({
      kind: 'connection-string',
      connectionString: new Secret(azurite.connectionString),
    });
    const local = await readFile(join(work, runId, 'customization.log'));
    expect((await storedLog(store, runId)).equals(local)).toBe(true);
    expect(local.toString()).toContain('output line 90');
    store.close();
  }, 120_000);

  // A 20 s outage in the middle of 2,000 lines, as a frozen path and as resets: the field report's case.
  it.each([
    ['frozen (packets silently dropped)', 'freeze'],
    ['resetting every connection', 'reset'],
  ] as const)(
    'stores all 2,000 lines exactly once, in order, after 20 s of a path %s',
    async (_how, fault) => {
      const runId = `mid-${fault}-${process.pid}`;
      const { child, forwarder } = await buildThroughForwarder(runId, 2000, 0.015, [
        '--storage-timeout',
        '2s',
        '--log-drain-timeout',
        '60s',
      ]);
      const done = finished(child, join(work, runId));

      await waitFor('line 300 in the local log', localLogHas(runId, 'output line 300\n'), 60_000);
      // The connections caught in the freeze stay dead afterwards: only abandoning them recovers.
      if (fault === 'freeze') forwarder.freeze('blackhole');
      else forwarder.outage();
      await sleep(20_000);
      const localAtThaw = (await readFile(join(work, runId, 'customization.log'))).length;
      if (fault === 'freeze') forwarder.thaw();
      else forwarder.restore();
      const thawed = Date.now();
      // Recovery: everything written during the outage is stored soon after it ends.
      await waitFor(
        'the backlog to be stored',
        async () => (await storedLog(direct, runId)).length >= localAtThaw,
        30_000,
      );
      const recoveryMs = Date.now() - thawed;
      const run = await done;

      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(
        fault === 'freeze'
          ? /log storage is unreachable \(no reply from storage within 2\.0 s/
          : /log storage is unreachable \(.*(ECONNRESET|socket hang up)/,
      );
      expect(run.stderr).toContain('log storage is reachable again');
      // A frozen path costs at most one request deadline (2 s) after it is back; resets at most the
      // uploader's longest backoff (10 s). Both plus the time to send the backlog.
      expect(recoveryMs).toBeLessThan(fault === 'freeze' ? 2_000 + 5_000 : 10_000 + 3_000);
      const local = await readFile(join(work, runId, 'customization.log'));
      const stored = await storedLog(direct, runId);
      expect(stored.equals(local)).toBe(true);
      expect(outputLines(stored.toString())).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
      expect(run.status.logStore?.state).toBe('stored');
      const remote = await storedStatus(runId);
      expect(remote.runState).toBe('Succeeded');
      expect(remote.logStore?.state).toBe('stored');
      expect(remote.logStore?.written?.customization).toBe(local.length);

      const logs = await logsCli([runId]);
      expect(logs.code, logs.stderr).toBe(0);
      expect(logs.stdout).toBe(local.toString());
      console.log(`${fault}: recovered ${recoveryMs} ms after the path was back`);
    },
    180_000,
  );

  // The path is down for longer than the drain budget and is back only for the final status.
  it.each([
    ['frozen', 'freeze'],
    ['resetting', 'reset'],
  ] as const)(
    'records "incomplete" (never "stored") when the path stays %s beyond the drain budget',
    async (_how, fault) => {
      const runId = `long-${fault}-${process.pid}`;
      const { child, forwarder, stderr } = await buildThroughForwarder(runId, 200, 0.02, [
        '--storage-timeout',
        '2s',
        '--log-drain-timeout',
        '4s',
      ]);
      const done = finished(child, join(work, runId));

      await waitFor('line 50 in the local log', localLogHas(runId, 'output line 50\n'), 60_000);
      if (fault === 'freeze') forwarder.freeze('drop');
      else forwarder.outage();
      // Back once the drain has given up: only the final status gets through.
      await waitFor(
        'the drain to give up',
        () => stderr().includes('not everything reached the log store'),
        90_000,
      );
      if (fault === 'freeze') forwarder.thaw();
      else forwarder.restore();
      const run = await done;

      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(
        /warning: not everything reached the log store within 4 s \(--log-drain-timeout\): customization\.log: \d+ byte\(s\) not stored/,
      );
      expect(run.status.logStore?.state).toBe('incomplete');
      const remote = await storedStatus(runId);
      expect(remote.runState).toBe('Succeeded');
      expect(remote.logStore?.state).toBe('incomplete');
      expect(remote.logStore?.detail).toBe(run.status.logStore?.detail);
      const local = await readFile(join(work, runId, 'customization.log'), 'utf8');
      const stored = (await storedLog(direct, runId)).toString();
      expect(stored.length).toBeLessThan(local.length);
      expect(local.startsWith(stored)).toBe(true);

      const logs = await logsCli([runId]);
      expect(logs.code).toBe(4);
      expect(logs.stdout).toBe(stored);
      expect(logs.stderr).toContain(`the stored log of run ${runId} is incomplete`);
      expect(logs.stderr).toContain(join(work, runId, 'customization.log'));
      expect(logs.stderr).not.toMatch(/\n\s+at /);
    },
    180_000,
  );

  it('keeps the stored status of a quiet, live build fresh, so logs never calls it overdue', async () => {
    const runId = `quiet-${process.pid}`;
    // 1 s timeout: refreshed every 4 s, each one due within 9 s; the build is silent for 14 s.
    const { child } = await buildThroughForwarder(runId, 2, 7, ['--storage-timeout', '1s']);
    const done = finished(child, join(work, runId));
    await waitFor('the first line', localLogHas(runId, 'output line 1\n'), 60_000);
    await sleep(11_000);

    const mid = await storedStatus(runId);
    const logs = await logsCli([runId]);
    const run = await done;

    expect(mid.runState).toBe('Running');
    expect(Date.parse(mid.logStore!.refreshBy!)).toBeGreaterThan(Date.now() - 1_000);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('output line 1');
    expect(run.code, run.stderr).toBe(0);
    expect((await storedStatus(runId)).logStore?.state).toBe('stored');
  }, 120_000);

  it('leaves a stored status that goes stale, never "stored", when the path is dead until the build is gone', async () => {
    const runId = `dead-${process.pid}`;
    const { child, forwarder } = await buildThroughForwarder(runId, 100, 0.02, [
      '--storage-timeout',
      '1s',
      '--log-drain-timeout',
      '2s',
    ]);
    const done = finished(child, join(work, runId));
    await waitFor('line 30 in the local log', localLogHas(runId, 'output line 30\n'), 60_000);
    forwarder.freeze('drop');
    const run = await done;
    forwarder.thaw();

    expect(run.code, run.stderr).toBe(0);
    expect(run.status.logStore?.state).toBe('incomplete');
    expect(run.status.logStore?.detail).toMatch(/status\.json: the final status was not stored/);
    expect(run.stderr).toMatch(
      /the stored status\.json still shows an earlier state \(it never says "stored"\)/,
    );
    const remote = await storedStatus(runId);
    expect(remote.logStore?.state).not.toBe('stored');
    expect(remote.runState).toBe('Running');

    // Once the status is overdue (1 s timeout: refreshed every 4 s, due within 9 s), `logs` says why
    // the log may end early and exits 4.
    await waitFor(
      'the stored status to be overdue',
      () => Date.parse(remote.logStore!.refreshBy!) < Date.now(),
      15_000,
    );
    const logs = await logsCli([runId]);
    expect(logs.code).toBe(4);
    expect(logs.stderr).toMatch(/the run is shown as Running, but its status should have been replaced by/);
    expect(logs.stderr).toContain('the build stopped or lost the store');
  }, 120_000);
});
