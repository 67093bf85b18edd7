/**
 * SBOM and provenance of real builds on a test VM with real Packer (issue 15). The VM starts with two
 * packages the test built with dpkg-deb; the build upgrades one, installs a third and purges the second,
 * and the SBOM says exactly that. A second build downgrades and removes, and `isobuild diff` shows exactly
 * those changes. Also: a failure to collect never fails the build, --no-sbom turns it off, the records
 * are stored (`isobuild logs --sbom/--provenance`, `diff` from the store) and carry no secret.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBlobStore } from '../../agent/src/logstore/blob-store.js';
import { readCycloneDxInventory, validateCycloneDx } from '../../agent/src/sbom/cyclonedx.js';
import { Secret } from '../../agent/src/secret.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { CLI, finished, writeTemplate, type BuildRun } from '../helpers/build-cli.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { runProcess } from '../helpers/run-process.js';
import { sshExec } from '../helpers/ssh.js';
import { deployment, linuxTemplate } from '../helpers/template-builders.js';

const PROBE = 'isobuild-sbom-probe';
const ADDED = 'isobuild-sbom-added';
const DOOMED = 'isobuild-sbom-doomed';
const RESUMED = 'isobuild-sbom-resumed';
const SECRET = 'S3cr3t/Path+Part=';

let vm: TestVm;
let work: string;
let http: TestHttpServer;
let azurite: AzuriteInstance;
const debs = new Map<string, Buffer>();

/** A minimal .deb, built the way packagers do (dpkg-deb), with an arch-independent payload. */
function buildDeb(dir: string, name: string, version: string): Buffer {
  const root = join(dir, `${name}_${version}`);
  execFileSync('mkdir', ['-p', join(root, 'DEBIAN'), join(root, 'usr/share', name)]);
  execFileSync('sh', [
    '-c',
    `printf '%s\\n' 'Package: ${name}' 'Version: ${version}' 'Architecture: all' 'Maintainer: isobuild tests <tests@isobuild.invalid>' 'Description: a package the SBOM tests install and remove' > ${root}/DEBIAN/control && echo ${version} > ${root}/usr/share/${name}/version`,
  ]);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, `${root}.deb`], { stdio: 'ignore' });
  return execFileSync('cat', [`${root}.deb`]);
}

const sha = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  vm = await startTestVm();
  azurite = await startAzurite();
  work = await mkdtemp(join(tmpdir(), 'isobuild-sbom-'));
  const debDir = join(work, 'debs');
  await mkdir(debDir);
  for (const [name, version] of [
    [PROBE, '1.0'],
    [PROBE, '2.0'],
    [ADDED, '1.0'],
    [DOOMED, '1.0'],
    [RESUMED, '1.0'],
  ] as const)
    debs.set(`${name}_${version}`, buildDeb(debDir, name, version));
  http = await startHttpServer((request, response) => {
    const file = /\/([^/]+)\.deb$/.exec(request.url ?? '')?.[1];
    const data = file ? debs.get(file) : undefined;
    response.statusCode = data ? 200 : 404;
    response.end(data ?? 'not found');
  });
  // The source image: the probe at 1.0 and a package the build will purge.
  const preinstall = [`${PROBE}_1.0`, `${DOOMED}_1.0`]
    .map((deb) => `echo ${debs.get(deb)!.toString('base64')} | base64 -d > /tmp/${deb}.deb`)
    .join(' && ');
  const installed = await sshExec(
    vm,
    `${preinstall} && sudo dpkg -i /tmp/${PROBE}_1.0.deb /tmp/${DOOMED}_1.0.deb`,
  );
  expect(installed.code, installed.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await http?.close();
  await azurite?.close();
  if (vm) await stopTestVm(vm.id);
  if (work) await rm(work, { recursive: true, force: true });
});

function build(runId: string, templateFile: string, args: string[] = []): Promise<BuildRun> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'build',
      templateFile,
      ...['--host', vm.address, '--user', vm.user, '--ssh-key-file', vm.keyFile],
      ...['--work-dir', work, '--run-id', runId, '--skip-deprovision', '--ready-timeout', '10s'],
      ...(args.some((a) => a.startsWith('--storage-')) ? [] : ['--local-logs-only']),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return finished(child, join(work, runId));
}

const fileStep = (deb: string, uri = `${http.url}/${deb}.deb`) => ({
  type: 'File',
  name: `upload ${deb}`,
  sourceUri: uri,
  sha256Checksum: sha(debs.get(deb)!),
  destination: `/tmp/${deb}.deb`,
});

const cli = (...args: string[]) => runProcess(process.execPath, [CLI, ...args], { deadlineMs: 30_000 });

async function installedOnVm(): Promise<number> {
  const listed = await sshExec(vm, "dpkg-query -W -f '${db:Status-Abbrev}\\n' | grep -c '^[ih]i'");
  return Number(listed.stdout.trim());
}

describe('SBOM and provenance of a Linux build', () => {
  let first: BuildRun;

  it('records what the customization installed, upgraded and purged, validated against the CycloneDX schema', async () => {
    const template = linuxTemplate({
      customize: [
        fileStep(`${PROBE}_2.0`),
        fileStep(`${ADDED}_1.0`),
        {
          type: 'Shell',
          name: 'install and purge',
          inline: [`sudo dpkg -i /tmp/${PROBE}_2.0.deb /tmp/${ADDED}_1.0.deb`, `sudo dpkg --purge ${DOOMED}`],
        },
      ],
    });
    first = await build('sbom-a', await writeTemplate(work, 'sbom-a', template));
    expect(first.code, first.stderr).toBe(0);
    const total = await installedOnVm();
    expect(first.stderr).toContain(
      `SBOM: ${total} packages, 1 added, 1 removed, 1 upgraded since the source image`,
    );
    expect(first.status.sbom).toMatchObject({
      state: 'collected',
      packages: total,
      changes: { added: 1, removed: 1, upgraded: 1, downgraded: 0 },
      baseline: { source: 'collected' },
    });

    const text = await readFile(join(first.runDir, 'sbom.cdx.json'), 'utf8');
    await validateCycloneDx(text); // the official schema, not only the shape
    const doc = JSON.parse(text) as {
      specVersion: string;
      components: { name: string; version: string; purl?: string }[];
    };
    expect(Number(doc.specVersion)).toBeGreaterThanOrEqual(1.5);
    const probe = doc.components.find((c) => c.name === PROBE);
    expect(probe).toMatchObject({ version: '2.0' });
    expect(probe?.purl).toMatch(new RegExp(`^pkg:deb/debian/${PROBE}@2\\.0\\?arch=all&distro=debian-\\d+`));
    expect(doc.components.some((c) => c.name === DOOMED)).toBe(false);
    const inventory = readCycloneDxInventory(text);
    expect(inventory.os.id).toBe('debian');
    expect(inventory.packages.filter((p) => p.kind === 'deb')).toHaveLength(total);
    expect(inventory.packages.find((p) => p.name === ADDED)).toMatchObject({ version: '1.0', arch: 'all' });
    // What the VM had before is kept with the run: a later --resume of it needs that baseline.
    const baseline = JSON.parse(await readFile(join(first.runDir, 'inventory-before.json'), 'utf8')) as {
      packages: { name: string; version: string }[];
    };
    expect(baseline.packages.find((p) => p.name === PROBE)?.version).toBe('1.0');
    expect(baseline.packages.some((p) => p.name === DOOMED)).toBe(true);
  });

  it('writes an in-toto provenance statement whose subjects are the SBOM and the bundle (with the SBOM inside)', async () => {
    const provenance = JSON.parse(await readFile(join(first.runDir, 'provenance.json'), 'utf8')) as {
      _type: string;
      predicateType: string;
      subject: { name: string; digest: { sha256: string } }[];
      predicate: {
        buildDefinition: {
          externalParameters: { template: { path: string; digest: { sha256: string } } };
          resolvedDependencies: { uri: string; digest: { sha256: string }; name: string }[];
        };
        runDetails: {
          builder: { version: { isobuild: string; packer: string } };
          metadata: { invocationId: string; startedOn: string; finishedOn: string };
          byproducts: { name: string; annotations: { outcome?: string } }[];
        };
      };
    };
    expect(provenance._type).toBe('https://in-toto.io/Statement/v1');
    expect(provenance.predicateType).toBe('https://slsa.dev/provenance/v1');
    const bundle = await readFile(join(first.runDir, 'build-bundle.tar.gz'));
    const sbom = await readFile(join(first.runDir, 'sbom.cdx.json'));
    expect(provenance.subject).toEqual([
      { name: 'build-bundle.tar.gz', digest: { sha256: sha(bundle) } },
      { name: 'sbom.cdx.json', digest: { sha256: sha(sbom) } },
    ]);
    const entries: string[] = [];
    await tar.list({
      file: join(first.runDir, 'build-bundle.tar.gz'),
      onReadEntry: (e) => entries.push(e.path),
    });
    expect(entries).toContain('sbom.cdx.json');
    expect(entries).toContain('packer/customization.pkr.hcl');
    const { buildDefinition, runDetails } = provenance.predicate;
    const templateFile = join(work, 'sbom-a.json');
    expect(buildDefinition.externalParameters.template).toMatchObject({
      path: templateFile,
      digest: { sha256: sha(await readFile(templateFile)) },
    });
    expect(buildDefinition.resolvedDependencies.map((d) => [d.uri, d.digest.sha256])).toEqual(
      [`${PROBE}_2.0`, `${ADDED}_1.0`].map((deb) => [`${http.url}/${deb}.deb`, sha(debs.get(deb)!)]),
    );
    const packer = execFileSync('packer', ['version'])
      .toString()
      .match(/\d+\.\d+\.\d+/)?.[0];
    expect(runDetails.builder.version.packer).toBe(packer);
    expect(runDetails.metadata.invocationId).toBe('sbom-a');
    expect(Date.parse(runDetails.metadata.finishedOn)).toBeGreaterThanOrEqual(
      Date.parse(runDetails.metadata.startedOn),
    );
    expect(
      runDetails.byproducts.filter((b) => b.name.startsWith('step ')).map((b) => b.annotations.outcome),
    ).toEqual([
      'succeeded',
      'succeeded',
      'succeeded', // no deprovision step: --skip-deprovision leaves it out
    ]);
  });

  it('isobuild diff shows exactly the packages a second build downgraded and removed, and the changed steps', async () => {
    const template = linuxTemplate({
      customize: [
        fileStep(`${PROBE}_1.0`),
        {
          type: 'Shell',
          name: 'install and purge',
          inline: [`sudo dpkg -i --force-downgrade /tmp/${PROBE}_1.0.deb`, `sudo dpkg --purge ${ADDED}`],
        },
      ],
    });
    const second = await build('sbom-b', await writeTemplate(work, 'sbom-b', template));
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/SBOM: \d+ packages, 1 removed, 1 downgraded since the source image/);

    const human = await cli('diff', 'sbom-a', 'sbom-b', '--work-dir', work);
    expect(human.code, human.stderr).toBe(1);
    expect(human.stdout).toMatch(/Packages: 0 added, 1 removed, 0 upgraded, 1 downgraded, \d+ unchanged/);
    expect(human.stdout).toMatch(new RegExp(`removed +${ADDED} +all +1\\.0`));
    expect(human.stdout).toMatch(new RegExp(`downgraded +${PROBE} +all +2\\.0 +1\\.0`));
    expect(human.stdout).toMatch(/changed +Shell "install and purge"/);
    expect(human.stdout).toMatch(new RegExp(`removed +File "upload ${ADDED}_1\\.0"`));
    expect(human.stdout).toContain('The runs differ.');

    const json = await cli('diff', 'sbom-a', 'sbom-b', '--work-dir', work, '--json');
    expect(json.code).toBe(1);
    const diff = JSON.parse(json.stdout) as {
      packages: { added: unknown[]; removed: { name: string }[]; upgraded: unknown[]; downgraded: object[] };
      equal: boolean;
    };
    expect(diff.equal).toBe(false);
    expect(diff.packages.added).toEqual([]);
    expect(diff.packages.upgraded).toEqual([]);
    expect(diff.packages.removed.map((p: { name: string }) => p.name)).toEqual([ADDED]);
    expect(diff.packages.downgraded).toEqual([
      expect.objectContaining({ name: PROBE, from: '2.0', to: '1.0' }),
    ]);

    const same = await cli('diff', 'sbom-b', 'sbom-b', '--work-dir', work);
    expect(same.code, same.stdout).toBe(0);
    expect(same.stdout).toContain('The runs are equal.');
  });

  it('goes on when the inventory cannot be collected (and says so), and --no-sbom collects none', async () => {
    // The build user can no longer read dpkg's database: the collection fails, the build does not.
    const broken = linuxTemplate({
      customize: [
        { type: 'Shell', name: 'hide dpkg status', inline: ['sudo chmod 000 /var/lib/dpkg/status'] },
      ],
    });
    let run: BuildRun;
    try {
      run = await build('sbom-broken', await writeTemplate(work, 'sbom-broken', broken));
    } finally {
      await sshExec(vm, 'sudo chmod 644 /var/lib/dpkg/status');
    }
    expect(run.code, run.stderr).toBe(0);
    expect(run.status.runState).toBe('Succeeded');
    expect(run.status.sbom.state).toBe('failed');
    expect(run.status.sbom.detail).toMatch(
      /software inventory of build VM [\d.]+:22 could not be collected: dpkg-query exited with status [1-9]/,
    );
    expect(run.stderr).toMatch(/warning: no SBOM: .*The build goes on/);
    expect(existsSync(join(run.runDir, 'sbom.cdx.json'))).toBe(false);

    const off = await build('sbom-off', await writeTemplate(work, 'sbom-off', broken), ['--no-sbom']);
    expect(off.code, off.stderr).toBe(0);
    expect(off.status.sbom).toEqual({ state: 'off' });
    expect(off.stderr).not.toMatch(/SBOM/);
    expect(existsSync(join(off.runDir, 'inventory-before.json'))).toBe(false);
    // The provenance record still names the bundle.
    const provenance = JSON.parse(await readFile(join(off.runDir, 'provenance.json'), 'utf8')) as {
      subject: { name: string }[];
    };
    expect(provenance.subject.map((s) => s.name)).toEqual(['build-bundle.tar.gz']);
    await sshExec(vm, 'sudo chmod 644 /var/lib/dpkg/status');
  });

  it('a resumed run takes the baseline of the run it continues, so the SBOM still says what changed', async () => {
    const template = (secondExit: number) =>
      linuxTemplate({
        customize: [
          fileStep(`${RESUMED}_1.0`),
          { type: 'Shell', name: 'install', inline: [`sudo dpkg -i /tmp/${RESUMED}_1.0.deb`] },
          { type: 'Shell', name: 'configure', inline: [`exit ${secondExit}`] },
        ],
      });
    const failed = await build('sbom-resume-1', await writeTemplate(work, 'sbom-resume-1', template(4)));
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.status.sbom).toMatchObject({ state: 'not collected', baseline: { source: 'collected' } });
    const resumed = await build('sbom-resume-2', await writeTemplate(work, 'sbom-resume-2', template(0)), [
      '--resume',
      'sbom-resume-1',
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
    // Step 2 installed the package in the failed run; the resumed run ran step 3 only, and still knows.
    expect(resumed.status.customizers.map((c) => c.outcome)).toEqual(['skipped', 'skipped', 'succeeded']);
    expect(resumed.status.sbom).toMatchObject({
      state: 'collected',
      changes: { added: 1, removed: 0, upgraded: 0, downgraded: 0 },
      baseline: { source: 'earlier run', detail: 'taken in run sbom-resume-1' },
    });
    expect(resumed.stderr).toMatch(
      /SBOM: \d+ packages, 1 added since the source image \(taken in run sbom-resume-1\)/,
    );
    await sshExec(vm, `sudo dpkg --purge ${RESUMED}`);
  });

  it('stores both records: isobuild logs prints them, diff reads them from the store, and no secret is in them', async () => {
    // The secret reaches the provenance record through an artifact URI (a path segment, percent-encoded).
    const resource = linuxTemplate({
      customize: [
        {
          ...fileStep(`${ADDED}_1.0`),
          sourceUri: `[concat('${http.url}/files/', uriComponent(parameters('token')), '/${ADDED}_1.0.deb')]`,
        },
      ],
    });
    const templateFile = await writeTemplate(
      work,
      'sbom-store',
      deployment([resource], { parameters: { token: { type: 'securestring' } } }),
    );
    const run = await build('sbom-store', templateFile, [
      '--param',
      `token=${SECRET}`,
      '--storage-connection-string',
      azurite.connectionString,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const store = ['--storage-connection-string', azurite.connectionString];
    const provenance = await cli('logs', 'sbom-store', '--provenance', ...store);
    expect(provenance.code, provenance.stderr).toBe(0);
    expect(provenance.stdout).toBe(await readFile(join(run.runDir, 'provenance.json'), 'utf8'));
    const logs = await cli('logs', 'sbom-store', ...store);
    expect(logs.stderr).toMatch(
      /^SBOM: \d+ packages, no changes since the source image; print it with: isobuild logs sbom-store --sbom$/m,
    );
    const sbom = await cli('logs', 'sbom-store', '--sbom', ...store);
    expect(sbom.code, sbom.stderr).toBe(0);
    await validateCycloneDx(sbom.stdout);
    expect(run.status.logStore).toMatchObject({ state: 'stored' });

    // The stored bundle is the one the provenance record names, with the SBOM inside.
    const blobs = await openBlobStore({
      kind: 'connection-string',
      connectionString: new Secret(azurite.connectionString),
    });
    const storedBundle = await blobs.container
      .getBlobClient('sbom-store/build-bundle.tar.gz')
      .downloadToBuffer();
    const subjects = (
      JSON.parse(provenance.stdout) as { subject: { name: string; digest: { sha256: string } }[] }
    ).subject;
    expect(subjects[0]).toEqual({ name: 'build-bundle.tar.gz', digest: { sha256: sha(storedBundle) } });
    expect(run.status.logStore?.sbom).toMatch(/\/sbom-store\/sbom\.cdx\.json$/);
    expect(run.status.logStore?.provenance).toMatch(/\/sbom-store\/provenance\.json$/);
    const both = await cli('logs', 'sbom-store', '--sbom', '--provenance', ...store);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--sbom and --provenance cannot be combined/);

    const records = [provenance.stdout, sbom.stdout, JSON.stringify(run.status)];
    const forms = [SECRET, encodeURIComponent(SECRET), Buffer.from(SECRET).toString('base64')];
    // The URI is computed from the secret, so it is a secret itself: recorded, but masked.
    const uris = (
      JSON.parse(provenance.stdout) as {
        predicate: { buildDefinition: { resolvedDependencies: { uri: string }[] } };
      }
    ).predicate.buildDefinition.resolvedDependencies.map((d) => d.uri);
    expect(uris).toEqual(['***']);
    for (const text of records) for (const form of forms) expect(text.includes(form), form).toBe(false);

    // The run is gone from the work dir: diff finds both in the store.
    await rm(run.runDir, { recursive: true, force: true });
    const diff = await cli('diff', 'sbom-store', 'sbom-store', '--work-dir', work, ...store);
    expect(diff.code, diff.stdout + diff.stderr).toBe(0);
    const missing = await cli('logs', 'sbom-nothing', '--provenance', ...store);
    expect(missing.code).toBe(2);
  });
});
