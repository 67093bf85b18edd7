/**
 * RunUploads.uploadFile against an in-process Azurite: when a record is uploaded twice, storage keeps the
 * newer file, whether the second upload is queued at once or while the first is still on its way.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureContainer, openBlobStore, type BlobStore } from '../../agent/src/logstore/blob-store.js';
import { RunUploads } from '../../agent/src/logstore/run-uploads.js';
import { Secret } from '../../agent/src/secret.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';

let azurite: AzuriteInstance;
let store: BlobStore;
let work: string;
let runs = 0;

beforeAll(async () => {
  azurite = await startAzurite();
  store = await openBlobStore({
    kind: 'connection-string',
    connectionString: new Secret(azurite.connectionString),
  });
  await ensureContainer(store.container);
  work = await mkdtemp(join(tmpdir(), 'isobuild-run-uploads-'));
});
afterAll(async () => {
  store?.close();
  await azurite?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function newRun(): Promise<{
  runId: string;
  uploads: RunUploads;
  file: (name: string, data: Buffer) => Promise<string>;
}> {
  const runId = `run-${runs++}`;
  const files = {
    customization: join(work, `${runId}.log`),
    validation: join(work, `${runId}.validation.log`),
  };
  await writeFile(files.customization, '');
  await writeFile(files.validation, '');
  return {
    runId,
    uploads: new RunUploads({ store, runId, files }),
    file: async (name, data) => {
      const path = join(work, `${runId}-${name}`);
      await writeFile(path, data);
      return path;
    },
  };
}

const stored = async (blob: string): Promise<{ data: Buffer; contentType?: string }> => {
  const client = store.container.getBlobClient(blob);
  const [data, properties] = await Promise.all([client.downloadToBuffer(), client.getProperties()]);
  return { data, ...(properties.contentType ? { contentType: properties.contentType } : {}) };
};

/**
 * close() waits only for the uploads it knows of; an older one left running would land after it. Waiting
 * this long (several times a 16 MiB upload to the in-process Azurite) lets such an upload show itself.
 */
const letStragglersLand = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1_000));

// The older file is the larger one: were the two uploads to run side by side, it would land last and win.
const OLDER_BYTES = 16 * 1024 * 1024;

describe('RunUploads.uploadFile', () => {
  it('keeps the newer record when the same kind is uploaded twice at once', async () => {
    const { runId, uploads, file } = await newRun();
    const older = await file('sbom-1.json', randomBytes(OLDER_BYTES));
    const newer = await file('sbom-2.json', Buffer.from('{"second": true}\n'));

    uploads.uploadFile('sbom', older);
    uploads.uploadFile('sbom', newer);
    const summary = await uploads.close(8_000, () => '{}');
    await letStragglersLand();

    // The older upload, cancelled for the newer one, is not a problem to report.
    expect(summary).toEqual({ complete: true });
    const blob = await stored(`${runId}/sbom.cdx.json`);
    // Compared by size first: a 16 MiB mismatch would otherwise be printed whole.
    expect(blob.data.length).toBe(17);
    expect(blob.data.toString()).toBe('{"second": true}\n');
    expect(blob.contentType).toBe('application/vnd.cyclonedx+json');
  });

  it('keeps the newer record when it is queued while the older one is being sent', async () => {
    const { runId, uploads, file } = await newRun();
    const older = await file('bundle-1.tar.gz', randomBytes(OLDER_BYTES));
    const newerData = randomBytes(1024);
    const newer = await file('bundle-2.tar.gz', newerData);

    uploads.uploadFile('bundle', older);
    await new Promise((resolve) => setTimeout(resolve, 30)); // the older one is read and on its way
    uploads.uploadFile('bundle', newer);
    const summary = await uploads.close(8_000, () => '{}');
    await letStragglersLand();

    expect(summary).toEqual({ complete: true });
    const { data } = await stored(`${runId}/build-bundle.tar.gz`);
    expect(data.length).toBe(newerData.length);
    expect(data.equals(newerData)).toBe(true);
  });

  it('uploads each kind of record on its own: a newer SBOM does not cancel the baseline', async () => {
    const { runId, uploads, file } = await newRun();
    uploads.uploadFile('baseline', await file('baseline.json', Buffer.from('{"baseline": 1}')));
    uploads.uploadFile('sbom', await file('sbom.json', Buffer.from('{"sbom": 1}')));
    uploads.uploadFile('provenance', await file('provenance.json', Buffer.from('{"provenance": 1}')));
    expect(await uploads.close(8_000, () => '{}')).toEqual({ complete: true });

    expect((await stored(`${runId}/inventory-before.json`)).data.toString()).toBe('{"baseline": 1}');
    expect((await stored(`${runId}/sbom.cdx.json`)).data.toString()).toBe('{"sbom": 1}');
    expect(await stored(`${runId}/provenance.json`)).toEqual({
      data: Buffer.from('{"provenance": 1}'),
      contentType: 'application/vnd.in-toto+json',
    });
  });
});
