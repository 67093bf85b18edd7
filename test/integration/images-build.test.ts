/** Every Linux example under images/ builds on a fresh test VM, its artifacts served over HTTP and verified. */
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startTestVm, stopTestVm } from '../../agent/src/testvm/test-vm.js';
import { runBuildCli } from '../helpers/build-cli.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';

const IMAGES = resolve('images');
const STORAGE = 'https://isobuildexamples.blob.core.windows.net/artifacts/';
let http: TestHttpServer;
let work: string;

const images: string[] = [];
for (const name of await readdir(IMAGES)) {
  const file = join(IMAGES, name, 'template.json');
  if (existsSync(file) && (await readFile(file, 'utf8')).includes('"Shell"')) images.push(name);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-images-'));
  http = await startHttpServer((request, response) => {
    const file = join(
      IMAGES,
      normalize(decodeURIComponent(request.url ?? '/')).replace(/^\/artifacts\//, ''),
    );
    if (!file.startsWith(IMAGES) || !existsSync(file)) response.writeHead(404).end();
    else createReadStream(file).pipe(response);
  });
});
afterAll(async () => {
  await http.close();
  await rm(work, { recursive: true, force: true });
});

describe('example images', () => {
  it('include at least one Linux image', () => {
    expect(images).toContain('linux-baseline');
  });

  it.each(images)('%s builds on a test VM, validators included', async (name) => {
    const vm = await startTestVm();
    onTestFinished(() => stopTestVm(vm.id));

    const run = await runBuildCli(vm, work, await readFile(join(IMAGES, name, 'template.json'), 'utf8'), [
      '--rewrite-uri',
      `${STORAGE}=${http.url}/artifacts/`,
    ]);

    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.status.validators.every((v) => v.outcome === 'succeeded')).toBe(true);
    expect(http.requests.length).toBeGreaterThan(0);
  });
});
