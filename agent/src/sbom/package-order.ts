/**
 * The one order and identity of packages in an inventory: by kind, name and arch (the identity `isobuild
 * diff` matches on), then version, since rpm keeps several kernels of one name and arch side by side.
 */
import type { InstalledPackage } from './inventory.js';
import { compareVersions } from './versions.js';

/** What identifies a package across two inventories of one VM: kind, name and arch. */
export function packageIdentity(pkg: Pick<InstalledPackage, 'kind' | 'name' | 'arch'>): string {
  return pkg.arch ? `${pkg.kind}/${pkg.name}/${pkg.arch}` : `${pkg.kind}/${pkg.name}`;
}

export function comparePackages(a: InstalledPackage, b: InstalledPackage): number {
  return (
    compareText(a.kind, b.kind) ||
    compareText(a.name, b.name) ||
    compareText(a.arch ?? '', b.arch ?? '') ||
    compareVersions(a.kind, a.version, b.version) ||
    compareText(a.version, b.version) ||
    compareText(a.publisher ?? '', b.publisher ?? '')
  );
}

/** A sorted copy. */
export function sortPackages(packages: readonly InstalledPackage[]): InstalledPackage[] {
  return [...packages].sort(comparePackages);
}

/** By code unit, not locale: two machines sort one inventory alike. */
function compareText(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}
