/**
 * Every real public AIB template (test/fixtures/aib-corpus) must work: with its <placeholders> filled the way
 * its quickstart does (sed-style substitution) and its ARM parameters given, it validates, renders and
 * passes `packer validate` with Debian's Packer. Templates with WindowsUpdate may instead stop with the clear
 * missing-plugin error, because Packer 1.6.6 cannot load plugins.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRewrite } from '../../agent/src/artifacts/rewrite-uri.js';
import { isIsobuildError } from '../../agent/src/errors.js';
import { detectPacker, type PackerInfo } from '../../agent/src/packer/packer-version.js';
import { packerValidate } from '../../agent/src/packer/validate-rendered.js';
import { renderBuild } from '../../agent/src/render/render-build.js';
import { loadTemplate } from '../../agent/src/template/load-template.js';

const CORPUS = resolve('test/fixtures/aib-corpus');
const MIRROR = resolve('test/fixtures/corpus-mirror');
const UPSTREAM = 'https://raw.githubusercontent.com/danielsollondon/azvmimagebuilder/master/';
const SUB = '11111111-2222-3333-4444-555555555555';

/** What the quickstarts substitute with sed before submitting. */
const PLACEHOLDERS: Record<string, string> = {
  '<subscriptionID>': SUB,
  '<rgName>': 'aibImageRG',
  '<region>': 'westus2',
  '<region1>': 'westus2',
  '<region2>': 'eastus',
  '<runOutputName>': 'aibCustomImageOutput',
  '<imgBuilderId>': `/subscriptions/${SUB}/resourceGroups/aibImageRG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aibBuiUserId1`,
  '<imageName>': 'aibCustomLinuxImage01',
  '<imageDefName>': 'myIbImageDef',
  '<sharedImageGalName>': 'myIbGallery',
  '<acgName>': 'myIbGallery',
  '<sigDefImgVersionId>': `/subscriptions/${SUB}/resourceGroups/aibImageRG/providers/Microsoft.Compute/galleries/myIbGallery/images/myIbImageDef/versions/0.24105.52755`,
  '<srcImageName>': 'aibCustomLinuxImage01',
  '<vnetName>': 'aibVnet',
  '<subnetName>': 'aibSubnet',
  '<vnetRgName>': 'aibVnetRG',
  '<scriptUrl>': `${UPSTREAM}quickquickstarts/customizeScript.sh`,
};

/** ARM parameters as the quickstarts pass them to `az deployment group create`. */
const PARAMETERS: Record<string, Record<string, string>> = {
  default: { imageTemplateName: 'helloImageTemplate01', 'api-version': '2020-02-14', svclocation: 'westus2' },
  'solutions__4_Using_ENV_Variables__devOpsEnvTemplate.json': {
    imageTemplateName: 'devOpsEnvTemplate01',
    svcLocation: 'westus2',
    managedImageResGroupId: `/subscriptions/${SUB}/resourceGroups/aibImageRG/providers/Microsoft.Compute/images/`,
    managedImageName: 'devOpsImage01',
    packagesToInstall: 'nginx',
    targetOS: 'ubuntu',
  },
};

/** Upstream sha256 values pinned in the templates, by the file they pin (replaced by the stand-ins' hashes). */
const PINNED: Record<string, string> = {
  ade4c5214c3c675e92c66e2d067a870c5b81b9844b3de3cc72c49ff36425fc93: 'quickquickstarts/customizeScript2.sh',
  '2c6ff6902a4a52deee69e8db26d0036a53388651008aaf31795bb20dabd21fd8': 'quickquickstarts/customizeScript.sh',
  d9715d72889fb1a0463d06ce9e89d1d2bd33b2c5e5362a736db6f5a25e601a58:
    'quickquickstarts/exampleArtifacts/buildArtifacts/index.html',
};

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

async function fillTemplate(file: string): Promise<string> {
  let text = await readFile(join(CORPUS, file), 'utf8');
  for (const [placeholder, value] of Object.entries(PLACEHOLDERS)) text = text.replaceAll(placeholder, value);
  for (const [upstream, path] of Object.entries(PINNED)) {
    const standIn = createHash('sha256')
      .update(await readFile(join(MIRROR, path)))
      .digest('hex');
    text = text.replaceAll(upstream, standIn);
  }
  return text;
}

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
