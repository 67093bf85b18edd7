/**
 * The log store against real Azurite: live appends that match the local file byte for byte, rollover and
 * reading across parts (also while they are written), a lost append reply that must not duplicate, a
 * second writer that must be detected, both end-of-blob answers, the spool bound, and safe bundle unpacking.
 */
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BuildLog } from '../../agent/src/run/build-log.js';
import { isIsobuildError } from '../../agent/src/errors.js';
import { AppendUploader, partName } from '../../agent/src/logstore/append-uploader.js';
import { openBlobStore, type BlobStore } from '../../agent/src/logstore/blob-store.js';
import { unpackBundle } from '../../agent/src/logstore/bundle.js';
import {
  readLog,
  readRange,
  storedLogProblem,
  type StoredStatus,
} from '../../agent/src/logstore/log-reader.js';
import { isStorageTimeout } from '../../agent/src/logstore/request-deadline.js';
import { RunUploads } from '../../agent/src/logstore/run-uploads.js';
import { Secret } from '../../agent/src/secret.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { startFreezingForwarder, type FreezingForwarder } from '../helpers/freezing-forwarder.js';
import { startLossyProxy } from '../helpers/lossy-proxy.js';

let azurite: AzuriteInstance;
let store: BlobStore;
let work: string;
let counter = 0;

beforeAll(async () => {
  azurite = await startAzurite();
  store = await openBlobStore({
    kind: 'connection-string',
    connectionString: new Secret(azurite.connectionString),
  });
  work = await mkdtemp(join(tmpdir(), 'isobuild-log-store-'));
});
afterAll(async () => {
  await azurite.close();
  await rm(work, { recursive: true, force: true });
});

const newRun = (): { runId: string; file: string } => {
  const runId = `run-${counter++}`;
  return { runId, file: join(work, `${runId}.log`) };
};
const lines = (from: number, count: number): string =>
  Array.from({ length: count }, (_, i) => `[r] PACKER OUT line ${from + i} ✓ ünïcode\n`).join('');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('AppendUploader', () => {
  it('streams a growing file live and ends byte-identical', async () => {
    const { runId, file } = newRun();
    await writeFile(file, '');
    const uploader = new AppendUploader({
      store,
      file,
      blobName: `${runId}/customization.log`,
      flushIntervalMs: 30,
    });
    uploader.start();
    for (let i = 0; i < 10; i++) {
      await appendFile(file, lines(i * 50, 50));
      await sleep(60);
    }
    // Live: most of it is there before close.
    expect(uploader.uploadedBytes).toBeGreaterThan(0);
    const result = await uploader.close(10_000);

    expect(result.complete).toBe(true);
    const stored = await store.container.getBlobClient(`${runId}/customization.log`).downloadToBuffer();
    expect(stored.equals(await readFile(file))).toBe(true);
    const properties = await store.container
      .getAppendBlobClient(`${runId}/customization.log`)
      .getProperties();
    expect(properties.blobCommittedBlockCount).toBeGreaterThan(3);
  });

  it('rolls over to .1, .2 … and a follower reads across the parts while they are written', async () => {
    const { runId, file } = newRun();
    await writeFile(file, '');
    const uploader = new AppendUploader({
      store,
      file,
      blobName: `${runId}/customization.log`,
      flushIntervalMs: 20,
      maxBlocksPerBlob: 3,
    });
    uploader.start();
    const follower = collect(readLog(store, runId, 'customization', { follow: true, intervalMs: 20 }));
    for (let i = 0; i < 12; i++) {
      await appendFile(file, lines(i * 10, 10));
      await sleep(50);
    }
    const result = await uploader.close(10_000);
    await store.container.getBlockBlobClient(`${runId}/status.json`).upload('{"runState":"Succeeded"}', 24);

    expect(result.complete).toBe(true);
    expect(result.parts.length).toBeGreaterThanOrEqual(3);
    expect(result.parts[1]).toBe(`${runId}/customization.1.log`);
    const local = await readFile(file);
    expect((await follower).equals(local)).toBe(true);
    const again = await collect(readLog(store, runId, 'customization', { follow: false }));
    expect(again.equals(local)).toBe(true);
  });

  /** Streams `count` lines, one every 60–80 ms, through a proxy that loses the replies `pick` chooses. */
  async function streamThroughLossyProxy(pick: (appendNumber: number) => boolean, count: number) {
    const { runId, file } = newRun();
    let appends = 0;
    const proxy = await startLossyProxy(
      Number(new URL(azurite.url).port),
      (head) => head.includes('comp=appendblock') && pick(++appends),
    );
    try {
      const lossy = await openBlobStore({
        kind: 'connection-string',
        connectionString: new Secret(azurite.connectionString.replace(/:\d+\//, `:${proxy.port}/`)),
      });
      await writeFile(file, '');
      const uploader = new AppendUploader({
        store: lossy,
        file,
        blobName: `${runId}/customization.log`,
        flushIntervalMs: 20,
      });
      uploader.start();
      for (let i = 0; i < count; i++) {
        await appendFile(file, lines(i, 1));
        await sleep(70);
      }
      const result = await uploader.close(10_000);
      const stored = await store.container.getBlobClient(`${runId}/customization.log`).downloadToBuffer();
      return {
        dropped: proxy.dropped(),
        result,
        stored: stored.toString(),
        local: await readFile(file, 'utf8'),
      };
    } finally {
      await proxy.close();
    }
  }

  it('does not duplicate an append whose reply was lost', async () => {
    const run = await streamThroughLossyProxy((n) => n === 3, 6);

    expect(run.dropped).toBe(1);
    expect(run.result.complete).toBe(true);
    expect(run.stored).toBe(run.local);
  });

  it('keeps a lost append when more lines arrived before the retry, without duplicating it', async () => {
    // Append 3 lands but its reply is lost; the SDK's immediate retry (a 412) is lost too. By the time
    // the uploader tries again, more lines are waiting, so its next block is longer than the lost one.
    const run = await streamThroughLossyProxy((n) => n === 3 || n === 4, 12);

    expect(run.dropped).toBe(2);
    expect(run.result.complete).toBe(true);
    expect(run.stored).toBe(run.local);
  });

  it('stops and says so when another writer changed the blob', async () => {
    const { runId, file } = newRun();
    await writeFile(file, lines(0, 5));
    const blobName = `${runId}/customization.log`;
    const uploader = new AppendUploader({ store, file, blobName, flushIntervalMs: 20 });
    uploader.start();
    while (uploader.uploadedBytes === 0) await sleep(10);
    await store.container.getAppendBlobClient(blobName).appendBlock('intruder\n', 9);
    await appendFile(file, lines(5, 5));

    const result = await uploader.close(5_000);

    expect(result.complete).toBe(false);
    expect(result.lastError).toContain('changed by another writer');
  });
});

/** A store reached through a forwarder that can freeze, with a 1 s request deadline (tests take seconds). */
async function storeBehindForwarder(): Promise<{ forwarder: FreezingForwarder; frozenStore: BlobStore }> {
  const forwarder = await startFreezingForwarder(Number(new URL(azurite.url).port));
  closers.push(() => forwarder.close());
  const frozenStore = await openBlobStore(
    {
      kind: 'connection-string',
      connectionString: new Secret(azurite.connectionString.replace(/:\d+\//, `:${forwarder.port}/`)),
    },
    undefined,
    { requestTimeoutMs: REQUEST_TIMEOUT_MS },
  );
  closers.push(() => Promise.resolve(frozenStore.close()));
  return { forwarder, frozenStore };
}

const REQUEST_TIMEOUT_MS = 1_000;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

/** The numbers of the `line N` lines in `text`, in order. */
const lineNumbers = (text: string): number[] => [...text.matchAll(/ line (\d+) /g)].map((m) => Number(m[1]));

/**
 * Writes `count` lines, one every `everyMs`, while `fault` runs against the forwarder; returns the
 * uploader's result, what is stored, the local file, and when the uploader had caught up after the fault.
 */
async function streamThrough(
  fault: (forwarder: FreezingForwarder) => Promise<void>,
  { count = 300, everyMs = 10, closeBudgetMs = 15_000, catchUp = true } = {},
) {
  const { forwarder, frozenStore } = await storeBehindForwarder();
  const { runId, file } = newRun();
  await writeFile(file, '');
  const uploader = new AppendUploader({
    store: frozenStore,
    file,
    blobName: `${runId}/customization.log`,
    flushIntervalMs: 20,
  });
  uploader.start();
  let written = 0;
  const writing = (async () => {
    for (; written < count; written++) {
      await appendFile(file, lines(written, 1));
      await sleep(everyMs);
    }
  })();
  await sleep(500);
  await fault(forwarder);
  const faultEnded = Date.now();
  // Caught up: everything written before the fault ended is stored.
  const target = (await stat(file)).size;
  while (catchUp && uploader.uploadedBytes < target && Date.now() - faultEnded < 30_000) await sleep(20);
  const recoveryMs = Date.now() - faultEnded;
  await writing;
  const closing = Date.now();
  const result = await uploader.close(closeBudgetMs);
  const closeMs = Date.now() - closing;
  const stored = await store.container
    .getBlobClient(`${runId}/customization.log`)
    .downloadToBuffer()
    .catch(() => Buffer.alloc(0));
  return { forwarder, result, stored, local: await readFile(file), recoveryMs, closeMs };
}

describe('a frozen path to storage (packets dropped, nothing closed)', () => {
  it.each([
    ['that comes back', 'drop'],
    ['whose old connections stay dead', 'blackhole'],
  ] as const)(
    'abandons the stuck request with its socket on a path %s, and stores every line exactly once, in order',
    async (_how, mode) => {
      let frozeAt = 0;
      const run = await streamThrough(async (forwarder) => {
        forwarder.freeze(mode);
        frozeAt = Date.now();
        await sleep(4_000);
        forwarder.thaw();
      });

      expect(run.result.complete, run.result.lastError).toBe(true);
      expect(run.stored.equals(run.local)).toBe(true);
      expect(lineNumbers(run.stored.toString())).toEqual(Array.from({ length: 300 }, (_, i) => i));
      // The client closed a connection that the freeze had swallowed, about one deadline into it…
      const abandoned = run.forwarder.connections.filter(
        (c) =>
          c.clientClosedAt !== undefined && c.clientClosedAt > frozeAt && c.clientClosedAt < frozeAt + 4_000,
      );
      expect(abandoned.length).toBeGreaterThan(0);
      // …and went on over fresh connections; it caught up within about one deadline of the thaw.
      expect(run.forwarder.connections.some((c) => c.openedAt > frozeAt)).toBe(true);
      expect(run.recoveryMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1_500);
    },
  );

  it('stores every line exactly once when abandoned appends reach storage late, after the thaw', async () => {
    const run = await streamThrough(async (forwarder) => {
      // Held, not dropped: what the client gave up on is delivered when the path is back.
      forwarder.freeze('hold');
      await sleep(4_000);
      forwarder.thaw();
    });

    expect(run.result.complete, run.result.lastError).toBe(true);
    expect(run.stored.equals(run.local)).toBe(true);
    expect(lineNumbers(run.stored.toString())).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('stores every line exactly once through an outage of resets and refusals', async () => {
    const run = await streamThrough(async (forwarder) => {
      forwarder.outage();
      await sleep(4_000);
      forwarder.restore();
    });

    expect(run.result.complete, run.result.lastError).toBe(true);
    expect(run.stored.equals(run.local)).toBe(true);
    expect(lineNumbers(run.stored.toString())).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('gives up within the drain budget when the path stays frozen, and says what is missing', async () => {
    const run = await streamThrough((forwarder) => Promise.resolve(forwarder.freeze('drop')), {
      count: 100,
      closeBudgetMs: 2_000,
      catchUp: false,
    });

    expect(run.closeMs).toBeLessThan(2_000 + 500);
    expect(run.result.complete).toBe(false);
    expect(run.result.backlogBytes).toBeGreaterThan(0);
    expect(run.result.uploadedBytes + run.result.backlogBytes).toBe(run.local.length);
    expect(run.result.lastError).toMatch(/no reply from storage within 1\.0 s|drain time/);
    // An append whose request got through before the freeze, but whose reply was dropped, is stored
    // without the client ever knowing: the stored log is the local one's start, at least what was confirmed.
    expect(run.stored.length).toBeGreaterThanOrEqual(run.result.uploadedBytes);
    expect(run.stored.equals(run.local.subarray(0, run.stored.length))).toBe(true);
  });

  it('drops the idle connections when a request times out, so one timeout is all a dead pool costs', async () => {
    const { forwarder, frozenStore } = await storeBehindForwarder();
    await store.container.createIfNotExists();
    await store.container.getBlockBlobClient('pool/blob').upload('x', 1);
    const blob = frozenStore.container.getBlobClient('pool/blob');
    // Four requests at once leave four idle keep-alive connections in the pool.
    await Promise.all(
      Array.from({ length: 4 }, () =>
        frozenStore.deadlines.run((abortSignal) => blob.exists({ abortSignal })),
      ),
    );
    expect(forwarder.connections.length).toBe(4);
    // A load balancer loses its flow table: every open connection goes silent, new ones work.
    forwarder.freezeExisting('drop');

    const first = await frozenStore.deadlines
      .run((abortSignal) => blob.exists({ abortSignal }))
      .catch((error: unknown) => error);
    const started = Date.now();
    const second = await frozenStore.deadlines.run((abortSignal) => blob.exists({ abortSignal }));

    expect(isStorageTimeout(first)).toBe(true);
    expect(second).toBe(true);
    expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS / 2);
    expect(forwarder.connections.length).toBe(5);
  });
});

describe('RunUploads: the stored status is never more optimistic than the truth', () => {
  const statusOf = async (runId: string): Promise<string | undefined> =>
    (
      await store.container
        .getBlobClient(`${runId}/status.json`)
        .downloadToBuffer()
        .catch(() => undefined)
    )?.toString();

  async function runUploads(frozenStore: BlobStore) {
    const { runId, file } = newRun();
    const files = { customization: file, validation: `${file}.validation` };
    await writeFile(files.customization, lines(0, 50));
    await writeFile(files.validation, '');
    const uploads = new RunUploads({ store: frozenStore, runId, files, flushIntervalMs: 20 });
    return { runId, files, uploads };
  }

  it('stores the final status after the drain, from its outcome: incomplete when lines are missing', async () => {
    const { forwarder, frozenStore } = await storeBehindForwarder();
    forwarder.freeze('drop');
    const { runId, uploads } = await runUploads(frozenStore);

    const summary = await uploads.close(1_500, (drained) => {
      forwarder.thaw(); // storage is back just in time for the final status
      return JSON.stringify({ state: drained.complete ? 'stored' : 'incomplete', problem: drained.problem });
    });

    expect(summary.complete).toBe(false);
    expect(summary.problem).toMatch(/customization\.log: \d+ byte\(s\) not stored/);
    expect(summary.statusProblem).toBeUndefined();
    expect(JSON.parse((await statusOf(runId))!)).toMatchObject({ state: 'incomplete' });
  });

  it('says "stored" only once every byte is confirmed', async () => {
    const { frozenStore } = await storeBehindForwarder();
    const { runId, files, uploads } = await runUploads(frozenStore);
    let storedWhenCalled: Buffer = Buffer.alloc(0);

    const summary = await uploads.close(10_000, async (drained) => {
      storedWhenCalled = await store.container.getBlobClient(`${runId}/customization.log`).downloadToBuffer();
      return JSON.stringify({ state: drained.complete ? 'stored' : 'incomplete' });
    });

    expect(summary).toEqual({ complete: true });
    expect(storedWhenCalled.equals(await readFile(files.customization))).toBe(true);
    expect(await statusOf(runId)).toBe('{"state":"stored"}');
  });

  it('keeps the earlier status when the final one cannot be stored, and says so', async () => {
    const { forwarder, frozenStore } = await storeBehindForwarder();
    const { runId, uploads } = await runUploads(frozenStore);
    uploads.publishStatus('{"state":"uploading"}');
    while ((await statusOf(runId)) === undefined) await sleep(20);
    const started = Date.now();

    const summary = await uploads.close(5_000, () => {
      forwarder.freeze('drop'); // the path dies right after the last log line
      return '{"state":"stored"}';
    });
    forwarder.thaw();

    expect(summary.complete).toBe(true);
    expect(summary.statusProblem).toMatch(/status\.json: the final status was not stored \(no reply/);
    expect(Date.now() - started).toBeLessThan(5_000 + 2 * REQUEST_TIMEOUT_MS + 1_500);
    expect(await statusOf(runId)).toBe('{"state":"uploading"}');
  });

  it('never lets an abandoned status upload that lands late replace a newer one', async () => {
    const { forwarder, frozenStore } = await storeBehindForwarder();
    const { runId, uploads } = await runUploads(frozenStore);
    uploads.publishStatus('{"v":0}');
    while ((await statusOf(runId)) === undefined) await sleep(20);
    // v1 is caught by a freeze that holds its bytes; the client gives up on it after its deadline.
    forwarder.freeze('hold');
    uploads.publishStatus('{"v":1}');
    await sleep(REQUEST_TIMEOUT_MS + 500);
    forwarder.admitNew();

    await uploads.close(5_000, () => '{"v":2}');
    expect(await statusOf(runId)).toBe('{"v":2}');
    forwarder.thaw(); // v1 reaches storage now, conditioned on the version it meant to replace
    await sleep(500);

    expect(forwarder.connections.some((c) => c.bytesToServer > 0 && c.clientClosedAt)).toBe(true);
    expect(await statusOf(runId)).toBe('{"v":2}');
  });
});

describe('reading a stored log against its status', () => {
  const past = new Date(Date.now() - 60_000).toISOString();
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const status = (runState: string, logStore?: object): StoredStatus => ({
    runId: 'r',
    runState,
    runSubState: 'Customizing',
    message: 'm',
    logs: { customization: '/work/r/customization.log' },
    ...(logStore ? { logStore } : {}),
  });
  const written = { customization: 100, validation: 0 };

  it.each([
    ['a live run', status('Running', { state: 'streaming', refreshBy: future }), 10, undefined],
    ['a status without a store', status('Succeeded'), 10, undefined],
    ['a complete stored run', status('Succeeded', { state: 'stored', written }), 100, undefined],
    [
      'a stored run that is short',
      status('Succeeded', { state: 'stored', written }),
      60,
      /has 60 of its 100 bytes/,
    ],
    [
      'a run recorded as incomplete',
      status('Failed', { state: 'incomplete', detail: 'customization.log: 40 byte(s) not stored', written }),
      60,
      /recorded that not everything reached the store \(customization\.log: 40 byte\(s\) not stored\); the stored customization\.log has 60 of its 100 bytes/,
    ],
    [
      'a run still uploading its last lines',
      status('Succeeded', { state: 'uploading', written, refreshBy: future }),
      60,
      /still being uploaded \(until .*\); try again then, or use --follow/,
    ],
    [
      'a run whose final status never came, short',
      status('Succeeded', { state: 'uploading', written, refreshBy: past }),
      60,
      /final status never reached the store/,
    ],
    [
      'a run whose final status never came, with every byte',
      status('Succeeded', { state: 'uploading', written, refreshBy: past }),
      100,
      undefined,
    ],
    [
      'a run shown as running whose status is overdue',
      status('Running', { state: 'streaming', refreshBy: past }),
      10,
      /shown as Running, but its status should have been replaced by .*: the build stopped or lost the store/,
    ],
  ])('judges %s', (_what, stored, bytes, expected) => {
    const problem = storedLogProblem(stored, 'customization', bytes);
    if (expected) expect(problem).toMatch(expected);
    else expect(problem).toBeUndefined();
  });

  async function storeRun(runId: string, log: string, runStatus: object): Promise<void> {
    const blob = store.container.getAppendBlobClient(`${runId}/customization.log`);
    await store.container.createIfNotExists();
    await blob.create();
    if (log) await blob.appendBlock(log, Buffer.byteLength(log));
    await putStatus(runId, runStatus);
  }
  const putStatus = async (runId: string, runStatus: object): Promise<void> => {
    const text = JSON.stringify(runStatus);
    await store.container.getBlockBlobClient(`${runId}/status.json`).upload(text, Buffer.byteLength(text));
  };

  it('stops following once a run that has ended has every byte stored, final status or not', async () => {
    const { runId } = newRun();
    const log = lines(0, 20);
    await storeRun(runId, log, {
      ...status('Succeeded', {
        state: 'uploading',
        written: { customization: Buffer.byteLength(log) },
        refreshBy: future,
      }),
      runId,
    });

    const read = await collect(readLog(store, runId, 'customization', { follow: true, intervalMs: 20 }));

    expect(read.toString()).toBe(log);
  });

  it('keeps following a run that has ended until its last lines are stored', async () => {
    const { runId } = newRun();
    const log = lines(0, 20);
    const first = lines(0, 10);
    await storeRun(runId, first, {
      ...status('Succeeded', {
        state: 'uploading',
        written: { customization: Buffer.byteLength(log) },
        refreshBy: future,
      }),
      runId,
    });
    const following = collect(readLog(store, runId, 'customization', { follow: true, intervalMs: 20 }));
    await sleep(300);
    const rest = log.slice(first.length);
    await store.container
      .getAppendBlobClient(`${runId}/customization.log`)
      .appendBlock(rest, Buffer.byteLength(rest));

    expect((await following).toString()).toBe(log);
  });

  it('gives up following a status that is overdue, after saying so once', async () => {
    const { runId } = newRun();
    const dueAgo = new Date(Date.now() - 1_000).toISOString();
    await storeRun(runId, lines(0, 3), {
      ...status('Running', { state: 'streaming', refreshBy: dueAgo }),
      runId,
    });
    const overdue: StoredStatus[] = [];
    const started = Date.now();

    const read = await collect(
      readLog(store, runId, 'customization', {
        follow: true,
        intervalMs: 20,
        staleGraceMs: 1_500,
        onOverdue: (s) => overdue.push(s),
      }),
    );

    expect(read.toString()).toBe(lines(0, 3));
    expect(overdue).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('SAS URLs', () => {
  it('upload through a container SAS URL', async () => {
    const { ContainerSASPermissions } = await import('@azure/storage-blob');
    const sasUrl = await store.container.generateSasUrl({
      permissions: ContainerSASPermissions.parse('racw'),
      expiresOn: new Date(Date.now() + 3_600_000),
    });
    const viaSas = await openBlobStore({ kind: 'sas-url', url: new Secret(sasUrl) });
    const { runId, file } = newRun();
    await writeFile(file, lines(0, 20));
    const uploader = new AppendUploader({
      store: viaSas,
      file,
      blobName: `${runId}/customization.log`,
      flushIntervalMs: 20,
    });
    uploader.start();

    const result = await uploader.close(10_000);

    expect(result.complete, result.lastError).toBe(true);
    expect(viaSas.displayUrl).not.toContain('sig=');
    const stored = await store.container.getBlobClient(`${runId}/customization.log`).downloadToBuffer();
    expect(stored.equals(await readFile(file))).toBe(true);
  });
});

describe('refused credentials', () => {
  it('stop the upload at once instead of retrying until the drain budget runs out', async () => {
    const { runId, file } = newRun();
    await writeFile(file, lines(0, 3));
    const forged = await openBlobStore({
      kind: 'sas-url',
      url: new Secret(
        `${azurite.url}/packerlogs?sv=2024-08-04&ss=b&srt=co&sp=rwac&se=2099-01-01T00:00:00Z&sig=Zm9yZ2Vk`,
      ),
    });
    const uploader = new AppendUploader({
      store: forged,
      file,
      blobName: `${runId}/customization.log`,
      flushIntervalMs: 20,
    });
    uploader.start();
    const started = Date.now();

    const result = await uploader.close(30_000);

    expect(Date.now() - started).toBeLessThan(5_000);
    expect(result.complete).toBe(false);
    expect(result.lastError).toMatch(/log upload stopped: HTTP 403/);
  });
});

describe('reading the end of a blob', () => {
  it('treats Azurite’s empty 200 at the end and the 416 past it as "nothing new"', async () => {
    const blob = store.container.getAppendBlobClient(`eof-${counter++}/customization.log`);
    await blob.create();
    await blob.appendBlock('0123456789', 10);

    expect((await readRange(store, blob, 4)).toString()).toBe('456789');
    expect((await readRange(store, blob, 10)).length).toBe(0); // Azurite: 200, empty
    expect((await readRange(store, blob, 50)).length).toBe(0); // 416 InvalidRange
    expect(
      (await readRange(store, store.container.getBlobClient('missing/customization.log'), 0)).length,
    ).toBe(0);
  });
});

describe('the spool bound', () => {
  it('drops lines beyond the bound, counts them, and says so once there is room', async () => {
    const { runId, file } = newRun();
    const log = new BuildLog(file, runId, (t) => t);
    let uploaded = 0;
    let warnings = 0;
    log.setSpoolGate({ limitBytes: 300, backlog: (written) => written - uploaded, onFull: () => warnings++ });
    for (let i = 0; i < 20; i++) log.write('PACKER OUT', `line ${i}`);
    uploaded = log.bytesWritten; // storage caught up
    log.write('PACKER OUT', 'after the outage');
    await log.close();

    const text = await readFile(file, 'utf8');
    expect(warnings).toBe(1);
    expect(text).toContain('line 0');
    expect(text).not.toContain('line 19');
    expect(text).toMatch(/ISOBUILD \d+ line\(s\) were dropped here: .*--log-spool-limit/);
    expect(text.trimEnd().endsWith('after the outage')).toBe(true);
  });
});

describe('unpacking a build bundle', () => {
  async function tarball(name: string, build: (src: string) => Promise<string[]>, preservePaths = false) {
    const src = join(work, `${name}-src`);
    await mkdir(src, { recursive: true });
    const entries = await build(src);
    const file = join(work, `${name}.tar.gz`);
    await tar.create({ gzip: true, file, cwd: src, preservePaths }, entries);
    return file;
  }

  it('unpacks files and directories', async () => {
    const file = await tarball('good', async (src) => {
      await mkdir(join(src, 'packer'), { recursive: true });
      await writeFile(join(src, 'packer', 'customization.pkr.hcl'), 'build {}\n');
      return ['packer'];
    });
    const dir = join(work, 'good-out');
    expect(await unpackBundle(file, dir)).toBe(2);
    expect(await readFile(join(dir, 'packer', 'customization.pkr.hcl'), 'utf8')).toBe('build {}\n');
  });

  it.each([
    [
      'a symbolic link',
      async (src: string) => {
        await symlink('/etc/passwd', join(src, 'passwd'));
        return ['passwd'];
      },
      false,
      /"passwd" is a SymbolicLink/,
    ],
    [
      'a path climbing out',
      async (src: string) => {
        await mkdir(join(src, '..', 'escaped-src'), { recursive: true });
        await writeFile(join(src, '..', 'escaped-src', 'x'), 'x');
        return ['../escaped-src/x'];
      },
      true,
      /points outside the target directory/,
    ],
  ])('refuses %s and writes nothing outside the directory', async (_what, build, preservePaths, message) => {
    const name = `bad-${counter++}`;
    const file = await tarball(name, build, preservePaths);
    const dir = join(work, `${name}-out`, 'inner');

    const error = await unpackBundle(file, dir).catch((e: unknown) => e);

    expect(isIsobuildError(error) && error.message).toMatch(message);
    await expect(stat(join(dir, 'passwd'))).rejects.toThrow();
    await expect(stat(join(work, `${name}-out`, 'escaped-src'))).rejects.toThrow();
  });

  it('refuses a bundle over the size limit', async () => {
    const file = await tarball('big', async (src) => {
      await writeFile(join(src, 'big.bin'), Buffer.alloc(4096));
      return ['big.bin'];
    });
    const error = await unpackBundle(file, join(work, 'big-out'), { maxEntries: 10, maxBytes: 1000 }).catch(
      (e: unknown) => e,
    );
    expect(isIsobuildError(error) && error.message).toMatch(/more than 1000 bytes/);
  });
});

describe('partName', () => {
  it('numbers parts before the extension', () => {
    expect(partName('r/customization.log', 0)).toBe('r/customization.log');
    expect(partName('r/customization.log', 2)).toBe('r/customization.2.log');
    expect(partName('r.1/log', 1)).toBe('r.1/log.1');
  });
});
