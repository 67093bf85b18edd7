/**
 * What changed between two runs, from their records: packages (the SBOMs: added, removed, up- and
 * downgraded), steps and artifacts (the provenance records, by sha256), and the versions of isobuild and
 * Packer. `isobuild diff` prints it as a table or as JSON.
 */
import { readCycloneDxInventory, validateCycloneDx } from '../sbom/cyclonedx.js';
import { diffInventories, type InventoryDiff } from '../sbom/inventory-diff.js';
import { readProvenance, type ProvenanceFacts } from '../provenance/provenance.js';
import { IsobuildError } from '../errors.js';
import type { RunRecord } from './run-record.js';

export interface Change<T> {
  readonly from: T;
  readonly to: T;
}

export interface NamedChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly ({ readonly name: string } & Change<string>)[];
}

export interface RunDiff {
  readonly runs: readonly [string, string];
  /** Undefined when a run has no SBOM; `notes` says which. */
  readonly packages?: InventoryDiff;
  /** Steps by type and name: what each ran (sha256 of its provisioner and artifact). */
  readonly steps?: NamedChanges;
  /** Artifacts by step name: the URI fetched and its sha256. */
  readonly artifacts?: NamedChanges;
  readonly versions: { readonly isobuild?: Change<string>; readonly packer?: Change<string> };
  readonly template?: Change<string>;
  /** Records one run has and the other lacks, or that neither has. */
  readonly notes: readonly string[];
  readonly equal: boolean;
}

export async function diffRuns(a: RunRecord, b: RunRecord): Promise<RunDiff> {
  const notes: string[] = [];
  const [sbomA, sbomB] = [await inventoryOf(a, notes), await inventoryOf(b, notes)];
  const [provA, provB] = [provenanceOf(a, notes), provenanceOf(b, notes)];
  if (!sbomA && !sbomB && !provA && !provB)
    throw new IsobuildError(
      'runNotFound',
      `neither run ${a.status.runId} nor run ${b.status.runId} has an SBOM or a provenance record to compare (runs by an older isobuild, or ended before rendering).`,
    );
  const packages = sbomA && sbomB ? diffInventories(sbomA, sbomB) : undefined;
  const compared = provA && provB ? compareProvenance(provA, provB) : { versions: {} };
  // A record on one side only is a difference; on neither side, nothing can be said.
  const oneSided = Boolean(sbomA) !== Boolean(sbomB) || Boolean(provA) !== Boolean(provB);
  const equal =
    !oneSided &&
    (!packages || packagesEqual(packages)) &&
    (!compared.steps || namedEqual(compared.steps)) &&
    (!compared.artifacts || namedEqual(compared.artifacts)) &&
    !compared.versions.isobuild &&
    !compared.versions.packer &&
    !compared.template;
  return {
    runs: [a.status.runId, b.status.runId],
    ...(packages ? { packages } : {}),
    ...compared,
    notes,
    equal,
  };
}

/** A record that exists but cannot be read stops the comparison: the store (or disk) is the problem. */
function checkReadable(record: RunRecord, name: 'sbom' | 'provenance'): void {
  const problem = record.unreadable[name];
  if (problem)
    throw new IsobuildError('storeUnavailable', `${problem}; the runs cannot be compared without it.`);
}

async function inventoryOf(record: RunRecord, notes: string[]) {
  checkReadable(record, 'sbom');
  const file = record.files.sbom;
  if (!file) {
    notes.push(
      `run ${record.status.runId} has no SBOM (sbom: ${record.status.sbom?.state ?? 'none recorded'})`,
    );
    return undefined;
  }
  try {
    await validateCycloneDx(file.text);
    return readCycloneDxInventory(file.text);
  } catch (error) {
    throw new IsobuildError(
      'recordInvalid',
      `${file.source} is not a valid CycloneDX SBOM (${(error as Error).message}); it cannot be compared.`,
    );
  }
}

function provenanceOf(record: RunRecord, notes: string[]): ProvenanceFacts | undefined {
  checkReadable(record, 'provenance');
  const file = record.files.provenance;
  if (!file) {
    notes.push(`run ${record.status.runId} has no provenance record`);
    return undefined;
  }
  try {
    return readProvenance(file.text);
  } catch (error) {
    throw new IsobuildError(
      'recordInvalid',
      `${file.source} is not a provenance record isobuild wrote (${(error as Error).message}); it cannot be compared.`,
    );
  }
}

function compareProvenance(
  a: ProvenanceFacts,
  b: ProvenanceFacts,
): Omit<RunDiff, 'runs' | 'notes' | 'equal' | 'packages'> {
  // Steps are matched by what they are (kind, type and name), not by position: an inserted step moves the
  // rest, and a validator may share a customizer's type and name.
  const stepKey = (step: ProvenanceFacts['steps'][number]): string =>
    `${step.kind === 'customizer' || !step.kind ? '' : `${step.kind} `}${step.name.replace(/^step \d+: /, '')}`;
  const steps = compareNamed(
    new Map(a.steps.map((s) => [stepKey(s), s.digest ?? ''])),
    new Map(b.steps.map((s) => [stepKey(s), s.digest ?? ''])),
  );
  const artifact = (x: { uri: string; sha256: string }): string => `${x.uri} sha256:${x.sha256}`;
  const artifacts = compareNamed(
    new Map(a.artifacts.map((x) => [x.step, artifact(x)])),
    new Map(b.artifacts.map((x) => [x.step, artifact(x)])),
  );
  const change = (from: string | undefined, to: string | undefined) =>
    from !== to ? { from: from ?? 'unknown', to: to ?? 'unknown' } : undefined;
  const isobuild = change(a.versions.isobuild, b.versions.isobuild);
  const packer = change(a.versions.packer, b.versions.packer);
  const template = change(a.template?.sha256, b.template?.sha256);
  return {
    steps,
    artifacts,
    versions: { ...(isobuild ? { isobuild } : {}), ...(packer ? { packer } : {}) },
    ...(template ? { template } : {}),
  };
}

function compareNamed(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): NamedChanges {
  return {
    added: [...b.keys()].filter((name) => !a.has(name)),
    removed: [...a.keys()].filter((name) => !b.has(name)),
    changed: [...a]
      .filter(([name, value]) => b.has(name) && b.get(name) !== value)
      .map(([name, from]) => ({ name, from, to: b.get(name) ?? '' })),
  };
}

function namedEqual(changes: NamedChanges): boolean {
  return changes.added.length + changes.removed.length + changes.changed.length === 0;
}

function packagesEqual(diff: InventoryDiff): boolean {
  return (
    diff.added.length + diff.removed.length + diff.upgraded.length + diff.downgraded.length === 0 && !diff.os
  );
}
