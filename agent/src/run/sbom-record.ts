/**
 * The run's SBOM (sbom.cdx.json, CycloneDX): written from the inventory after customizing, with each
 * package's change against the baseline, stored with the run, and summed up in one line of build output.
 */
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LOG_BLOBS } from '../logstore/run-uploads.js';
import { buildCycloneDx } from '../sbom/cyclonedx.js';
import { diffInventories, summarizeDiff } from '../sbom/inventory-diff.js';
import type { Inventory } from '../sbom/inventory.js';
import { VERSION } from '../version.js';
import type { RunContext } from './run-context.js';
import type { PackageChanges, SbomStatus } from './run-status.js';

/** Writes and stores the SBOM, records it in status, and returns the summary line. */
export async function writeSbom(run: RunContext, inventory: Inventory): Promise<string> {
  const { baseline } = run;
  const json = await buildCycloneDx(inventory, {
    runId: run.config.runId,
    ...(run.template.name ? { templateName: run.template.name } : {}),
    imageLabel: basename(run.options.templateFile),
    toolVersion: VERSION,
    timestamp: new Date().toISOString(),
    ...(baseline ? { baseline } : {}),
  });
  const file = join(run.runDir, LOG_BLOBS.sbom);
  await writeFile(file, run.mask(json));
  run.store.storeRecord('sbom', file);
  const sbom = run.status.sbom;
  sbom.state = 'collected';
  sbom.file = file;
  sbom.packages = inventory.packages.length;
  if (baseline) sbom.changes = summarizeDiff(diffInventories(baseline, inventory));
  return summaryLine(sbom, run.status.sbom.baseline);
}

/** "SBOM: 412 packages, 37 added, 3 upgraded since the source image". */
export function summaryLine(
  sbom: { readonly packages?: number; readonly changes?: PackageChanges },
  baseline: SbomStatus['baseline'],
): string {
  const head = `SBOM: ${sbom.packages ?? 0} packages`;
  if (!sbom.changes)
    return `${head} (${!baseline ? 'the source image: no customizer ran' : baseline.detail ? `no baseline: ${baseline.detail}` : 'no baseline'})`;
  const changes = describeChanges(sbom.changes);
  const since =
    baseline?.source === 'earlier run'
      ? `since the source image (${baseline.detail})`
      : 'since the source image';
  return `${head}, ${changes || 'no changes'} ${since}`;
}

export function describeChanges(changes: PackageChanges): string {
  return (['added', 'removed', 'upgraded', 'downgraded'] as const)
    .filter((kind) => changes[kind] > 0)
    .map((kind) => `${changes[kind]} ${kind}`)
    .join(', ');
}

/** For a run that starts part-way: the earlier run's baseline, or why there is none. */
export function readBaseline(run: RunContext): {
  readonly inventory?: Inventory;
  readonly baseline: NonNullable<SbomStatus['baseline']>;
} {
  const { previousBaseline: earlier, previousBaselineProblem: problem } = run.options;
  const resumed = run.plan?.resumedFrom;
  if (resumed && earlier) {
    const inventory = parseInventory(earlier.text);
    if (inventory)
      return { inventory, baseline: { source: 'earlier run', detail: `taken in run ${resumed.runId}` } };
    return {
      baseline: { source: 'unavailable', detail: `${earlier.source} is not an inventory isobuild wrote` },
    };
  }
  const detail = !resumed
    ? '--from-step starts on a VM that is already customized part-way'
    : (problem ??
      `run ${resumed.runId} recorded no inventory before customizing (built with --no-sbom, or its baseline was not collected)`);
  return { baseline: { source: 'unavailable', detail } };
}

function parseInventory(text: string): Inventory | undefined {
  try {
    const value = JSON.parse(text) as Partial<Inventory>;
    if (value.os && Array.isArray(value.packages) && typeof value.collectedAt === 'string')
      return value as Inventory;
  } catch {
    // not JSON: said by the caller
  }
  return undefined;
}
