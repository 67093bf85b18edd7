/** Inventory diffs: matching by kind, name and arch; several versions of one package; the OS; properties. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeOs, diffInventories, summarizeDiff } from '../../agent/src/sbom/inventory-diff.js';
import type { InstalledPackage, Inventory, OperatingSystem } from '../../agent/src/sbom/inventory.js';
import { sortPackages } from '../../agent/src/sbom/package-order.js';

const DEBIAN: OperatingSystem = { id: 'debian', name: 'Debian GNU/Linux 12 (bookworm)', version: '12' };

function inventory(packages: InstalledPackage[], os: OperatingSystem = DEBIAN): Inventory {
  return { os, packages: sortPackages(packages), collectedAt: '2026-01-01T00:00:00.000Z' };
}

function deb(name: string, version: string, arch = 'amd64'): InstalledPackage {
  return { kind: 'deb', name, version, arch };
}

function rpm(name: string, version: string, arch = 'x86_64'): InstalledPackage {
  return { kind: 'rpm', name, version, arch };
}

describe('diffInventories', () => {
  const before = inventory([
    deb('bash', '5.2.15-2+b7'),
    deb('curl', '7.88.1-10+deb12u8'),
    deb('nano', '7.2-1'),
    deb('libc6', '2.36-9+deb12u14'),
    deb('probe', '2.0'),
    deb('zlib1g', '1:1.2.13.dfsg-1'),
    deb('multi', '1.0', 'i386'),
  ]);
  const after = inventory([
    deb('bash', '5.2.15-2+b8'),
    deb('curl', '7.88.1-10+deb12u8'),
    deb('libc6', '2.36-9+deb12u14'),
    deb('probe', '1.0'),
    deb('zlib1g', '1:1.2.13.dfsg-1'),
    deb('jq', '1.6-2.1'),
    deb('htop', '3.2.2-2'),
    deb('multi', '1.0', 'amd64'),
  ]);
  const diff = diffInventories(before, after);

  it('finds added, removed, upgraded and downgraded packages, each list sorted', () => {
    expect(diff.added.map((p) => `${p.name}:${p.arch}`)).toEqual(['htop:amd64', 'jq:amd64', 'multi:amd64']);
    expect(diff.removed.map((p) => `${p.name}:${p.arch}`)).toEqual(['multi:i386', 'nano:amd64']);
    expect(diff.upgraded).toEqual([
      { name: 'bash', kind: 'deb', arch: 'amd64', from: '5.2.15-2+b7', to: '5.2.15-2+b8' },
    ]);
    expect(diff.downgraded).toEqual([{ name: 'probe', kind: 'deb', arch: 'amd64', from: '2.0', to: '1.0' }]);
    expect(diff.unchanged).toBe(3);
    expect(diff.os).toBeUndefined();
  });

  it('counts a package whose arch changed as removed and added', () => {
    expect(diff.removed.find((p) => p.name === 'multi')?.arch).toBe('i386');
    expect(diff.added.find((p) => p.name === 'multi')?.arch).toBe('amd64');
  });

  it('orders versions the package manager’s way, not as text', () => {
    const up = diffInventories(inventory([deb('tool', '1.0~rc1')]), inventory([deb('tool', '1.0')]));
    expect(up.upgraded).toHaveLength(1);
    const epoch = diffInventories(inventory([deb('tool', '2.0')]), inventory([deb('tool', '1:0.1')]));
    expect(epoch.upgraded).toHaveLength(1);
    const rpmEpoch = diffInventories(inventory([rpm('tool', '1:1.0-1')]), inventory([rpm('tool', '2.0-1')]));
    expect(rpmEpoch.downgraded).toHaveLength(1);
  });

  it('shows another spelling of an equal version as an upgrade rather than hiding it', () => {
    const respelled = diffInventories(inventory([deb('tool', '1.0')]), inventory([deb('tool', '1.00')]));
    expect(respelled.upgraded).toEqual([
      { name: 'tool', kind: 'deb', arch: 'amd64', from: '1.0', to: '1.00' },
    ]);
    expect(respelled.unchanged).toBe(0);
  });

  it('keeps kinds apart: a Windows program and a hotfix of one name are two packages', () => {
    const windows = {
      id: 'windows',
      name: 'Microsoft Windows Server 2022 Datacenter',
      version: '10.0.20348',
    };
    const one = inventory([{ kind: 'windows-program', name: 'X', version: '1', arch: 'x64' }], windows);
    const two = inventory([{ kind: 'windows-hotfix', name: 'X', version: '' }], windows);
    const diff = diffInventories(one, two);
    expect([diff.added.length, diff.removed.length, diff.upgraded.length]).toEqual([1, 1, 0]);
  });

  it('several kernels of one name and arch: a kernel beside the old one is added; a replaced one upgraded', () => {
    const old = inventory([
      rpm('kernel-core', '5.14.0-362.8.1.el9_3'),
      rpm('kernel-core', '5.14.0-427.13.1.el9_4'),
    ]);
    const beside = inventory([...old.packages, rpm('kernel-core', '5.14.0-503.el9')]);
    const besideDiff = diffInventories(old, beside);
    expect(besideDiff.added.map((p) => p.version)).toEqual(['5.14.0-503.el9']);
    expect([besideDiff.upgraded.length, besideDiff.removed.length, besideDiff.unchanged]).toEqual([0, 0, 2]);

    const rotated = inventory([
      rpm('kernel-core', '5.14.0-427.13.1.el9_4'),
      rpm('kernel-core', '5.14.0-503.el9'),
    ]);
    const rotatedDiff = diffInventories(old, rotated);
    expect(rotatedDiff.upgraded).toEqual([
      {
        name: 'kernel-core',
        kind: 'rpm',
        arch: 'x86_64',
        from: '5.14.0-362.8.1.el9_3',
        to: '5.14.0-503.el9',
      },
    ]);
    expect([rotatedDiff.added.length, rotatedDiff.removed.length, rotatedDiff.unchanged]).toEqual([0, 0, 1]);

    const shrunk = diffInventories(old, inventory([rpm('kernel-core', '5.14.0-503.el9')]));
    expect(shrunk.upgraded.map((c) => c.from)).toEqual(['5.14.0-427.13.1.el9_4']);
    expect(shrunk.removed.map((p) => p.version)).toEqual(['5.14.0-362.8.1.el9_3']);
  });

  it('reports an OS change of name, version or build, in words', () => {
    const windows = (build: string) => ({
      id: 'windows',
      name: 'Microsoft Windows Server 2022 Datacenter',
      version: `10.0.${build}`,
      build,
    });
    const change = diffInventories(inventory([], windows('20348')), inventory([], windows('20349'))).os;
    expect(change).toEqual({
      from: 'Microsoft Windows Server 2022 Datacenter (10.0.20348, build 20348)',
      to: 'Microsoft Windows Server 2022 Datacenter (10.0.20349, build 20349)',
      before: windows('20348'),
      after: windows('20349'),
    });
    const buildOnly = { ...windows('20348'), build: '20349' };
    expect(diffInventories(inventory([], windows('20348')), inventory([], buildOnly)).os).toBeDefined();
    const upgraded = { id: 'debian', name: 'Debian GNU/Linux 13 (trixie)', version: '13' };
    expect(diffInventories(inventory([]), inventory([], upgraded)).os?.to).toBe(
      'Debian GNU/Linux 13 (trixie)',
    );
    expect(describeOs({ id: 'ubuntu', name: 'Ubuntu 22.04.4 LTS', version: '22.04' })).toBe(
      'Ubuntu 22.04.4 LTS',
    );
    expect(describeOs({ id: 'rhel', name: 'Red Hat Enterprise Linux', version: '9.4' })).toBe(
      'Red Hat Enterprise Linux (9.4)',
    );
  });

  it('summarizes into counts', () => {
    expect(summarizeDiff(diff)).toEqual({
      added: 3,
      removed: 2,
      upgraded: 1,
      downgraded: 1,
      unchanged: 3,
      osChanged: false,
    });
  });
});

describe('diffInventories: properties', () => {
  // Versions strictly ordered (no two spellings of one version), some packages in several versions.
  const pkg = fc.record({
    name: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
    arch: fc.constantFrom('amd64', 'i386'),
    version: fc.integer({ min: 0, max: 6 }).map(String),
  });
  const packages = fc
    .uniqueArray(pkg, { selector: (p) => `${p.name}/${p.arch}/${p.version}`, maxLength: 14 })
    .map((list) => inventory(list.map((p) => deb(p.name, p.version, p.arch))));

  it('an inventory against itself: nothing changed', () => {
    fc.assert(
      fc.property(packages, (one) => {
        const diff = diffInventories(one, one);
        expect(summarizeDiff(diff)).toEqual({
          added: 0,
          removed: 0,
          upgraded: 0,
          downgraded: 0,
          unchanged: one.packages.length,
          osChanged: false,
        });
      }),
    );
  });

  it('accounts for every package on each side, and reverses exactly', () => {
    fc.assert(
      fc.property(packages, packages, (before, after) => {
        const forward = diffInventories(before, after);
        const changed = forward.upgraded.length + forward.downgraded.length;
        expect(forward.unchanged + forward.removed.length + changed).toBe(before.packages.length);
        expect(forward.unchanged + forward.added.length + changed).toBe(after.packages.length);
        const backward = diffInventories(after, before);
        expect(backward.added).toEqual(forward.removed);
        expect(backward.removed).toEqual(forward.added);
        const swap = (c: { from: string; to: string }) => ({ ...c, from: c.to, to: c.from });
        expect(
          backward.upgraded
            .map(swap)
            .map((c) => JSON.stringify(c))
            .sort(),
        ).toEqual(forward.downgraded.map((c) => JSON.stringify(c)).sort());
        expect(backward.unchanged).toBe(forward.unchanged);
      }),
      { numRuns: 300 },
    );
  });
});
