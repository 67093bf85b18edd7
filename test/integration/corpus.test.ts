/**
 * Every real public AIB template (test/fixtures/aib-corpus) must work: with its <placeholders> filled the way
 * its quickstart does (sed-style substitution) and its ARM parameters given, it validates, renders and
 * passes `packer validate` with Debian's Packer. Templates with WindowsUpdate may instead stop with the clear
 * missing-plugin error, because Packer 1.6.6 cannot load plugins.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRewrite } from '../../agent/src/artifacts/rewrite-uri.js';
import { isIsobuildError } from '../../agent/src/errors.js';
import { detectPacker, type PackerInfo } from '../../agent/src/packer/packer-version.js';
import { packerValidate } from '../../agent/src/packer/validate-rendered.js';
import { renderBuild } from '../../agent/src/render/render-build.js';
import { loadTemplate } from '../../agent/src/template/load-template.js';
import { CORPUS, MIRROR, PARAMETERS, UPSTREAM, fillTemplate } from '../helpers/aib-corpus.js';

let work: string;
let packer: PackerInfo;
const files = (await readdir(CORPUS)).filter((f) => f.endsWith('.json')).sort();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-corpus-'));
  packer = await detectPacker();
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the public AIB template corpus', () => {
  it('has the templates the corpus README lists', () => {
    expect(files.length).toBeGreaterThanOrEqual(16);
  });

  it.each(files)('%s validates, renders and passes packer validate', async (file) => {
    const filled = join(work, file);
    await writeFile(filled, await fillTemplate(file));
    const parameters = new Map(Object.entries(PARAMETERS[file] ?? PARAMETERS.default!));

    const loaded = await loadTemplate(filled, { parameters });
    const hasWindowsUpdate = loaded.template.customize.some((s) => s.type === 'WindowsUpdate');
    const outDir = join(work, `${file}.out`);
    const render = renderBuild(loaded.template, {
      outDir,
      sourceLabel: file,
      packer,
      fetch: { rewrites: [parseRewrite(`${UPSTREAM}=${MIRROR}/`)] },
    });

    if (hasWindowsUpdate && !packer.supportsPlugins) {
      const error: unknown = await render.catch((e: unknown) => e);
      expect(isIsobuildError(error) && error.code).toBe('packerUnsupported');
      expect(String((error as Error).message)).toContain('github.com/rgl/windows-update');
      expect(isIsobuildError(error) && error.problems.map((p) => p.path).join()).toMatch(/customize\[\d+\]/);

      // The workaround the error suggests (drop or replace the step) must then render and validate.
      const withoutUpdates = {
        ...loaded.template,
        customize: loaded.template.customize.filter((s) => s.type !== 'WindowsUpdate'),
      };
      const rendered = await renderBuild(withoutUpdates, {
        outDir,
        sourceLabel: file,
        packer,
        fetch: { rewrites: [parseRewrite(`${UPSTREAM}=${MIRROR}/`)] },
      });
      for (const name of rendered.files) await packerValidate(packer.path, join(rendered.outDir, name));
      return;
    }
    const result = await render;
    expect(result.files).toContain('customization.pkr.hcl');
    for (const name of result.files) await packerValidate(packer.path, join(result.outDir, name));
  });
});
