/**
 * Package URLs for Linux packages (https://github.com/package-url/purl-spec), built and parsed by
 * `packageurl-js` so that encoding and qualifier order follow the spec. The library is loaded on first use:
 * commands that never build an SBOM do not pay for it at startup.
 */
import { createRequire } from 'node:module';
import type * as PackageUrlLibrary from 'packageurl-js';

type PackageUrlModule = typeof PackageUrlLibrary;

let packageUrlModule: PackageUrlModule | undefined;

function packageUrl(): PackageUrlModule['PackageURL'] {
  packageUrlModule ??= createRequire(import.meta.url)('packageurl-js') as PackageUrlModule;
  return packageUrlModule.PackageURL;
}

/** Where a Linux package was installed: os-release's ID and its VERSION_ID (or codename) for `distro`. */
export interface PurlDistro {
  readonly id: string;
  /** `<id>-<VERSION_ID>`, or undefined when os-release has neither a VERSION_ID nor a codename. */
  readonly distro: string | undefined;
}

/** `pkg:deb/<id>/<name>@<dpkg version>?arch=…&distro=…`: dpkg's version whole, epoch included. */
export function debPurl(name: string, version: string, arch: string | undefined, where: PurlDistro): string {
  const PackageURL = packageUrl();
  return new PackageURL(
    'deb',
    where.id,
    name,
    version,
    qualifiers({ arch, distro: where.distro }),
  ).toString();
}

/** `pkg:rpm/<id>/<name>@<version-release>?arch=…&epoch=…&distro=…`: the epoch is a qualifier for rpm. */
export function rpmPurl(name: string, version: string, arch: string | undefined, where: PurlDistro): string {
  const { epoch, rest } = splitRpmEpoch(version);
  const PackageURL = packageUrl();
  return new PackageURL(
    'rpm',
    where.id,
    name,
    rest,
    qualifiers({ arch, epoch, distro: where.distro }),
  ).toString();
}

/** rpm's `[epoch:]version-release` as its epoch (undefined when not set) and the rest. */
export function splitRpmEpoch(version: string): { epoch: string | undefined; rest: string } {
  const match = /^(\d+):(.*)$/s.exec(version);
  return match ? { epoch: match[1], rest: match[2]! } : { epoch: undefined, rest: version };
}

/** A purl's parts, for reading back packages from a document that has no isobuild properties. */
export interface ParsedPurl {
  readonly type: string;
  readonly namespace: string | undefined;
  readonly name: string;
  readonly version: string | undefined;
  readonly qualifiers: Readonly<Record<string, string>>;
}

/** Parses a purl; undefined when it is not one. */
export function parsePurl(purl: string): ParsedPurl | undefined {
  try {
    const parsed = packageUrl().fromString(purl);
    return {
      type: parsed.type,
      namespace: parsed.namespace,
      name: parsed.name,
      version: parsed.version,
      qualifiers: { ...parsed.qualifiers },
    };
  } catch {
    return undefined;
  }
}

function qualifiers(values: Record<string, string | undefined>): Record<string, string> | undefined {
  const present = Object.entries(values).filter((entry): entry is [string, string] => !!entry[1]);
  return present.length > 0 ? Object.fromEntries(present) : undefined;
}
