/**
 * The CycloneDX SBOM: every document these tests build is checked by the library's strict validator
 * against the official 1.6 schema (inside buildCycloneDx, and again here through validateCycloneDx), the
 * read-back gives the inventory exactly, and a broken document fails validation.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildCycloneDx,
  readCycloneDxInventory,
  SBOM_PROPERTIES,
  validateCycloneDx,
  type SbomMeta,
} from '../../agent/src/sbom/cyclonedx.js';
import type { InstalledPackage, Inventory } from '../../agent/src/sbom/inventory.js';
import { LINUX_INVENTORY_SCRIPT, parseLinuxInventory } from '../../agent/src/sbom/linux-inventory.js';
import { sortPackages } from '../../agent/src/sbom/package-order.js';
import { debPurl, rpmPurl } from '../../agent/src/sbom/purl.js';

interface Component {
  type: string;
  name: string;
  version?: string;
  purl?: string;
  publisher?: string;
  'bom-ref'?: string;
  properties?: { name: string; value: string }[];
}

const META: SbomMeta = {
  runId: '20260101-120000-ab12',
  templateName: 'linux-baseline',
  imageLabel: 'linux-baseline.json',
  toolVersion: '0.1.0',
  timestamp: '2026-01-01T12:30:00.000Z',
};

const RHEL = { id: 'rhel', name: 'Red Hat Enterprise Linux 9.4 (Plow)', version: '9.4' };
const rhelWhere = { id: 'rhel', distro: 'rhel-9.4' };

function rpm(name: string, version: string, arch = 'x86_64'): InstalledPackage {
  return { kind: 'rpm', name, version, arch, purl: rpmPurl(name, version, arch, rhelWhere) };
}

const RHEL_INVENTORY: Inventory = {
  os: RHEL,
  collectedAt: '2026-01-01T12:29:00.000Z',
  packages: sortPackages([
    rpm('bash', '5.1.8-9.el9'),
    rpm('openssl-libs', '1:3.0.7-27.el9'),
    rpm('kernel-core', '5.14.0-362.8.1.el9_3'),
    rpm('kernel-core', '5.14.0-427.13.1.el9_4'),
    rpm('tzdata', '2024a-1.el9', 'noarch'),
  ]),
};

const WINDOWS_INVENTORY: Inventory = {
  os: {
    id: 'windows',
    name: 'Microsoft Windows Server 2022 Datacenter',
    version: '10.0.20348',
    build: '20348',
  },
  collectedAt: '2026-01-01T12:29:00.000Z',
  packages: sortPackages([
    {
      kind: 'windows-program',
      name: '7-Zip 24.08 (x64)',
      version: '24.08',
      arch: 'x64',
      publisher: 'Igor Pavlov',
    },
    { kind: 'windows-program', name: 'Tool without publisher', version: '', arch: 'x86' },
    { kind: 'windows-hotfix', name: 'KB5044281', version: '' },
  ]),
};

function components(json: string): Component[] {
  return (JSON.parse(json) as { components: Component[] }).components;
}

function imageOf(json: string): Component {
  return (JSON.parse(json) as { metadata: { component: Component } }).metadata.component;
}

function propertiesOf(component: Component | undefined): Record<string, string[]> {
  const grouped: Record<string, string[]> = {};
  for (const { name, value } of component?.properties ?? []) (grouped[name] ??= []).push(value);
  return grouped;
}

describe('loading', () => {
  it('does not load the CycloneDX library until an SBOM is built (the CLI starts without it)', async () => {
    const loaded = () =>
      Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('cyclonedx-library'));
    expect(loaded()).toBe(false);
    await buildCycloneDx(RHEL_INVENTORY, META);
    expect(loaded()).toBe(true);
  });
});

describe('buildCycloneDx', () => {
  it('writes a valid CycloneDX 1.6 document with metadata, the image, the OS and one component per package', async () => {
    const json = await buildCycloneDx(RHEL_INVENTORY, META);
    await validateCycloneDx(json);
    const document = JSON.parse(json);
    expect(document).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1 });
    expect(document.serialNumber).toMatch(
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(document.metadata.timestamp).toBe(META.timestamp);
    expect(document.metadata.tools.components).toEqual([
      { type: 'application', name: 'isobuild', version: '0.1.0' },
    ]);
    const image = document.metadata.component as Component;
    expect(image).toMatchObject({
      type: 'operating-system',
      name: 'linux-baseline.json',
      'bom-ref': 'image',
    });
    expect(propertiesOf(image)).toEqual({
      [SBOM_PROPERTIES.runId]: [META.runId],
      [SBOM_PROPERTIES.template]: ['linux-baseline'],
      [SBOM_PROPERTIES.collectedAt]: [RHEL_INVENTORY.collectedAt],
    });

    const list = components(json);
    expect(list.find((c) => c['bom-ref'] === 'os')).toMatchObject({
      type: 'operating-system',
      name: 'rhel',
      version: '9.4',
    });
    const openssl = list.find((c) => c.name === 'openssl-libs')!;
    expect(openssl).toMatchObject({
      type: 'library',
      version: '1:3.0.7-27.el9',
      'bom-ref': 'rpm/openssl-libs/x86_64',
      purl: 'pkg:rpm/rhel/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1',
    });
    expect(propertiesOf(openssl)).toEqual({ 'isobuild:kind': ['rpm'], 'isobuild:arch': ['x86_64'] });
    expect(list).toHaveLength(RHEL_INVENTORY.packages.length + 1);
  });

  it('gives stable, unique bom-refs: kind/name/arch, with the version where one name has several', async () => {
    const refs = components(await buildCycloneDx(RHEL_INVENTORY, META)).map((c) => c['bom-ref']);
    expect(refs.sort()).toEqual([
      'os',
      'rpm/bash/x86_64',
      'rpm/kernel-core/x86_64@5.14.0-362.8.1.el9_3',
      'rpm/kernel-core/x86_64@5.14.0-427.13.1.el9_4',
      'rpm/openssl-libs/x86_64',
      'rpm/tzdata/noarch',
    ]);
  });

  it('lists Windows programs and hotfixes as applications, with publisher and no purl', async () => {
    const json = await buildCycloneDx(WINDOWS_INVENTORY, { ...META, imageLabel: 'win2022.json' });
    await validateCycloneDx(json);
    const list = components(json);
    const zip = list.find((c) => c.name === '7-Zip 24.08 (x64)')!;
    expect(zip).toMatchObject({ type: 'application', version: '24.08', publisher: 'Igor Pavlov' });
    expect(zip.purl).toBeUndefined();
    expect(propertiesOf(zip)).toEqual({
      'isobuild:kind': ['windows-program'],
      'isobuild:arch': ['x64'],
      'isobuild:publisher': ['Igor Pavlov'],
    });
    expect(list.find((c) => c.name === 'KB5044281')).toMatchObject({
      type: 'application',
      'bom-ref': 'windows-hotfix/KB5044281',
    });
    expect(propertiesOf(list.find((c) => c['bom-ref'] === 'os'))['isobuild:os-build']).toEqual(['20348']);
  });

  it('marks each package’s change against the baseline, and lists removed packages on the image', async () => {
    const baseline: Inventory = {
      ...RHEL_INVENTORY,
      collectedAt: '2026-01-01T12:00:00.000Z',
      packages: sortPackages([
        rpm('bash', '5.1.8-6.el9'),
        rpm('openssl-libs', '1:3.0.7-27.el9'),
        rpm('kernel-core', '5.14.0-362.8.1.el9_3'),
        rpm('tzdata', '2024b-1.el9', 'noarch'),
        rpm('nano', '5.6.1-5.el9'),
      ]),
    };
    const json = await buildCycloneDx(RHEL_INVENTORY, { ...META, baseline });
    await validateCycloneDx(json);
    const change = Object.fromEntries(
      components(json)
        .filter((c) => c['bom-ref'] !== 'os')
        .map((c) => [c['bom-ref'], propertiesOf(c)['isobuild:change']]),
    );
    expect(change).toEqual({
      'rpm/bash/x86_64': ['upgraded:5.1.8-6.el9'],
      'rpm/kernel-core/x86_64@5.14.0-362.8.1.el9_3': ['unchanged'],
      'rpm/kernel-core/x86_64@5.14.0-427.13.1.el9_4': ['added'],
      'rpm/openssl-libs/x86_64': ['unchanged'],
      'rpm/tzdata/noarch': ['downgraded:2024b-1.el9'],
    });
    const image = propertiesOf(imageOf(json));
    expect(image['isobuild:removed']!.map((value): unknown => JSON.parse(value))).toEqual([
      rpm('nano', '5.6.1-5.el9'),
    ]);
    expect(image['isobuild:baseline-collected-at']).toEqual(['2026-01-01T12:00:00.000Z']);
    expect(image['isobuild:baseline-os']).toBeUndefined();

    const upgradedOs = await buildCycloneDx(RHEL_INVENTORY, {
      ...META,
      baseline: { ...baseline, os: { ...RHEL, version: '9.3' } },
    });
    const baselineOs = propertiesOf(imageOf(upgradedOs))['isobuild:baseline-os'];
    expect(baselineOs?.map((value): unknown => JSON.parse(value))).toEqual([{ ...RHEL, version: '9.3' }]);
  });

  it('keeps a version longer than the schema allows whole, in a property', async () => {
    const long = 'x'.repeat(1500);
    const inventory = {
      ...WINDOWS_INVENTORY,
      packages: [{ kind: 'windows-program', name: 'Odd', version: long, arch: 'x64' } as const],
    };
    const json = await buildCycloneDx(inventory, META);
    expect(components(json).find((c) => c.name === 'Odd')?.version).toHaveLength(1024);
    expect(readCycloneDxInventory(json)).toStrictEqual(inventory);
  });

  it('throws, as isobuild’s bug, when what it built fails the schema (a caller passing a number as a version)', async () => {
    const inventory = { ...RHEL_INVENTORY, os: { ...RHEL, version: 9.4 as unknown as string } };
    await expect(buildCycloneDx(inventory, META)).rejects.toThrow(
      /CycloneDX document that its schema rejects \(a bug in isobuild.*\/components\/\d+\/.* must be string/,
    );
  });

  it('gives every document its own serial number', async () => {
    const serial = async () => JSON.parse(await buildCycloneDx(RHEL_INVENTORY, META)).serialNumber as string;
    expect(await serial()).not.toBe(await serial());
  });
});

describe('validateCycloneDx', () => {
  it('rejects a component without a name, saying where and what', async () => {
    const document = JSON.parse(await buildCycloneDx(RHEL_INVENTORY, META));
    delete document.components[2].name;
    await expect(validateCycloneDx(JSON.stringify(document))).rejects.toThrow(
      /not valid CycloneDX 1\.6: \/components\/2 must have required property 'name'/,
    );
  });

  it('rejects an unknown component type and a malformed serial number', async () => {
    const document = JSON.parse(await buildCycloneDx(RHEL_INVENTORY, META));
    document.components[0].type = 'package';
    await expect(validateCycloneDx(JSON.stringify(document))).rejects.toThrow(/\/components\/0\/type/);
    const serial = JSON.parse(await buildCycloneDx(RHEL_INVENTORY, META));
    serial.serialNumber = 'not-a-urn';
    await expect(validateCycloneDx(JSON.stringify(serial))).rejects.toThrow(/\/serialNumber/);
  });

  it('rejects what is not a CycloneDX document of a version it knows', async () => {
    await expect(
      validateCycloneDx('{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": 3}'),
    ).rejects.toThrow(/\/components must be array/);
    await expect(validateCycloneDx('{"bomFormat":"CycloneDX","specVersion":"1.2"}')).rejects.toThrow(/"1.2"/);
    await expect(validateCycloneDx('{"spdxVersion":"SPDX-2.3"}')).rejects.toThrow(/not a CycloneDX document/);
    await expect(validateCycloneDx('<bom/>')).rejects.toThrow(/not JSON/);
  });
});

describe('readCycloneDxInventory', () => {
  it('gives back the inventory exactly: rpm, Windows', async () => {
    for (const inventory of [RHEL_INVENTORY, WINDOWS_INVENTORY]) {
      expect(readCycloneDxInventory(await buildCycloneDx(inventory, META))).toStrictEqual(inventory);
    }
  });

  const hasDpkg = spawnSync('dpkg-query', ['--version']).status === 0;
  it.runIf(hasDpkg)('gives back this machine’s whole dpkg inventory exactly, baseline or not', async () => {
    const output = execFileSync('/bin/sh', ['-c', LINUX_INVENTORY_SCRIPT], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    const inventory = parseLinuxInventory(output, '2026-01-01T12:29:00.000Z');
    const baseline = { ...inventory, packages: inventory.packages.slice(5) };
    const json = await buildCycloneDx(inventory, { ...META, baseline });
    await validateCycloneDx(json);
    expect(readCycloneDxInventory(json)).toStrictEqual(inventory);
  });

  it('round-trips random inventories (each document validated)', async () => {
    const name = fc.string({ minLength: 1, maxLength: 12 });
    const version = fc.stringMatching(/^[0-9][0-9a-z.:~+-]{0,8}$/);
    const where = { id: 'debian', distro: 'debian-12' };
    const pkg = fc.oneof(
      fc
        .tuple(
          fc.stringMatching(/^[a-z0-9][a-z0-9+.-]{0,10}$/),
          version,
          fc.constantFrom('amd64', 'all', 'i386'),
        )
        .map(([n, v, a]): InstalledPackage => ({
          kind: 'deb',
          name: n,
          version: v,
          arch: a,
          purl: debPurl(n, v, a, where),
        })),
      fc
        .tuple(
          name,
          fc.string(),
          fc.option(fc.constantFrom('x64', 'x86'), { nil: undefined }),
          fc.option(name, { nil: undefined }),
        )
        .map(([n, v, a, p]): InstalledPackage => ({
          kind: 'windows-program',
          name: n,
          version: v,
          ...(a ? { arch: a } : {}),
          ...(p ? { publisher: p } : {}),
        })),
      name.map((n): InstalledPackage => ({ kind: 'windows-hotfix', name: n, version: '' })),
    );
    const inventory = fc
      .record({
        packages: fc.array(pkg, { maxLength: 12 }),
        build: fc.option(fc.stringMatching(/^[0-9]{0,5}$/), { nil: undefined }),
        osName: fc.string(),
      })
      .map(({ packages, build, osName }): Inventory => ({
        os: { id: 'windows', name: osName, version: '10.0', ...(build === undefined ? {} : { build }) },
        packages: sortPackages(
          // one entry per identity and version, as the parsers give
          [...new Map(packages.map((p) => [`${p.kind}/${p.name}/${p.arch}@${p.version}`, p])).values()],
        ),
        collectedAt: '2026-01-01T12:29:00.000Z',
      }));
    await fc.assert(
      fc.asyncProperty(inventory, async (one) => {
        const json = await buildCycloneDx(one, META);
        await validateCycloneDx(json);
        expect(readCycloneDxInventory(json)).toStrictEqual(one);
      }),
      { numRuns: 40 },
    );
  });

  it('reads another tool’s components from their purls (deb, and rpm with its epoch qualifier)', () => {
    const foreign = JSON.stringify({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      metadata: { timestamp: '2026-01-02T00:00:00Z' },
      components: [
        { type: 'operating-system', name: 'rhel', version: '9.4' },
        {
          type: 'library',
          name: 'openssl-libs',
          version: '3.0.7-27.el9',
          purl: 'pkg:rpm/rhel/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=rhel-9.4',
        },
        { type: 'library', name: 'bash', purl: 'pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64' },
        { type: 'library', name: 'left-pad', version: '1.3.0', purl: 'pkg:npm/left-pad@1.3.0' },
        { type: 'file', name: '/etc/motd' },
      ],
    });
    expect(readCycloneDxInventory(foreign)).toEqual({
      os: { id: 'rhel', name: 'rhel', version: '9.4' },
      collectedAt: '2026-01-02T00:00:00Z',
      packages: [
        {
          kind: 'deb',
          name: 'bash',
          version: '5.2.15-2+b8',
          arch: 'amd64',
          purl: 'pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64',
        },
        {
          kind: 'rpm',
          name: 'openssl-libs',
          version: '1:3.0.7-27.el9',
          arch: 'x86_64',
          purl: 'pkg:rpm/rhel/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=rhel-9.4',
        },
      ],
    });
  });

  it('says what is missing', () => {
    expect(() => readCycloneDxInventory('{"bomFormat":"CycloneDX","components":[]}')).toThrow(
      /no operating-system component/,
    );
    expect(() => readCycloneDxInventory('{"spdxVersion":"SPDX-2.3"}')).toThrow(/not a CycloneDX document/);
  });
});
