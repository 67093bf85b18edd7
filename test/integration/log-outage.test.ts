/**
 * Blob Storage goes away for 30 s in the middle of a real build: the build neither stops nor waits,
 * the lines spool to local disk, and once Azurite is back (same port, same on-disk data) the stored
 * customization.log ends byte-identical to the local transcript.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBlobStore } from '../../agent/src/logstore/blob-store.js';
import { readLog } from '../../agent/src/logstore/log-reader.js';
import { Secret } from '../../agent/src/secret.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzuriteProcess, type AzuriteProcess } from '../helpers/azurite.js';
import { finished, linuxTemplate, startBuild } from '../helpers/build-cli.js';

let vm: TestVm;
let work: string;
let azurite: AzuriteProcess | undefined;

beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-log-outage-'));
});
afterAll(async () => {
  await azurite?.stop();
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

describe('a storage outage during a build', () => {
  it('keeps building, spools, and stores a log identical to the local one after 30 s without storage', async () => {
    const dataDir = join(work, 'azurite-data');
    azurite = await startAzuriteProcess(dataDir);
    const port = azurite.port;
    const runId = `outage-${process.pid}`;
    const templateFile = join(work, `${runId}.json`);
    await writeFile(
      templateFile,
      JSON.stringify(
        linuxTemplate({
          customize: [
            {
              type: 'Shell',
              name: 'chatty',
              inline: ['for i in $(seq 1 90); do echo "output line $i"; sleep 0.5; done'],
            },
          ],
        }),
      ),
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
    const parts: Buffer[] = [];
    for await (const chunk of readLog(store.container, runId, 'customization', { follow: false }))
      parts.push(chunk);
    const local = await readFile(join(work, runId, 'customization.log'));
    expect(Buffer.concat(parts).equals(local)).toBe(true);
    expect(local.toString()).toContain('output line 90');
  }, 120_000);
});
