/**
 * The run's provenance record (provenance.json), written when the run ends: the bundle is packed once more
 * with the SBOM inside, then both are named by sha256 as the statement's subjects. The record lives next to
 * the bundle, not in it: its subject is the bundle's own digest.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LOG_BLOBS } from '../logstore/run-uploads.js';
import { buildProvenance, type HashedFile, type ProvenanceStep } from '../provenance/provenance.js';
import { VERSION } from '../version.js';
import { deprovisions } from './open-run.js';
import { orderedSteps, type PlannedStep } from './resume-plan.js';
import type { RunContext } from './run-context.js';
import type { StepResult } from './run-status.js';

/** Writes and stores provenance.json; a run that rendered nothing (no bundle) has nothing to attest. */
export async function writeProvenance(run: RunContext): Promise<void> {
  const { status, runDir } = run;
  const records = [LOG_BLOBS.sbom, LOG_BLOBS.baseline].filter((name) => existsSync(join(runDir, name)));
  const bundle =
    records.length > 0
      ? await run.store.bundle(runDir, run.config, records)
      : await run.store.currentBundle();
  if (!bundle) return;
  const subjects = [await hashed(bundle)];
  if (status.sbom.state === 'collected' && status.sbom.file) subjects.push(await hashed(status.sbom.file));
  const packer = await run.packer.then(
    (info) => info.version,
    () => 'unknown',
  );
  const statement = buildProvenance({
    runId: status.runId,
    runState: status.runState,
    startedOn: status.startTime,
    finishedOn: status.endTime ?? new Date().toISOString(),
    template: {
      file: run.sources.template.file,
      sha256: run.sources.template.sha256,
      ...(run.template.name ? { name: run.template.name } : {}),
      apiVersion: run.template.apiVersion,
      ...(run.sources.parameters
        ? { parameterFile: { name: run.sources.parameters.file, sha256: run.sources.parameters.sha256 } }
        : {}),
    },
    os: run.vmPath.os,
    topology: run.vmPath.topology,
    hop: run.vmPath.label,
    versions: { isobuild: VERSION, packer },
    artifacts: (run.artifacts ?? []).map((a) => ({
      step: a.stepName,
      uri: a.uri,
      fetchedFrom: a.fetchedFrom,
      sha256: a.sha256,
      bytes: a.bytes,
      checksumVerified: a.checksumVerified,
    })),
    steps: orderedSteps(run.template, deprovisions(run)).map((step) => provenanceStep(run, step)),
    subjects,
    ...(status.resumedFrom
      ? { resumedFrom: { runId: status.resumedFrom.runId, fromStep: status.resumedFrom.fromStep } }
      : {}),
  });
  const file = join(runDir, LOG_BLOBS.provenance);
  await writeFile(file, `${run.mask(JSON.stringify(statement, null, 2))}\n`);
  run.store.storeRecord('provenance', file);
  status.provenance = { state: 'written', file };
}

function provenanceStep(run: RunContext, step: PlannedStep): ProvenanceStep {
  const result = stepResult(run, step);
  return {
    position: step.position,
    kind: step.kind,
    name: step.name,
    type: result?.type ?? '',
    outcome: result?.outcome ?? 'pending',
    ...(result?.durationMs !== undefined ? { durationMs: result.durationMs } : {}),
    ...(result?.digest ? { digest: result.digest } : {}),
    ...(result?.doneIn ? { doneIn: result.doneIn } : {}),
  };
}

function stepResult(run: RunContext, step: PlannedStep): StepResult | undefined {
  const { status } = run;
  if (step.kind === 'deprovision step') return status.deprovision;
  return (step.kind === 'customizer' ? status.customizers : status.validators)[step.index];
}

async function hashed(file: string): Promise<HashedFile> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return { name: basename(file), sha256: hash.digest('hex') };
}
