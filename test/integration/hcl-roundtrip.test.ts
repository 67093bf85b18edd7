/**
 * Property tests: any string a template can carry survives hclString byte-for-byte through Packer itself.
 * 1. HCL layer: `packer console` evaluates a local holding every string and prints it back (base64 of JSON).
 * 2. Provisioner layer: a real `packer build` runs the strings as inline commands (shell-local) that write
 *    them to files.
 * Strings Packer alters whatever the escaping (non-NFC text, "{{") are left out: the renderer routes them
 * through script files instead (exact-text-guard.ts, tested in render.test.ts).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packerWouldAlter } from '../../agent/src/render/exact-text-guard.js';
import { expr, hclString, writeHcl } from '../../agent/src/render/hcl.js';
import { packerBuild } from '../helpers/packer.js';

const TRICKY = [
  '${',
  '$${',
  '$$${',
  '%{',
  '%%{',
  '{{',
  '}}',
  '{{ .Path }}',
  '\\',
  '\\\\',
  '"',
  "'",
  '`',
  '\n',
  '\r\n',
  '\t',
  '<<EOF',
  'EOF',
  '<<-EOT',
  '$',
  '%',
  '#',
  '//',
  '/*',
  '*/',
  'é',
  '中文',
  '🎉',
  '\u00a0',
  '\u200b',
  '\u0001',
  '\u001b[31m',
  '\u007f',
  '\u0085',
  '\u2028',
  '$(whoami)',
  ';',
  '&&',
  '~',
  '!',
  '[[',
  ']]',
  'var.x',
  'path.root',
  '{',
  '}',
  '{}',
];

const trickyString = fc
  .array(
    fc.oneof(
      fc.constantFrom(...TRICKY),
      fc.string({ unit: 'grapheme', maxLength: 8 }),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join(''))
  // NUL and unpaired surrogates are rejected by template validation, so they never reach rendering.
  .filter((s) => !s.includes('\u0000') && s.isWellFormed() && packerWouldAlter(s) === undefined);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isobuild-hcl-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('hclString through real Packer', () => {
  it('evaluates to the original string in HCL (packer console)', async () => {
    const samples = [
      ...TRICKY.filter((s) => packerWouldAlter(s) === undefined),
      ...fc.sample(trickyString, { numRuns: 400, seed: 1124 }),
    ];
    const hcl = writeHcl([
      { type: 'locals', attributes: [['samples', samples]] },
      { type: 'source', labels: ['null', 'vm'], attributes: [['communicator', 'none']] },
      { type: 'build', attributes: [['sources', ['source.null.vm']]] },
    ]);
    await writeFile(join(dir, 'console.pkr.hcl'), hcl);

    const result = await execa('packer', ['console', 'console.pkr.hcl'], {
      cwd: dir,
      input: 'base64encode(jsonencode(local.samples))\n',
      env: { CHECKPOINT_DISABLE: '1' },
      reject: false,
    });

    expect(result.exitCode, result.stderr + result.stdout).toBe(0);
    const back = JSON.parse(Buffer.from(result.stdout.trim(), 'base64').toString('utf8')) as string[];
    expect(back).toEqual(samples);
  });

  it('reaches a provisioner byte-for-byte (packer build, shell-local)', async () => {
    const samples = [...TRICKY, ...fc.sample(trickyString, { numRuns: 300, seed: 20261124 })].filter(
      (s) => packerWouldAlter(s) === undefined && !/(^|\n)ISOBUILD_END_\d+(\r?\n|$)/.test(s),
    );
    const outDir = join(dir, 'out');
    const inline = samples.map((s, i) =>
      expr(
        hclString(`mkdir -p ${outDir}; cat > ${outDir}/${i} <<'ISOBUILD_END_${i}'\n${s}\nISOBUILD_END_${i}`),
      ),
    );
    const hcl = writeHcl([
      { type: 'source', labels: ['null', 'vm'], attributes: [['communicator', 'none']] },
      {
        type: 'build',
        attributes: [['sources', ['source.null.vm']]],
        blocks: [{ type: 'provisioner', labels: ['shell-local'], attributes: [['inline', inline]] }],
      },
    ]);
    await writeFile(join(dir, 'roundtrip.pkr.hcl'), hcl);

    const result = await packerBuild(dir, 'roundtrip.pkr.hcl');

    expect(result.exitCode, result.output).toBe(0);
    const mismatches: string[] = [];
    for (const [i, s] of samples.entries()) {
      const back = await readFile(join(outDir, String(i)));
      if (!back.equals(Buffer.from(`${s}\n`, 'utf8')))
        mismatches.push(`${JSON.stringify(s)} came back as ${JSON.stringify(back.toString('utf8'))}`);
    }
    expect(mismatches).toEqual([]);
  });
});
