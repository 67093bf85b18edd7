/**
 * What changed between two inventories of a VM: packages added, removed, up- and downgraded, and the OS.
 * Packages are matched by kind, name and arch; one whose arch changed is removed and added.
 */
import type { InstalledPackage, Inventory, OperatingSystem, PackageKind } from './inventory.js';
import { comparePackages, packageIdentity } from './package-order.js';
import { compareVersions } from './versions.js';

export interface VersionChange {
  readonly name: string;
  readonly kind: PackageKind;
  readonly arch?: string;
  readonly from: string;
  readonly to: string;
}

export interface OsChange {
  /** One line each, for people: "Ubuntu 22.04.4 LTS (22.04)", "Microsoft Windows Server 2022 … (build 20348)". */
  readonly from: string;
  readonly to: string;
  readonly before: OperatingSystem;
  readonly after: OperatingSystem;
}

export interface InventoryDiff {
  /** Each list sorted by kind, name, arch, as inventories are. */
  readonly added: readonly InstalledPackage[];
  readonly removed: readonly InstalledPackage[];
  readonly upgraded: readonly VersionChange[];
  readonly downgraded: readonly VersionChange[];
  /** Packages in both, with the same version. */
  readonly unchanged: number;
  /** Set when the OS's id, name, version or build changed. */
  readonly os?: OsChange;
}

export interface DiffSummary {
  readonly added: number;
  readonly removed: number;
  readonly upgraded: number;
  readonly downgraded: number;
  readonly unchanged: number;
  readonly osChanged: boolean;
}

export function diffInventories(before: Inventory, after: Inventory): InventoryDiff {
  const added: InstalledPackage[] = [];
  const removed: InstalledPackage[] = [];
  const upgraded: VersionChange[] = [];
  const downgraded: VersionChange[] = [];
  let unchanged = 0;
  const old = groupByIdentity(before.packages);
  const now = groupByIdentity(after.packages);
  for (const identity of new Set([...old.keys(), ...now.keys()])) {
    const pairs = pairVersions(old.get(identity) ?? [], now.get(identity) ?? []);
    unchanged += pairs.same;
    removed.push(...pairs.gone);
    added.push(...pairs.fresh);
    for (const [from, to] of pairs.changed) {
      const change: VersionChange = {
        name: to.name,
        kind: to.kind,
        ...(to.arch ? { arch: to.arch } : {}),
        from: from.version,
        to: to.version,
      };
      // A different spelling of an equal version (dpkg's 1.0 and 1.00) still counts as a change: shown
      // as an upgrade rather than hidden.
      (compareVersions(to.kind, from.version, to.version) > 0 ? downgraded : upgraded).push(change);
    }
  }
  const os = osChange(before.os, after.os);
  return {
    added: added.sort(comparePackages),
    removed: removed.sort(comparePackages),
    upgraded: upgraded.sort(compareChanges),
    downgraded: downgraded.sort(compareChanges),
    unchanged,
    ...(os ? { os } : {}),
  };
}

export function summarizeDiff(diff: InventoryDiff): DiffSummary {
  return {
    added: diff.added.length,
    removed: diff.removed.length,
    upgraded: diff.upgraded.length,
    downgraded: diff.downgraded.length,
    unchanged: diff.unchanged,
    osChanged: diff.os !== undefined,
  };
}

/** "Debian GNU/Linux 12 (bookworm) (12)"-style line: the name, then the version and build it lacks. */
export function describeOs(os: OperatingSystem): string {
  const extras = [os.version, os.build ? `build ${os.build}` : '']
    .filter((part) => part && !os.name.includes(part))
    .join(', ');
  return extras ? `${os.name} (${extras})` : os.name;
}

function groupByIdentity(packages: readonly InstalledPackage[]): Map<string, InstalledPackage[]> {
  const groups = new Map<string, InstalledPackage[]>();
  for (const pkg of packages) {
    const identity = packageIdentity(pkg);
    const group = groups.get(identity);
    if (group) group.push(pkg);
    else groups.set(identity, [pkg]);
  }
  return groups;
}

/**
 * One identity's versions before and after. Usually one each; rpm keeps several kernels of one name and
 * arch, so: versions in both are unchanged, and the rest pair up newest with newest (the kernel in use
 * moved on), the surplus added or removed (a kernel installed beside the old one is added).
 */
function pairVersions(
  before: readonly InstalledPackage[],
  after: readonly InstalledPackage[],
): {
  same: number;
  gone: InstalledPackage[];
  fresh: InstalledPackage[];
  changed: [InstalledPackage, InstalledPackage][];
} {
  const fresh = [...after];
  const gone: InstalledPackage[] = [];
  let same = 0;
  for (const pkg of before) {
    const at = fresh.findIndex((candidate) => candidate.version === pkg.version);
    if (at >= 0) {
      fresh.splice(at, 1);
      same++;
    } else {
      gone.push(pkg);
    }
  }
  const newestFirst = (a: InstalledPackage, b: InstalledPackage) => comparePackages(b, a);
  gone.sort(newestFirst);
  fresh.sort(newestFirst);
  const paired = Math.min(gone.length, fresh.length);
  return {
    same,
    changed: gone.slice(0, paired).map((from, i): [InstalledPackage, InstalledPackage] => [from, fresh[i]!]),
    gone: gone.slice(paired),
    fresh: fresh.slice(paired),
  };
}

function compareChanges(a: VersionChange, b: VersionChange): number {
  return comparePackages({ ...a, version: a.to }, { ...b, version: b.to });
}

function osChange(before: OperatingSystem, after: OperatingSystem): OsChange | undefined {
  const same =
    before.id === after.id &&
    before.name === after.name &&
    before.version === after.version &&
    (before.build ?? '') === (after.build ?? '');
  return same ? undefined : { from: describeOs(before), to: describeOs(after), before, after };
}
