/**
 * A build VM's software inventory: what isobuild collects before the first customizer and after the last
 * step that changes the VM, and what the SBOM, `isobuild diff` and the build's summary line are made from.
 * Collected by a fixed script per OS (linux-inventory.ts, windows-inventory.ts) over the run's relay.
 */

/** Where a package came from: the package manager (Linux) or the registry (Windows). */
export type PackageKind = 'deb' | 'rpm' | 'windows-program' | 'windows-hotfix';

export interface InstalledPackage {
  readonly kind: PackageKind;
  readonly name: string;
  /** As the package manager prints it: dpkg's `[epoch:]upstream[-revision]`, rpm's `[epoch:]version-release`. */
  readonly version: string;
  /** dpkg/rpm architecture (amd64, x86_64, noarch, all); Windows programs: 'x64' or 'x86' (which Uninstall key). */
  readonly arch?: string;
  /** Windows programs: the Publisher value. */
  readonly publisher?: string;
  /** A package URL (https://github.com/package-url/purl-spec) where the purl spec has a type for it. */
  readonly purl?: string;
}

export interface OperatingSystem {
  /** /etc/os-release ID (debian, ubuntu, rhel, sles, mariner), or 'windows'. */
  readonly id: string;
  /** /etc/os-release PRETTY_NAME or NAME; Windows: the OS caption ("Microsoft Windows Server 2022 Datacenter"). */
  readonly name: string;
  /** /etc/os-release VERSION_ID; Windows: Version ("10.0.20348"). */
  readonly version: string;
  /** Windows: BuildNumber ("20348"). */
  readonly build?: string;
}

export interface Inventory {
  readonly os: OperatingSystem;
  /** Sorted by kind, then name, then arch, so two inventories of one VM are equal as JSON. */
  readonly packages: readonly InstalledPackage[];
  /** When it was collected (ISO 8601). */
  readonly collectedAt: string;
}
