/**
 * Secrets never appear, in any encoding, anywhere a build writes: a securestring parameter reaches the
 * VM through inline commands, the VM prints it raw, JSON-escaped, URL-encoded and base64-encoded (alone
 * and inside a longer value), and the store credentials are configured too. Every output is searched:
 * stdout, stderr, the local logs and status, the stored blobs and the build bundle.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBlobStore } from '../../agent/src/logstore/blob-store.js';
import { Secret } from '../../agent/src/secret.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { finished, linuxTemplate, startBuild } from '../helpers/build-cli.js';

const SECRET = 'Tok3n/With+Sl@sh"Quote\\Back=end';

let vm: TestVm;
let work: string;
let azurite: AzuriteInstance;

beforeAll(async () => {
  vm = await startTestVm();
  azurite = await startAzurite();
  work = await mkdtemp(join(tmpdir(), 'isobuild-secrets-'));
});
afterAll(async () => {
  await stopTestVm(vm.id);
  await azurite.close();
  await rm(work, { recursive: true, force: true });
});

/** Every form of `secret` that must not appear (a few characters of base64 context are tolerated). */
function forbiddenForms(secret: string): string[] {
  const bytes = Buffer.from(secret);
  const base64At = (offset: number): string => {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    return encoded.slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + bytes.length) * 8) / 6));
  };
  return [
    secret,
    JSON.stringify(secret).slice(1, -1),
    encodeURIComponent(secret),
    base64At(0),
    base64At(1),
    base64At(2),
  ];
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('secrets in a build', () => {
  it.each(['text', 'json'])(
    'are masked in every output, in every encoding (--log-format %s)',
    async (format) => {
      const runId = `secrets-${format}-${process.pid}`;
      // The secret has no single quote, so T='…' keeps it verbatim in sh.
      const resource = linuxTemplate({
        customize: [
          {
            type: 'Shell',
            name: 'leaky',
            inline: [
              "[concat('T=''', parameters('token'), '''')]",
              'echo "raw: $T"',
              'echo "raw on stderr: $T" >&2',
              'python3 -c "import json,sys,urllib.parse; print(json.dumps(sys.argv[1])); print(urllib.parse.quote(sys.argv[1], safe=str()))" "$T"',
              'printf %s "$T" | base64 -w0; echo',
              'printf "a%s" "$T" | base64 -w0; echo',
              'printf "user:%s" "$T" | base64 -w0; echo',
            ],
          },
        ],
      });
      const templateFile = join(work, `${runId}.json`);
      await writeFile(
        templateFile,
        JSON.stringify({
          $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
          contentVersion: '1.0.0.0',
          parameters: { token: { type: 'securestring' } },
          resources: [resource],
        }),
      );
      const child = startBuild(vm, work, templateFile, runId, [
        '--param',
        `token=${SECRET}`,
        '--storage-connection-string',
        azurite.connectionString,
        '--log-format',
        format,
      ]);
      const run = await finished(child, join(work, runId));
      expect(run.code, run.stderr).toBe(0);

      // The VM did print it, in every form: the masks below are not vacuous.
      const log = await readFile(join(work, runId, 'customization.log'), 'utf8');
      // (Packer itself shows the raw value as <sensitive>; the encoded forms only isobuild can catch.)
      expect(log).toMatch(/raw: (\*\*\*|<sensitive>)/);
      expect(log).toMatch(/raw on stderr: (\*\*\*|<sensitive>)/);
      expect(log.match(/PACKER OUT {5}null\.build_vm: .*\*\*\*/g)?.length).toBeGreaterThanOrEqual(5);

      const outputs: Record<string, string> = { stdout: run.stdout, stderr: run.stderr };
      for (const file of await filesUnder(join(work, runId))) {
        if (file.endsWith('.tar.gz')) continue;
        outputs[file] = await readFile(file, 'utf8');
      }
      const store = await openBlobStore({
        kind: 'connection-string',
        connectionString: new Secret(azurite.connectionString),
      });
      for await (const blob of store.container.listBlobsFlat({ prefix: `${runId}/` })) {
        const data = await store.container.getBlobClient(blob.name).downloadToBuffer();
        if (blob.name.endsWith('.tar.gz')) {
          const bundleDir = await mkdtemp(join(work, 'bundle-'));
          await writeFile(join(bundleDir, 'bundle.tar.gz'), data);
          await tar.extract({ file: join(bundleDir, 'bundle.tar.gz'), cwd: bundleDir });
          for (const file of await filesUnder(bundleDir))
            if (!file.endsWith('.tar.gz')) outputs[`bundle ${file}`] = await readFile(file, 'utf8');
          continue;
        }
        outputs[`blob ${blob.name}`] = data.toString('utf8');
      }
      expect(Object.keys(outputs).some((k) => k.startsWith('blob ') && k.endsWith('customization.log'))).toBe(
        true,
      );
      const key = /AccountKey=([^;]+)/.exec(azurite.connectionString)?.[1] ?? '';
      for (const [where, text] of Object.entries(outputs)) {
        for (const form of [...forbiddenForms(SECRET), azurite.connectionString, key]) {
          expect(text.includes(form), `${where} contains ${form}`).toBe(false);
        }
      }
    },
  );
});
