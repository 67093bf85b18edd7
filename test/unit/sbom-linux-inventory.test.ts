/**
 * The Linux inventory script and its parser: the script run for real with `sh -c` on this machine (its own
 * dpkg database, and a crafted one through a dpkg-query that points at it), captured output, and a
 * hand-written rpm listing as RHEL and Mariner print it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LINUX_INVENTORY_SCRIPT, parseLinuxInventory } from '../../agent/src/sbom/linux-inventory.js';

const scratch = mkdtempSync(join(tmpdir(), 'isobuild-sbom-linux-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs the script as isobuild does over SSH, with PATH set so `dpkg-query`/`rpm` resolve where a test wants. */
function runScript(path = process.env.PATH ?? ''): string {
  return execFileSync('/bin/sh', ['-c', LINUX_INVENTORY_SCRIPT], {
    encoding: 'utf8',
    env: { PATH: path },
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** A bin directory whose dpkg-query runs the real one against a crafted database, or does what `body` says. */
function fakeBin(name: string, body: string, links: readonly string[] = []): string {
  const bin = join(scratch, name);
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'dpkg-query'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(bin, 'dpkg-query'), 0o755);
  for (const tool of links) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  return bin;
}

const CRAFTED_STATUS = [
  ['keep', 'install ok installed', 'amd64', '1:2.0~rc1-3'],
  ['held', 'hold ok installed', 'all', '0.9'],
  ['gone', 'deinstall ok config-files', 'amd64', '1.0-1'],
  ['libmulti', 'install ok installed', 'i386', '3.1-1'],
  ['libmulti', 'install ok installed', 'amd64', '3.1-1'],
  ['leaving', 'deinstall ok installed', 'amd64', '5'],
  ['broken', 'install reinstreq half-installed', 'amd64', '1'],
  ['never', 'purge ok not-installed', 'amd64', ''],
]
  .map(
    ([name, status, arch, version]) =>
      `Package: ${name}\nStatus: ${status}\nMaintainer: Test <t@example.org>\nArchitecture: ${arch}\n` +
      `${name === 'libmulti' ? 'Multi-Arch: same\n' : ''}` +
      `${version ? `Version: ${version}\n` : ''}Description: ${name}\n`,
  )
  .join('\n');

const hasDpkg = spawnSync('dpkg-query', ['--version']).status === 0;

describe.runIf(hasDpkg)('the script on this machine (real dpkg-query)', () => {
  it('lists every installed package with the version and architecture dpkg-query reports', () => {
    const inventory = parseLinuxInventory(runScript(), '2026-01-01T00:00:00.000Z');
    // A second opinion from dpkg itself: the installed packages, as `dpkg -l` marks them.
    const installed = execFileSync(
      'dpkg-query',
      ['-W', '-f', '${db:Status-Status} ${Package} ${Architecture} ${Version}\\n'],
      { encoding: 'utf8' },
    )
      .split('\n')
      .filter((line) => line.startsWith('installed '))
      .map((line) => line.split(' ').slice(1).join(' '))
      .sort();
    const listed = inventory.packages.map((p) => `${p.name} ${p.arch} ${p.version}`).sort();
    expect(listed).toEqual(installed);
    expect(inventory.packages.length).toBeGreaterThan(50);
    expect(inventory.packages.every((p) => p.kind === 'deb' && p.purl?.startsWith('pkg:deb/'))).toBe(true);
    expect(inventory.collectedAt).toBe('2026-01-01T00:00:00.000Z');
  });

  it('names the OS from /etc/os-release', () => {
    const release = execFileSync('sh', ['-c', '. /etc/os-release; printf "%s\\n%s" "$ID" "$VERSION_ID"'], {
      encoding: 'utf8',
    }).split('\n');
    const { os } = parseLinuxInventory(runScript());
    expect([os.id, os.version]).toEqual(release);
  });

  it('keeps installed packages only: not rc leftovers, half-installed or never-installed ones', () => {
    const admin = join(scratch, 'admin');
    mkdirSync(join(admin, 'info'), { recursive: true });
    mkdirSync(join(admin, 'updates'), { recursive: true });
    writeFileSync(join(admin, 'status'), CRAFTED_STATUS);
    const bin = fakeBin('crafted', `exec /usr/bin/dpkg-query --admindir='${admin}' "$@" 2>/dev/null`);
    const inventory = parseLinuxInventory(runScript(`${bin}:${process.env.PATH ?? ''}`));
    expect(inventory.packages.map((p) => [p.name, p.version, p.arch])).toEqual([
      ['held', '0.9', 'all'],
      ['keep', '1:2.0~rc1-3', 'amd64'],
      ['leaving', '5', 'amd64'],
      ['libmulti', '3.1-1', 'amd64'],
      ['libmulti', '3.1-1', 'i386'],
    ]);
    // dpkg's whole version (epoch included) in a deb purl; '~' stays as it is.
    expect(inventory.packages[1]!.purl).toMatch(/^pkg:deb\/[a-z]+\/keep@1:2\.0~rc1-3\?arch=amd64&distro=/);
  });

  it('refuses a listing that dpkg-query broke off with an error', () => {
    const bin = fakeBin('failing', `printf 'ii \\tbash\\t5.2-1\\tamd64\\n'; exit 2`);
    expect(() => parseLinuxInventory(runScript(`${bin}:${process.env.PATH ?? ''}`))).toThrow(
      /dpkg-query exited with status 2 .*incomplete/,
    );
  });

  it('says so when the VM has neither dpkg-query nor rpm', () => {
    const bin = join(scratch, 'bare');
    mkdirSync(bin);
    symlinkSync('/usr/bin/cat', join(bin, 'cat'));
    const output = runScript(bin);
    expect(output).toContain('--isobuild-no-package-manager--');
    expect(() => parseLinuxInventory(output)).toThrow(/neither dpkg-query nor rpm/);
  });
});

const hasRpmbuild = spawnSync('rpmbuild', ['--version']).status === 0;

describe.runIf(hasRpmbuild)('the script with real rpm (where rpm and rpmbuild are installed)', () => {
  /** Builds an empty package and records it in a database of the test's own. */
  function rpmDatabase(): string {
    const top = join(scratch, 'rpmbuild');
    const db = join(scratch, 'rpmdb');
    mkdirSync(join(top, 'SPECS'), { recursive: true });
    mkdirSync(db, { recursive: true });
    const spec = (name: string, extra: string) =>
      `Name: ${name}\nVersion: 1.2\nRelease: 3.el9\n${extra}Summary: t\nLicense: MIT\n%description\nt\n%files\n`;
    writeFileSync(join(top, 'SPECS', 'epoch.spec'), spec('with-epoch', 'Epoch: 2\nBuildArch: noarch\n'));
    writeFileSync(join(top, 'SPECS', 'plain.spec'), spec('plain', ''));
    for (const file of ['epoch.spec', 'plain.spec']) {
      execFileSync(
        'rpmbuild',
        [
          '--quiet',
          '--define',
          `_topdir ${top}`,
          '--define',
          '_build_name_fmt %%{NAME}.rpm',
          '-bb',
          join(top, 'SPECS', file),
        ],
        { stdio: 'ignore' },
      );
    }
    execFileSync('rpm', ['--dbpath', db, '--initdb']);
    const rpms = ['with-epoch', 'plain'].map((name) => join(top, 'RPMS', `${name}.rpm`));
    execFileSync('rpm', ['--dbpath', db, '-i', '--justdb', '--nodeps', '--noscripts', ...rpms], {
      stdio: 'ignore',
    });
    return db;
  }

  it("lists rpm's packages, the epoch only where it is set, when there is no dpkg", () => {
    const db = rpmDatabase();
    const bin = join(scratch, 'rpm-only');
    mkdirSync(bin);
    symlinkSync('/usr/bin/cat', join(bin, 'cat'));
    writeFileSync(join(bin, 'rpm'), `#!/bin/sh\nexec /usr/bin/rpm --dbpath='${db}' "$@"\n`);
    chmodSync(join(bin, 'rpm'), 0o755);
    const inventory = parseLinuxInventory(runScript(bin));
    const arch = execFileSync('rpm', ['--eval', '%{_arch}'], { encoding: 'utf8' }).trim();
    expect(inventory.packages.map((p) => [p.kind, p.name, p.version, p.arch])).toEqual([
      ['rpm', 'plain', '1.2-3.el9', arch],
      ['rpm', 'with-epoch', '2:1.2-3.el9', 'noarch'],
    ]);
    expect(inventory.packages[1]!.purl).toMatch(
      /^pkg:rpm\/[a-z]+\/with-epoch@1\.2-3\.el9\?arch=noarch&distro=.*&epoch=2$/,
    );
  });
});

// Captured from this machine's run of the script (an excerpt), after a login banner.
const DEBIAN_OUTPUT = [
  'Welcome to the build VM!',
  '--isobuild-os-release--',
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
  'NAME="Debian GNU/Linux"',
  'VERSION_ID="12"',
  'VERSION="12 (bookworm)"',
  'VERSION_CODENAME=bookworm',
  'ID=debian',
  'HOME_URL="https://www.debian.org/"',
  '',
  '--isobuild-dpkg--',
  'ii \tadduser\t3.134\tall',
  'ii \tbash\t5.2.15-2+b8\tamd64',
  'ii \tbsdutils\t1:2.38.1-5+deb12u3\tamd64',
  'ii \tca-certificates-java\t20230710~deb12u1\tall',
  'ii \tg++\t4:12.2.0-3\tamd64',
  'ii \tlibc6\t2.36-9+deb12u14\tamd64',
  'ii \tlibstdc++6\t12.2.0-14+deb12u1\tamd64',
  'rc \tlibold1\t0.3-1\tamd64',
  'ii \tzlib1g-dev\t1:1.2.13.dfsg-1\tamd64',
  '--isobuild-end-- 0',
  '',
].join('\n');

describe('parseLinuxInventory: Debian', () => {
  const inventory = parseLinuxInventory(DEBIAN_OUTPUT, '2026-01-01T00:00:00.000Z');

  it('reads the OS from os-release, after a banner', () => {
    expect(inventory.os).toEqual({ id: 'debian', name: 'Debian GNU/Linux 12 (bookworm)', version: '12' });
  });

  it('builds purls per the spec: namespace from ID, whole dpkg version, arch and distro qualifiers', () => {
    const purls = Object.fromEntries(inventory.packages.map((p) => [p.name, p.purl]));
    expect(purls).toEqual({
      adduser: 'pkg:deb/debian/adduser@3.134?arch=all&distro=debian-12',
      bash: 'pkg:deb/debian/bash@5.2.15-2+b8?arch=amd64&distro=debian-12',
      bsdutils: 'pkg:deb/debian/bsdutils@1:2.38.1-5+deb12u3?arch=amd64&distro=debian-12',
      'ca-certificates-java':
        'pkg:deb/debian/ca-certificates-java@20230710~deb12u1?arch=all&distro=debian-12',
      'g++': 'pkg:deb/debian/g%2B%2B@4:12.2.0-3?arch=amd64&distro=debian-12',
      libc6: 'pkg:deb/debian/libc6@2.36-9+deb12u14?arch=amd64&distro=debian-12',
      'libstdc++6': 'pkg:deb/debian/libstdc%2B%2B6@12.2.0-14+deb12u1?arch=amd64&distro=debian-12',
      'zlib1g-dev': 'pkg:deb/debian/zlib1g-dev@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12',
    });
  });

  it('sorts by kind, name and arch, and keeps the raw version', () => {
    expect(inventory.packages.map((p) => p.name)).toEqual([
      'adduser',
      'bash',
      'bsdutils',
      'ca-certificates-java',
      'g++',
      'libc6',
      'libstdc++6',
      'zlib1g-dev',
    ]);
    expect(inventory.packages[2]).toMatchObject({
      kind: 'deb',
      version: '1:2.38.1-5+deb12u3',
      arch: 'amd64',
    });
  });

  it('reads CRLF output and /usr/lib/os-release-style single quotes alike', () => {
    const crlf = DEBIAN_OUTPUT.replace('ID=debian', "ID='debian'").replace(/\n/g, '\r\n');
    expect(parseLinuxInventory(crlf, inventory.collectedAt)).toEqual(inventory);
  });

  it('falls back to the codename for distro when os-release has no VERSION_ID (testing, sid)', () => {
    const sid = DEBIAN_OUTPUT.replace('VERSION_ID="12"\n', '').replace(
      'VERSION_CODENAME=bookworm',
      'VERSION_CODENAME=trixie',
    );
    const parsed = parseLinuxInventory(sid);
    expect(parsed.os.version).toBe('');
    expect(parsed.packages[0]!.purl).toBe('pkg:deb/debian/adduser@3.134?arch=all&distro=debian-trixie');
  });
});

// What `rpm -qa --qf` prints on RHEL 9.4 (written by hand after a real system's listing): two kernels of
// one name and arch side by side, epochs, noarch, and the signing keys listed as gpg-pubkey.
const RHEL_OUTPUT = [
  '--isobuild-os-release--',
  'NAME="Red Hat Enterprise Linux"',
  'VERSION="9.4 (Plow)"',
  'ID="rhel"',
  'ID_LIKE="fedora"',
  'VERSION_ID="9.4"',
  'PLATFORM_ID="platform:el9"',
  'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"',
  'CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"',
  '',
  '--isobuild-rpm--',
  'bash\t5.1.8-9.el9\tx86_64',
  'gpg-pubkey\tfd431d51-4ae0493b\t(none)',
  'openssl-libs\t1:3.0.7-27.el9\tx86_64',
  'kernel-core\t5.14.0-427.13.1.el9_4\tx86_64',
  'tzdata\t2024a-1.el9\tnoarch',
  'NetworkManager\t1:1.46.0-4.el9_4\tx86_64',
  'gpg-pubkey\t5a6340b3-6229229e\t(none)',
  'kernel-core\t5.14.0-362.8.1.el9_3\tx86_64',
  'glibc\t2.34-100.el9\ti686',
  'glibc\t2.34-100.el9\tx86_64',
  '--isobuild-end-- 0',
].join('\n');

describe('parseLinuxInventory: rpm', () => {
  const inventory = parseLinuxInventory(RHEL_OUTPUT, '2026-01-01T00:00:00.000Z');

  it('reads the OS and skips gpg-pubkey', () => {
    expect(inventory.os).toEqual({ id: 'rhel', name: 'Red Hat Enterprise Linux 9.4 (Plow)', version: '9.4' });
    expect(inventory.packages.some((p) => p.name === 'gpg-pubkey')).toBe(false);
  });

  it("keeps rpm's [epoch:]version-release as the version, and puts the epoch in a purl qualifier", () => {
    expect(inventory.packages.map((p) => [p.name, p.version, p.arch, p.purl])).toEqual([
      [
        'NetworkManager',
        '1:1.46.0-4.el9_4',
        'x86_64',
        'pkg:rpm/rhel/NetworkManager@1.46.0-4.el9_4?arch=x86_64&distro=rhel-9.4&epoch=1',
      ],
      ['bash', '5.1.8-9.el9', 'x86_64', 'pkg:rpm/rhel/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9.4'],
      ['glibc', '2.34-100.el9', 'i686', 'pkg:rpm/rhel/glibc@2.34-100.el9?arch=i686&distro=rhel-9.4'],
      ['glibc', '2.34-100.el9', 'x86_64', 'pkg:rpm/rhel/glibc@2.34-100.el9?arch=x86_64&distro=rhel-9.4'],
      // Two kernels of one name and arch: both listed, the older first.
      [
        'kernel-core',
        '5.14.0-362.8.1.el9_3',
        'x86_64',
        'pkg:rpm/rhel/kernel-core@5.14.0-362.8.1.el9_3?arch=x86_64&distro=rhel-9.4',
      ],
      [
        'kernel-core',
        '5.14.0-427.13.1.el9_4',
        'x86_64',
        'pkg:rpm/rhel/kernel-core@5.14.0-427.13.1.el9_4?arch=x86_64&distro=rhel-9.4',
      ],
      [
        'openssl-libs',
        '1:3.0.7-27.el9',
        'x86_64',
        'pkg:rpm/rhel/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1',
      ],
      ['tzdata', '2024a-1.el9', 'noarch', 'pkg:rpm/rhel/tzdata@2024a-1.el9?arch=noarch&distro=rhel-9.4'],
    ]);
  });

  it('takes the namespace from os-release ID on Mariner too', () => {
    const mariner = RHEL_OUTPUT.replace('ID="rhel"', 'ID=mariner').replace(
      'VERSION_ID="9.4"',
      'VERSION_ID="2.0"',
    );
    expect(parseLinuxInventory(mariner).packages[1]!.purl).toBe(
      'pkg:rpm/mariner/bash@5.1.8-9.el9?arch=x86_64&distro=mariner-2.0',
    );
  });
});

describe('parseLinuxInventory: output it cannot read', () => {
  it('no os-release section', () => {
    expect(() => parseLinuxInventory('Permission denied (publickey).\n')).toThrow(/no os-release section/);
  });

  it('a VM without os-release', () => {
    expect(() =>
      parseLinuxInventory('--isobuild-no-os-release--\n\n--isobuild-dpkg--\n--isobuild-end-- 0\n'),
    ).toThrow(/neither \/etc\/os-release nor \/usr\/lib\/os-release/);
  });

  it('cut off after os-release, or in the middle of the listing', () => {
    const [beforeList] = DEBIAN_OUTPUT.split('--isobuild-dpkg--');
    expect(() => parseLinuxInventory(beforeList!)).toThrow(/no package section/);
    expect(() => parseLinuxInventory(DEBIAN_OUTPUT.split('ii \tlibc6')[0]!)).toThrow(
      /ends before "--isobuild-end--"/,
    );
  });

  it('a line that is not a listing line', () => {
    expect(() =>
      parseLinuxInventory(DEBIAN_OUTPUT.replace('ii \tbash\t5.2.15-2+b8\tamd64', 'ii bash 5.2')),
    ).toThrow(/Cannot read this line of the dpkg-query listing.*"ii bash 5.2"/);
  });
});
