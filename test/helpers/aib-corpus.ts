// The public AIB quickstart templates (test/fixtures/aib-corpus) made buildable the way their quickstarts do it:
// placeholders filled with sed-style substitution, ARM parameters given, artifacts served from local stand-ins.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const CORPUS = resolve('test/fixtures/aib-corpus');
export const MIRROR = resolve('test/fixtures/corpus-mirror');
export const UPSTREAM = 'https://raw.githubusercontent.com/danielsollondon/azvmimagebuilder/master/';
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
export const PARAMETERS: Record<string, Record<string, string>> = {
  default: { imageTemplateName: 'helloImageTemplate01', 'api-version': '2020-02-14', svclocation: 'westus2' },
  'solutions__4_Using_ENV_Variables__devOpsEnvTemplate.json': {
    imageTemplateName: 'devOpsEnvTemplate01',
    svcLocation: 'westus2',
    managedImageResGroupId: `/subscriptions/${SUB}/resourceGroups/aibImageRG/providers/Microsoft.Compute/images/`,
    managedImageName: 'devOpsImage01',
    // Installed already: the test VM has no internet, and apt-get install of an installed package succeeds offline.
    packagesToInstall: 'sudo',
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

export async function fillTemplate(file: string): Promise<string> {
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
