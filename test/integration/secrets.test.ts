/**
 * Secrets never appear, in any encoding, anywhere a build writes. Two securestring parameters reach the
 * VM through inline commands, one of them only through values derived from it by nested ARM functions
 * (issue 11); the VM prints the secrets and the derived values raw, JSON-escaped once, twice and three
 * times, URL-encoded, base64 (alone and inside a longer value), as UTF-16LE base64, HTML-escaped, quoted
 * by bash -x and doubled for PowerShell; the store credentials are configured too. Every output is
 * searched: stdout, stderr, the local logs and status, the rendered files, the stored blobs and the build
 * bundle. Also: secrets too short to mask are refused, and `isobuild logs` masks a secret that reaches it
 * split across two reads.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBlobStore } from '../../agent/src/logstore/blob-store.js';
import { Secret } from '../../agent/src/secret.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { CLI, finished, startBuild, writeTemplate } from '../helpers/build-cli.js';
import { runProcess } from '../helpers/run-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

const SECRET = 'Tok3n/With+Sl@sh"Quote\\Back=end';
/** A secret with the characters shells, PowerShell and HTML escape. */
const QUOTED = `It's<&>"Q"-v@lue!`;
/** What the template derives from SECRET: replace(concat('x', toUpper(token)), '=', '#'). */
const DERIVED = `x${SECRET.toUpperCase()}`.replaceAll('=', '#');

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

const json = (text: string): string => JSON.stringify(text).slice(1, -1);

/**
 * Every form of `secret` that must not appear, computed the way the VM's tools print it (a few
 * characters of base64 context are tolerated).
 */
function forbiddenForms(secret: string): string[] {
  const base64At = (bytes: Buffer, offset: number): string => {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    return encoded.slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + bytes.length) * 8) / 6));
  };
  const utf8 = Buffer.from(secret);
  const utf16 = Buffer.from(secret, 'utf16le');
  const html = secret
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#x27;');
  return [
    secret,
    json(secret),
    json(json(secret)),
    json(json(json(secret))),
    encodeURIComponent(secret),
    html,
    secret.replaceAll("'", `'\\''`),
    secret.replaceAll("'", "''"),
    ...[0, 1, 2].flatMap((offset) => [base64At(utf8, offset), base64At(utf16, offset)]),
  ];
}

/** An ARM string literal holding `text`. */
const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** The lines the VM prints: `label: value`, the value encoded by a real tool. */
function printLines(variable: string, name: string): [label: string, line: string][] {
  const from = `"$${variable}"`;
  const line = (what: string, command: string): [string, string] => [
    `${name} ${what}`,
    `printf '${name} ${what}: %s\\n' "$(${command})"`,
  ];
  return [
    line('json', `py 'json.dumps(sys.argv[1])' ${from}`),
    line('json2', `py 'json.dumps(json.dumps(sys.argv[1]))' ${from}`),
    line('json3', `py 'json.dumps({"l": json.dumps([json.dumps(sys.argv[1])])})' ${from}`),
    line('url', `py 'urllib.parse.quote(sys.argv[1], safe=str())' ${from}`),
    line('base64', `printf %s ${from} | base64 -w0`),
    line('base64-offset', `printf "a%s" ${from} | base64 -w0`),
    line('basic', `printf "user:%s" ${from} | base64 -w0`),
    line('utf16', `printf '$p = %s' ${from} | iconv -f UTF-8 -t UTF-16LE | base64 -w0`),
    line('html', `py 'html.escape(sys.argv[1])' ${from}`),
    line('powershell', `printf %s ${from} | sed "s/'/''/g"`),
  ];
}

describe('secrets in a build', () => {
  it.each(['text', 'json'])(
    'are masked in every output, in every encoding, derived ones too (--log-format %s)',
    async (format) => {
      const runId = `secrets-${format}-${process.pid}`;
      const printed = [
        ...printLines('T', 'token'),
        ...printLines('D', 'derived'),
        ...printLines('Q', 'quoted'),
      ];
      const resource = linuxTemplate({
        customize: [
          {
            type: 'Shell',
            name: 'leaky',
            inline: [
              // SECRET has no single quote, so T='…' keeps it verbatim in sh; the template escapes QUOTED's.
              "[concat('T=''', parameters('token'), '''')]",
              "[concat('D=''', replace(concat('x', toUpper(parameters('token'))), '=', '#'), '''')]",
              `[concat(${literal("Q='")}, replace(parameters('quoted'), ${literal("'")}, ${literal("'\\''")}), ${literal("'")})]`,
              `py() { python3 -c "import json,html,urllib.parse,sys; print($1)" "$2"; }`,
              'echo "raw: $T $D $Q"',
              'echo "raw on stderr: $T $D $Q" >&2',
              ...printed.map(([, line]) => line),
              // bash -x prints its arguments quoted for the shell: 'It'\''s…'
              `bash -xc ': xtrace "$1"' _ "$Q"`,
            ],
          },
        ],
      });
      const templateFile = await writeTemplate(work, runId, {
        $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
        contentVersion: '1.0.0.0',
        parameters: { token: { type: 'securestring' }, quoted: { type: 'securestring' } },
        resources: [resource],
      });
      const child = startBuild(vm, work, templateFile, runId, [
        '--param',
        `token=${SECRET}`,
        '--param',
        `quoted=${QUOTED}`,
        '--storage-connection-string',
        azurite.connectionString,
        '--log-format',
        format,
      ]);
      const run = await finished(child, join(work, runId));
      expect(run.code, run.stderr).toBe(0);

      // The VM did print every form: the masks below are not vacuous. (Packer itself shows raw values of
      // sensitive variables as <sensitive>; the encoded forms only isobuild can catch.)
      const log = await readFile(join(work, runId, 'customization.log'), 'utf8');
      const masked = '(\\*\\*\\*|<sensitive>)';
      expect(log).toMatch(new RegExp(`raw: ${masked} ${masked} ${masked}`));
      expect(log).toMatch(new RegExp(`raw on stderr: ${masked} ${masked} ${masked}`));
      for (const [label] of printed) expect(log, label).toMatch(new RegExp(`${label}: .*${masked}`));
      expect(log).toMatch(new RegExp(`\\+ : xtrace '?${masked}`));

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
      const where = Object.keys(outputs);
      expect(where.some((k) => k.startsWith('blob ') && k.endsWith('customization.log'))).toBe(true);
      expect(where.some((k) => k.startsWith('blob ') && k.endsWith('status.json'))).toBe(true);
      expect(where.some((k) => k.startsWith('bundle ') && k.endsWith('customization.pkr.hcl'))).toBe(true);
      const key = /AccountKey=([^;]+)/.exec(azurite.connectionString)?.[1] ?? '';
      const forbidden = [SECRET, DERIVED, QUOTED].flatMap(forbiddenForms);
      for (const [place, text] of Object.entries(outputs)) {
        for (const form of [...forbidden, azurite.connectionString, key]) {
          expect(text.includes(form), `${place} contains ${form}`).toBe(false);
        }
      }
    },
  );
});

describe('secrets too short to mask', () => {
  it('refuses a short securestring with exit code 2, naming the parameter and not the value', async () => {
    const templateFile = join(work, `short-${process.pid}.json`);
    await writeFile(
      templateFile,
      JSON.stringify({
        $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
        contentVersion: '1.0.0.0',
        parameters: { token: { type: 'securestring' } },
        resources: [
          linuxTemplate({
            customize: [{ type: 'Shell', inline: ["[concat('login ', parameters('token'))]"] }],
          }),
        ],
      }),
    );

    const run = await cli(['validate', templateFile, '--param', 'token=z9!']);

    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /parameters\.token.*securestring parameter "token".*shorter than 4 characters/,
    );
    expect(run.stdout + run.stderr).not.toContain('z9!');
  });

  it('refuses a short build VM password with exit code 2, naming the variable and not the value', async () => {
    const run = await cli(['build', join(work, 'unused.json'), '--host', '10.0.0.4'], {
      ISOBUILD_SSH_PASSWORD: 'z9!',
    });

    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/ISOBUILD_SSH_PASSWORD.*shorter than 4 characters/);
    expect(run.stdout + run.stderr).not.toContain('z9!');
  });
});

describe('isobuild logs', () => {
  it('masks a store secret that reaches it split across two reads of a followed log', async () => {
    const runId = `split-${process.pid}`;
    const store = await openBlobStore({
      kind: 'connection-string',
      connectionString: new Secret(azurite.connectionString),
    });
    await store.container.createIfNotExists();
    const status = (runState: string): string =>
      JSON.stringify({ runId, runState, runSubState: '', message: `run ${runState}` });
    const statusBlob = store.container.getBlockBlobClient(`${runId}/status.json`);
    await statusBlob.upload(status('Running'), status('Running').length);
    const log = store.container.getAppendBlobClient(`${runId}/customization.log`);
    await log.create();
    const first = `first line\nkey: ${azurite.accountKey.slice(0, 20)}`;
    await log.appendBlock(first, Buffer.byteLength(first));

    const child = spawn(
      process.execPath,
      [
        CLI,
        'logs',
        runId,
        '--follow',
        '--interval',
        '100ms',
        '--storage-connection-string',
        azurite.connectionString,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      // The first read is in, and shows all that cannot be the start of the key.
      await until(() => stdout.includes('first line\nkey: '), 20_000);
      const second = `${azurite.accountKey.slice(20)} end\n`;
      await log.appendBlock(second, Buffer.byteLength(second));
      await statusBlob.upload(status('Succeeded'), status('Succeeded').length);

      expect(await withDeadline(exited, 20_000)).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }

    expect(stdout).toBe('first line\nkey: *** end\n');
  });
});

/** Runs the built CLI to its end (20 s at most). */
async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = await runProcess(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    deadlineMs: 20_000,
  });
  if (run.timedOut) throw new Error('no answer within 20000 ms');
  return run;
}

async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
