/**
 * A Linux build VM's inventory: one POSIX sh script, run over SSH as the build's user, prints os-release and
 * every installed package from one dpkg-query or rpm call; `parseLinuxInventory` reads what it printed.
 * Marker lines separate the sections, so a login banner or profile output before them is passed over.
 */
import type { InstalledPackage, Inventory, OperatingSystem } from './inventory.js';
import { sortPackages } from './package-order.js';
import { debPurl, rpmPurl, type PurlDistro } from './purl.js';

/** The markers the script prints; each starts a section of its output. */
export const LINUX_INVENTORY_MARKERS = {
  osRelease: '--isobuild-os-release--',
  noOsRelease: '--isobuild-no-os-release--',
  dpkg: '--isobuild-dpkg--',
  rpm: '--isobuild-rpm--',
  noPackageManager: '--isobuild-no-package-manager--',
  /** Followed by the package manager's exit status: a listing cut short by an error is not taken as whole. */
  end: '--isobuild-end--',
} as const;

const M = LINUX_INVENTORY_MARKERS;

// dpkg-query: every package dpkg knows, with its status (the parser keeps the installed ones, not `rc`
// leftovers). rpm: the epoch only when set, as rpm itself prints `[epoch:]version-release`.
const DPKG_FORMAT = '${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n';
const RPM_FORMAT = '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n';

/**
 * Prints os-release, then the packages from dpkg-query (tried first when dpkg has a status database, as a
 * Fedora host may carry a dpkg binary) or rpm, then the end marker with the lister's exit status. One call
 * of the package manager and no per-package work: it must cost little more than a bare `dpkg-query -W`.
 */
export const LINUX_INVENTORY_SCRIPT = `LC_ALL=C
export LC_ALL
if [ -r /etc/os-release ]; then
  echo '${M.osRelease}'
  cat /etc/os-release
elif [ -r /usr/lib/os-release ]; then
  echo '${M.osRelease}'
  cat /usr/lib/os-release
else
  echo '${M.noOsRelease}'
fi
echo
if command -v dpkg-query >/dev/null 2>&1 && [ -s /var/lib/dpkg/status ]; then
  echo '${M.dpkg}'
  dpkg-query -W -f='${DPKG_FORMAT}'
elif command -v rpm >/dev/null 2>&1; then
  echo '${M.rpm}'
  rpm -qa --qf '${RPM_FORMAT}'
else
  echo '${M.noPackageManager}'
fi
echo "${M.end} $?"
`;

/** Reads the script's output. Throws, saying what is missing, on output it cannot read. */
export function parseLinuxInventory(
  output: string,
  collectedAt: string = new Date().toISOString(),
): Inventory {
  const sections = splitSections(output);
  if (sections.has(M.noOsRelease)) {
    throw new Error(
      'The VM has neither /etc/os-release nor /usr/lib/os-release, so its distribution is unknown and its packages get no package URL.',
    );
  }
  const osRelease = sections.get(M.osRelease);
  if (!osRelease) {
    throw new Error(
      `The inventory output has no os-release section (no "${M.osRelease}" line): the inventory script did not run, or its output was lost.`,
    );
  }
  const release = parseOsRelease(osRelease.lines);
  const os = operatingSystem(release);
  const where = purlDistro(release, os);
  if (sections.has(M.noPackageManager)) {
    throw new Error(
      'Found neither dpkg-query nor rpm on the VM: isobuild lists the packages of dpkg (Debian, Ubuntu) and rpm (RHEL, SUSE, Mariner) systems only.',
    );
  }
  const lister = sections.has(M.dpkg) ? 'dpkg' : sections.has(M.rpm) ? 'rpm' : undefined;
  if (!lister) {
    throw new Error(
      `The inventory output has no package section ("${M.dpkg}" or "${M.rpm}"): it was cut off after os-release.`,
    );
  }
  checkEnd(sections.get(M.end), lister === 'dpkg' ? 'dpkg-query' : 'rpm');
  const lines = sections.get(lister === 'dpkg' ? M.dpkg : M.rpm)!.lines;
  const packages = lister === 'dpkg' ? readDpkg(lines, where) : readRpm(lines, where);
  return { os, packages: sortPackages(packages), collectedAt };
}

interface Section {
  /** What follows the marker on its line (the end marker's exit status). */
  readonly argument: string;
  readonly lines: string[];
}

/** The output's sections by marker; what comes before the first marker (a banner, profile noise) is dropped. */
function splitSections(output: string): Map<string, Section> {
  const markers = new Set<string>(Object.values(M));
  const sections = new Map<string, Section>();
  let current: Section | undefined;
  for (const line of output.split(/\r?\n/)) {
    const [head = '', ...rest] = line.trim().split(' ');
    if (markers.has(head)) {
      // Each marker once per run; should one repeat, the later section is the one kept.
      current = { argument: rest.join(' '), lines: [] };
      sections.set(head, current);
    } else {
      current?.lines.push(line);
    }
  }
  return sections;
}

function checkEnd(end: Section | undefined, lister: string): void {
  if (!end) {
    throw new Error(
      `The inventory output ends before "${M.end}": the package listing was cut off (connection lost, or ${lister} was killed).`,
    );
  }
  if (end.argument !== '0') {
    throw new Error(
      `${lister} exited with status ${end.argument || 'unknown'} while listing the installed packages; the package list would be incomplete (its error output on the VM says why).`,
    );
  }
}

/** os-release's KEY=value lines; values may be quoted as in a shell (os-release(5)). */
export function parseOsRelease(lines: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const raw of lines) {
    const line = raw.trim();
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) values.set(match[1]!, unquote(match[2]!));
  }
  return values;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\([$"\\`])/g, '$1');
  }
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1);
  return value;
}

function operatingSystem(release: Map<string, string>): OperatingSystem {
  // os-release(5)'s defaults when a field is absent: ID=linux, NAME=Linux.
  const id = (release.get('ID') || 'linux').toLowerCase();
  const name = release.get('PRETTY_NAME') || release.get('NAME') || 'Linux';
  return { id, name, version: release.get('VERSION_ID') ?? '' };
}

function purlDistro(release: Map<string, string>, os: OperatingSystem): PurlDistro {
  // Rolling releases (Debian sid, Arch) have no VERSION_ID; the codename still says which release it was.
  const version = os.version || release.get('VERSION_CODENAME') || '';
  return { id: os.id, distro: version ? `${os.id}-${version}` : undefined };
}

function readDpkg(lines: readonly string[], where: PurlDistro): InstalledPackage[] {
  const packages: InstalledPackage[] = [];
  for (const line of lines) {
    if (line.trim() === '') continue;
    const [status = '', name = '', version = '', arch = ''] = fields(line, 4, 'dpkg-query');
    if (!name) throw unreadable(line, 'dpkg-query');
    // The second letter is the package's state: 'i' is installed (ii, hi, and ri/pi until the removal
    // runs); rc (config files left), un (never installed) and half-done states are not on the VM as a package.
    if (status[1] !== 'i') continue;
    packages.push({
      kind: 'deb',
      name,
      version,
      ...(arch ? { arch } : {}),
      purl: debPurl(name, version, arch || undefined, where),
    });
  }
  return packages;
}

function readRpm(lines: readonly string[], where: PurlDistro): InstalledPackage[] {
  const packages: InstalledPackage[] = [];
  for (const line of lines) {
    if (line.trim() === '') continue;
    const [name = '', version = '', rawArch = ''] = fields(line, 3, 'rpm');
    if (!name) throw unreadable(line, 'rpm');
    // The imported signing keys are listed as packages named gpg-pubkey; they are not software.
    if (name === 'gpg-pubkey') continue;
    const arch = rawArch === '(none)' ? '' : rawArch;
    packages.push({
      kind: 'rpm',
      name,
      version,
      ...(arch ? { arch } : {}),
      purl: rpmPurl(name, version, arch || undefined, where),
    });
  }
  return packages;
}

function fields(line: string, count: number, lister: string): string[] {
  const parts = line.split('\t');
  if (parts.length !== count) throw unreadable(line, lister);
  return parts;
}

function unreadable(line: string, lister: string): Error {
  return new Error(
    `Cannot read this line of the ${lister} listing (expected tab-separated fields with a package name): ${JSON.stringify(line.slice(0, 200))}`,
  );
}
