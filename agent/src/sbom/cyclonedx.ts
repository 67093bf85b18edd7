/**
 * The run's SBOM as CycloneDX 1.6 JSON, built from OWASP's @cyclonedx/cyclonedx-library models, written by
 * its JSON serializer and checked by its strict JSON-schema validator, so the format is right by
 * construction and checked, not hand-written. isobuild's own `isobuild:` properties carry what CycloneDX
 * has no field for, so `readCycloneDxInventory` gives back exactly the inventory the document was built from.
 *
 * 1.6 rather than the library's newest (1.7): it is what today's SBOM consumers (scanners, Dependency-Track)
 * read, and it has everything this document needs.
 *
 * The library takes about 100 ms to import, as long as node itself takes to start, so it is loaded on
 * first use: commands that never touch an SBOM do not pay for it.
 */
import { randomUUID } from 'node:crypto';
import type * as CycloneDx from '@cyclonedx/cyclonedx-library';
import { diffInventories } from './inventory-diff.js';
import type { InstalledPackage, Inventory, OperatingSystem, PackageKind } from './inventory.js';
import { packageIdentity, sortPackages } from './package-order.js';
import { parsePurl } from './purl.js';

export const CYCLONEDX_SPEC_VERSION = '1.6';

export interface SbomMeta {
  readonly runId: string;
  /** The template's name, when it has one. */
  readonly templateName?: string;
  /** What the BOM describes: the customized image, named after its template file. */
  readonly imageLabel: string;
  /** isobuild's version. */
  readonly toolVersion: string;
  /** When the document was written (ISO 8601). */
  readonly timestamp: string;
  /** The inventory before customizing: each package is marked with its change against it. */
  readonly baseline?: Inventory;
}

/** The names of isobuild's properties; `isobuild diff` and people read them. */
export const SBOM_PROPERTIES = {
  kind: 'isobuild:kind',
  /** The whole version, only where it is longer than the schema's 1024 characters for component.version. */
  version: 'isobuild:version',
  arch: 'isobuild:arch',
  publisher: 'isobuild:publisher',
  /** added, upgraded:FROM, downgraded:FROM or unchanged: the package against the baseline. */
  change: 'isobuild:change',
  osId: 'isobuild:os-id',
  osName: 'isobuild:os-name',
  osVersion: 'isobuild:os-version',
  osBuild: 'isobuild:os-build',
  runId: 'isobuild:run-id',
  template: 'isobuild:template',
  collectedAt: 'isobuild:collected-at',
  /** On the image: one per package the baseline had and the image has not, as JSON. */
  removed: 'isobuild:removed',
  baselineCollectedAt: 'isobuild:baseline-collected-at',
  /** On the image: the baseline's OS, as JSON, when it differs from the image's. */
  baselineOs: 'isobuild:baseline-os',
} as const;

const P = SBOM_PROPERTIES;
const IMAGE_REF = 'image';
const OS_REF = 'os';
/** CycloneDX 1.6's maxLength for a version. */
const MAX_VERSION_LENGTH = 1024;

type Library = typeof CycloneDx;
let library: Promise<Library> | undefined;

function loadLibrary(): Promise<Library> {
  library ??= import('@cyclonedx/cyclonedx-library');
  return library;
}

/**
 * Loads the library and compiles the schema validator ahead of time (a few hundred ms of CPU), so the SBOM
 * at the end of a build does not pay for it: a build calls this while Packer runs its customizers.
 */
export async function prepareCycloneDx(): Promise<void> {
  const minimal = JSON.stringify({ bomFormat: 'CycloneDX', specVersion: CYCLONEDX_SPEC_VERSION, version: 1 });
  await schemaProblems(minimal, CYCLONEDX_SPEC_VERSION);
}

/** Builds the document, validates it against the official schema (a failure is isobuild's bug) and returns it. */
export async function buildCycloneDx(inventory: Inventory, meta: SbomMeta): Promise<string> {
  const timestamp = new Date(meta.timestamp);
  if (Number.isNaN(timestamp.getTime()))
    throw new Error(`The SBOM's timestamp is not a date: ${meta.timestamp}`);
  const cdx = await loadLibrary();
  const { Models, Enums, Spec, Serialize } = cdx;
  const bom = new Models.Bom();
  bom.serialNumber = `urn:uuid:${randomUUID()}`;
  bom.metadata.timestamp = timestamp;
  bom.metadata.tools.components.add(
    new Models.Component(Enums.ComponentType.Application, 'isobuild', { version: meta.toolVersion }),
  );
  // The image is an operating system in CycloneDX's sense ("without regard to deployment model: installed
  // on physical hardware, virtual machine, image"); what is inside it is listed in components.
  const image = new Models.Component(Enums.ComponentType.OperatingSystem, meta.imageLabel, {
    bomRef: IMAGE_REF,
    description: `VM image customized by isobuild run ${meta.runId}`,
  });
  addProperties(cdx, image, [
    [P.runId, meta.runId],
    [P.template, meta.templateName],
    [P.collectedAt, inventory.collectedAt],
  ]);
  bom.metadata.component = image;
  bom.components.add(osComponent(cdx, inventory.os));

  const changes = meta.baseline ? changeLabels(meta.baseline, inventory, image, cdx) : undefined;
  const refs = bomRefs(inventory.packages);
  inventory.packages.forEach((pkg, index) => {
    bom.components.add(packageComponent(cdx, pkg, refs[index]!, changes?.get(versionKey(pkg))));
  });

  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  const json = serializer.serialize(bom, { sortLists: true, space: 2 });
  const problems = await schemaProblems(json, CYCLONEDX_SPEC_VERSION);
  if (problems) {
    throw new Error(
      `isobuild built a CycloneDX document that its schema rejects (a bug in isobuild; please report it): ${problems}`,
    );
  }
  return `${json}\n`;
}

/** Throws, with the validator's findings, unless `json` is a valid CycloneDX document (1.5, 1.6 or 1.7). */
export async function validateCycloneDx(json: string): Promise<void> {
  const specVersion = readDocument(json).specVersion;
  if (typeof specVersion !== 'string' || !['1.5', '1.6', '1.7'].includes(specVersion)) {
    throw new Error(
      `The SBOM's specVersion is ${JSON.stringify(specVersion)}; isobuild reads CycloneDX 1.5, 1.6 and 1.7 documents.`,
    );
  }
  const problems = await schemaProblems(json, specVersion);
  if (problems) throw new Error(`The SBOM is not valid CycloneDX ${specVersion}: ${problems}`);
}

/**
 * The inventory a document of this module describes, from its isobuild: properties. Components without them
 * (another tool's SBOM) are read from their deb or rpm purl; components that have neither are not packages
 * isobuild knows and are passed over.
 */
export function readCycloneDxInventory(json: string): Inventory {
  const document = readDocument(json);
  const components = Array.isArray(document.components) ? (document.components as unknown[]) : [];
  let os: OperatingSystem | undefined;
  const packages: InstalledPackage[] = [];
  for (const entry of components) {
    const component = asComponent(entry);
    if (!component) continue;
    if (component.type === 'operating-system') {
      os ??= readOs(component);
      continue;
    }
    const pkg = readPackage(component);
    if (pkg) packages.push(pkg);
  }
  if (!os) throw new Error('The SBOM has no operating-system component, so the OS it describes is unknown.');
  const metadata = asRecord(document.metadata);
  const image = metadata ? asComponent(metadata.component) : undefined;
  const collectedAt = (image && property(image, P.collectedAt)) ?? text(metadata?.timestamp) ?? '';
  return { os, packages: sortPackages(packages), collectedAt };
}

// ---- building ----

function osComponent(cdx: Library, os: OperatingSystem): CycloneDx.Models.Component {
  // Named by its os-release ID and VERSION_ID, as scanners look an OS up; the full name is the description.
  const component = new cdx.Models.Component(cdx.Enums.ComponentType.OperatingSystem, os.id, {
    bomRef: OS_REF,
    version: os.version,
    description: os.name,
  });
  addProperties(cdx, component, [
    [P.osId, os.id],
    [P.osName, os.name],
    [P.osVersion, os.version],
    [P.osBuild, os.build],
  ]);
  return component;
}

function packageComponent(
  cdx: Library,
  pkg: InstalledPackage,
  bomRef: string,
  change: string | undefined,
): CycloneDx.Models.Component {
  // deb and rpm packages are 'library' components, as CycloneDX tools list OS packages. Windows programs
  // and hotfixes are 'application': installed software that runs on its own (a hotfix is an installed
  // update; CycloneDX has no type for updates), and isobuild:kind tells them apart.
  const type = pkg.kind === 'deb' || pkg.kind === 'rpm' ? 'Library' : 'Application';
  // A registry value can be any length; the schema's limit must not cost the image its SBOM.
  const longVersion = pkg.version.length > MAX_VERSION_LENGTH ? pkg.version : undefined;
  const component = new cdx.Models.Component(cdx.Enums.ComponentType[type], pkg.name, {
    bomRef,
    version: pkg.version.slice(0, MAX_VERSION_LENGTH),
    ...(pkg.purl ? { purl: pkg.purl } : {}),
    ...(pkg.publisher ? { publisher: pkg.publisher } : {}),
  });
  addProperties(cdx, component, [
    [P.kind, pkg.kind],
    [P.version, longVersion],
    [P.arch, pkg.arch],
    [P.publisher, pkg.publisher],
    [P.change, change],
  ]);
  return component;
}

function addProperties(
  cdx: Library,
  component: CycloneDx.Models.Component,
  entries: readonly (readonly [string, string | undefined])[],
): void {
  for (const [name, value] of entries) {
    if (value !== undefined) component.properties.add(new cdx.Models.Property(name, value));
  }
}

/**
 * Stable bom-refs: kind/name/arch, which stays the same from build to build. Where an inventory has one
 * identity in several versions (rpm's kernels), each gets its version too, as bom-refs must be unique.
 */
function bomRefs(packages: readonly InstalledPackage[]): string[] {
  const counts = new Map<string, number>();
  for (const pkg of packages) counts.set(packageIdentity(pkg), (counts.get(packageIdentity(pkg)) ?? 0) + 1);
  return packages.map((pkg) => {
    const identity = packageIdentity(pkg);
    return counts.get(identity)! > 1 ? `${identity}@${pkg.version}` : identity;
  });
}

/**
 * Each package's change against the baseline, by identity and version. The removed packages have no
 * component to carry a property, so they are listed on the image (metadata.component), one
 * isobuild:removed property each, with the baseline's collection time and, if it changed, its OS.
 */
function changeLabels(
  baseline: Inventory,
  inventory: Inventory,
  image: CycloneDx.Models.Component,
  cdx: Library,
): Map<string, string> {
  const diff = diffInventories(baseline, inventory);
  const labels = new Map<string, string>();
  for (const pkg of inventory.packages) labels.set(versionKey(pkg), 'unchanged');
  for (const pkg of diff.added) labels.set(versionKey(pkg), 'added');
  for (const change of diff.upgraded)
    labels.set(versionKey({ ...change, version: change.to }), `upgraded:${change.from}`);
  for (const change of diff.downgraded) {
    labels.set(versionKey({ ...change, version: change.to }), `downgraded:${change.from}`);
  }
  addProperties(cdx, image, [
    [P.baselineCollectedAt, baseline.collectedAt],
    [P.baselineOs, diff.os ? JSON.stringify(baseline.os) : undefined],
    ...diff.removed.map((pkg) => [P.removed, JSON.stringify(pkg)] as const),
  ]);
  return labels;
}

function versionKey(pkg: Pick<InstalledPackage, 'kind' | 'name' | 'arch' | 'version'>): string {
  return `${packageIdentity(pkg)}@${pkg.version}`;
}

// ---- validating ----

/** Compiling a schema takes a few hundred ms: one validator per process and version, kept. */
const validators = new Map<string, CycloneDx.Validation.JsonStrictValidator>();

/** The validator's findings as one line, or undefined when the document is valid. */
async function schemaProblems(json: string, specVersion: string): Promise<string | undefined> {
  const { Validation } = await loadLibrary();
  let validator = validators.get(specVersion);
  if (!validator) {
    validator = new Validation.JsonStrictValidator(specVersion as CycloneDx.Spec.Version);
    validators.set(specVersion, validator);
  }
  const errors: unknown = await validator.validate(json);
  if (errors === null) return undefined;
  const list = Array.isArray(errors) ? (errors as unknown[]) : [errors];
  const shown = list.slice(0, 5).map(describeSchemaError);
  return `${shown.join('; ')}${list.length > shown.length ? ` (and ${list.length - shown.length} more)` : ''}`;
}

function describeSchemaError(error: unknown): string {
  const record = asRecord(error);
  if (!record) return String(error);
  const where = text(record.instancePath) || '/';
  const params = asRecord(record.params);
  const detail = params?.missingProperty ?? params?.additionalProperty ?? params?.allowedValues;
  return `${where} ${text(record.message) ?? 'is invalid'}${detail === undefined ? '' : ` (${JSON.stringify(detail)})`}`;
}

// ---- reading ----

interface ComponentRecord {
  readonly type: string;
  readonly name: string;
  readonly version?: string;
  readonly description?: string;
  readonly publisher?: string;
  readonly purl?: string;
  readonly properties: readonly { readonly name: string; readonly value: string }[];
}

function readDocument(json: string): Record<string, unknown> {
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch (error) {
    throw new Error(`The SBOM is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const record = asRecord(document);
  if (!record || record.bomFormat !== 'CycloneDX') {
    throw new Error('The SBOM is not a CycloneDX document (no "bomFormat": "CycloneDX").');
  }
  return record;
}

function asComponent(value: unknown): ComponentRecord | undefined {
  const record = asRecord(value);
  const type = text(record?.type);
  const name = text(record?.name);
  if (!record || type === undefined || name === undefined) return undefined;
  const properties = Array.isArray(record.properties) ? (record.properties as unknown[]) : [];
  return {
    type,
    name,
    ...optional('version', text(record.version)),
    ...optional('description', text(record.description)),
    ...optional('publisher', text(record.publisher)),
    ...optional('purl', text(record.purl)),
    properties: properties.flatMap((entry) => {
      const item = asRecord(entry);
      const propertyName = text(item?.name);
      return propertyName === undefined ? [] : [{ name: propertyName, value: text(item?.value) ?? '' }];
    }),
  };
}

function readOs(component: ComponentRecord): OperatingSystem {
  const build = property(component, P.osBuild);
  return {
    id: property(component, P.osId) ?? component.name,
    name: property(component, P.osName) ?? component.description ?? component.name,
    version: property(component, P.osVersion) ?? component.version ?? '',
    ...optional('build', build),
  };
}

const KINDS: readonly PackageKind[] = ['deb', 'rpm', 'windows-program', 'windows-hotfix'];

function readPackage(component: ComponentRecord): InstalledPackage | undefined {
  const kind = property(component, P.kind);
  if (kind !== undefined && (KINDS as readonly string[]).includes(kind)) {
    return {
      kind: kind as PackageKind,
      name: component.name,
      version: property(component, P.version) ?? component.version ?? '',
      ...optional('arch', property(component, P.arch)),
      ...optional('publisher', property(component, P.publisher) ?? component.publisher),
      ...optional('purl', component.purl),
    };
  }
  return component.purl ? packageFromPurl(component, component.purl) : undefined;
}

/** Another tool's component: a deb or rpm purl says kind, arch and version (rpm's epoch from its qualifier). */
function packageFromPurl(component: ComponentRecord, purl: string): InstalledPackage | undefined {
  const parsed = parsePurl(purl);
  if (!parsed || (parsed.type !== 'deb' && parsed.type !== 'rpm')) return undefined;
  const epoch = parsed.qualifiers.epoch;
  const purlVersion = parsed.version ?? component.version ?? '';
  const version = parsed.type === 'rpm' && epoch ? `${epoch}:${purlVersion}` : purlVersion;
  return {
    kind: parsed.type,
    name: parsed.name,
    version,
    ...optional('arch', parsed.qualifiers.arch),
    ...optional('publisher', component.publisher),
    purl,
  };
}

function property(component: ComponentRecord, name: string): string | undefined {
  return component.properties.find((entry) => entry.name === name)?.value;
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
