/**
 * `isobuild diff` on runs built in memory: real SBOM text (buildCycloneDx) and provenance text
 * (buildProvenance) in RunRecords, compared by diffRuns and printed by formatDiff.
 */
import { describe, expect, it } from 'vitest';
import { formatDiff } from '../../agent/src/cli/commands/diff.js';
import { isIsobuildError } from '../../agent/src/errors.js';
import {
  buildProvenance,
  type ProvenanceInput,
  type ProvenanceStep,
} from '../../agent/src/provenance/provenance.js';
import { diffRuns, type RunDiff } from '../../agent/src/run-record/run-diff.js';
import type { RunRecord } from '../../agent/src/run-record/run-record.js';
import type { RunStatus, SbomStatus } from '../../agent/src/run/run-status.js';
import { buildCycloneDx } from '../../agent/src/sbom/cyclonedx.js';
import type { InstalledPackage, Inventory } from '../../agent/src/sbom/inventory.js';
import { sortPackages } from '../../agent/src/sbom/package-order.js';

const sha = (char: string): string => char.repeat(64);
const deb = (name: string, version: string): InstalledPackage => ({
  kind: 'deb',
  name,
  version,
  arch: 'amd64',
});

const DEBIAN = { id: 'debian', name: 'Debian GNU/Linux 12 (bookworm)', version: '12' };
const inventory = (packages: InstalledPackage[]): Inventory => ({
  os: DEBIAN,
  packages: sortPackages(packages),
  collectedAt: '2026-01-01T12:29:00.000Z',
});

const PACKAGES = [
  deb('bash', '5.2.15-2+b7'),
  deb('curl', '7.88.1-10+deb12u8'),
  deb('nano', '7.2-1'),
  deb('zlib1g', '1:1.2.13.dfsg-1'),
];

const STEPS: readonly ProvenanceStep[] = [
  step(1, 'customizer', 'Shell', 'install tools', sha('1')),
  step(2, 'customizer', 'File', 'motd', sha('2')),
  step(3, 'validator', 'Shell', 'check', sha('3')),
  { position: 4, kind: 'deprovision step', type: 'Shell', name: 'deprovision', outcome: 'succeeded' },
];

function step(
  position: number,
  kind: ProvenanceStep['kind'],
  type: string,
  name: string,
  digest: string,
): ProvenanceStep {
  return { position, kind, type, name, digest, outcome: 'succeeded', durationMs: 1000 * position };
}

interface RunShape {
  readonly runId: string;
  /** undefined: the run has no SBOM. */
  readonly packages?: InstalledPackage[];
  /** undefined: the run has no provenance record. */
  readonly provenance?: Partial<ProvenanceInput>;
  readonly sbomStatus?: SbomStatus;
  readonly text?: { readonly sbom?: string; readonly provenance?: string };
  readonly unreadable?: RunRecord['unreadable'];
}

function provenanceInput(runId: string, overrides: Partial<ProvenanceInput>): ProvenanceInput {
  return {
    runId,
    runState: 'Succeeded',
    startedOn: '2026-01-01T12:00:00.000Z',
    finishedOn: '2026-01-01T12:31:00.000Z',
    template: { file: 'template.json', sha256: sha('a'), apiVersion: '2024-02-01' },
    os: 'linux',
    topology: 'direct',
    hop: 'direct to 127.0.0.1:22',
    versions: { isobuild: '0.1.0', packer: '1.11.2' },
    artifacts: [
      {
        step: 'install tools',
        uri: 'http://127.0.0.1:8080/install.sh',
        fetchedFrom: 'http://127.0.0.1:8080/install.sh',
        sha256: sha('c'),
        bytes: 812,
        checksumVerified: true,
      },
    ],
    steps: STEPS,
    subjects: [{ name: 'build-bundle.tar.gz', sha256: sha('9') }],
    ...overrides,
  };
}

function status(runId: string, sbom: SbomStatus): RunStatus {
  return {
    runId,
    template: 'template.json',
    runState: 'Succeeded',
    runSubState: 'Validating',
    message: 'done',
    startTime: '2026-01-01T12:00:00.000Z',
    customizers: [],
    validators: [],
    deprovision: { index: 0, name: 'deprovision', type: 'Shell', outcome: 'succeeded' },
    distribute: [],
    logs: { customization: 'customization.log', validation: 'validation.log' },
    sbom,
  };
}

async function run(shape: RunShape): Promise<RunRecord> {
  const { runId } = shape;
  const files: { -readonly [K in keyof RunRecord['files']]: RunRecord['files'][K] } = {};
  const sbomText =
    shape.text?.sbom ??
    (shape.packages
      ? await buildCycloneDx(inventory(shape.packages), {
          runId,
          imageLabel: 'template.json',
          toolVersion: '0.1.0',
          timestamp: '2026-01-01T12:30:00.000Z',
        })
      : undefined);
  if (sbomText !== undefined) files.sbom = { text: sbomText, source: `work/${runId}/sbom.cdx.json` };
  const provenanceText =
    shape.text?.provenance ??
    (shape.provenance
      ? JSON.stringify(buildProvenance(provenanceInput(runId, shape.provenance)), null, 2)
      : undefined);
  if (provenanceText !== undefined)
    files.provenance = { text: provenanceText, source: `work/${runId}/provenance.json` };
  const sbomStatus = shape.sbomStatus ?? (sbomText ? { state: 'collected' } : { state: 'off' });
  return {
    status: status(runId, sbomStatus),
    source: `work/${runId}/status.json`,
    files,
    unreadable: shape.unreadable ?? {},
  };
}

const runA = (): Promise<RunRecord> => run({ runId: 'run-a', packages: PACKAGES, provenance: {} });

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isIsobuildError(error)) throw new Error(`expected an IsobuildError, got ${String(error)}`);
  return { code: error.code, message: error.message };
}

const noChanges = { added: [], removed: [], changed: [] };

describe('diffRuns', () => {
  it('finds two runs of the same build equal, and says so', async () => {
    const b = await run({
      runId: 'run-b',
      packages: PACKAGES,
      provenance: { startedOn: '2026-01-02T08:00:00.000Z', finishedOn: '2026-01-02T08:30:00.000Z' },
    });
    const diff = await diffRuns(await runA(), b);
    expect(diff).toMatchObject({
      runs: ['run-a', 'run-b'],
      packages: { added: [], removed: [], upgraded: [], downgraded: [], unchanged: 4 },
      steps: noChanges,
      artifacts: noChanges,
      versions: {},
      notes: [],
      equal: true,
    });
    expect(diff).not.toHaveProperty('template');
    const lines = formatDiff(diff);
    expect(lines[0]).toBe('Comparing run run-a with run run-b');
    expect(lines).toContain('Packages: 0 added, 0 removed, 0 upgraded, 0 downgraded, 4 unchanged');
    expect(lines).toContain('Steps: no changes');
    expect(lines).toContain('Artifacts: no changes');
    expect(lines.at(-1)).toBe('The runs are equal.');
  });

  it('lists packages added, removed, upgraded and downgraded', async () => {
    const b = await run({
      runId: 'run-b',
      packages: [
        deb('bash', '5.2.15-2+b8'),
        deb('curl', '7.88.1-10+deb12u8'),
        deb('jq', '1.6-2.1'),
        deb('zlib1g', '1:1.2.11.dfsg-1'),
      ],
      provenance: {},
    });
    const diff = await diffRuns(await runA(), b);
    expect(diff.equal).toBe(false);
    expect(diff.packages).toEqual({
      added: [deb('jq', '1.6-2.1')],
      removed: [deb('nano', '7.2-1')],
      upgraded: [{ name: 'bash', kind: 'deb', arch: 'amd64', from: '5.2.15-2+b7', to: '5.2.15-2+b8' }],
      downgraded: [
        { name: 'zlib1g', kind: 'deb', arch: 'amd64', from: '1:1.2.13.dfsg-1', to: '1:1.2.11.dfsg-1' },
      ],
      unchanged: 1,
    });
    const lines = formatDiff(diff);
    expect(lines).toContain('Packages: 1 added, 1 removed, 1 upgraded, 1 downgraded, 1 unchanged');
    expect(lines.at(-1)).toBe('The runs differ.');
  });

  it('matches steps by kind, type and name: an inserted step moves the others without changing them', async () => {
    const steps = [
      step(1, 'customizer', 'Shell', 'new step', sha('7')),
      { ...STEPS[0]!, position: 2 },
      { ...STEPS[1]!, position: 3, digest: sha('8') },
      { ...STEPS[2]!, position: 4 },
      { ...STEPS[3]!, position: 5 },
    ];
    const diff = await diffRuns(
      await runA(),
      await run({ runId: 'run-b', packages: PACKAGES, provenance: { steps } }),
    );
    expect(diff.steps).toEqual({
      added: ['Shell "new step"'],
      removed: [],
      changed: [{ name: 'File "motd"', from: sha('2'), to: sha('8') }],
    });
    expect(diff.equal).toBe(false);
  });

  it('keeps a validator and a customizer with the same type and name apart', async () => {
    const twins = (customizer: string, validator: string): ProvenanceStep[] => [
      step(1, 'customizer', 'Shell', 'check', customizer),
      step(2, 'validator', 'Shell', 'check', validator),
    ];
    const a = await run({
      runId: 'run-a',
      packages: PACKAGES,
      provenance: { steps: twins(sha('1'), sha('2')) },
    });
    const changed = await run({
      runId: 'run-b',
      packages: PACKAGES,
      provenance: { steps: twins(sha('5'), sha('2')) },
    });
    expect((await diffRuns(a, changed)).steps).toEqual({
      added: [],
      removed: [],
      changed: [{ name: 'Shell "check"', from: sha('1'), to: sha('5') }],
    });
    const withoutValidator = await run({
      runId: 'run-c',
      packages: PACKAGES,
      provenance: { steps: twins(sha('1'), sha('2')).slice(0, 1) },
    });
    expect((await diffRuns(a, withoutValidator)).steps).toEqual({
      added: [],
      removed: ['validator Shell "check"'],
      changed: [],
    });
  });

  it('sees an artifact whose sha256 changed', async () => {
    const [artifact] = provenanceInput('run-b', {}).artifacts;
    const b = await run({
      runId: 'run-b',
      packages: PACKAGES,
      provenance: { artifacts: [{ ...artifact!, sha256: sha('d') }] },
    });
    const diff = await diffRuns(await runA(), b);
    expect(diff.artifacts).toEqual({
      added: [],
      removed: [],
      changed: [
        {
          name: 'install tools',
          from: `http://127.0.0.1:8080/install.sh sha256:${sha('c')}`,
          to: `http://127.0.0.1:8080/install.sh sha256:${sha('d')}`,
        },
      ],
    });
    expect(diff.equal).toBe(false);
  });

  it('sees new isobuild and Packer versions and a changed template', async () => {
    const b = await run({
      runId: 'run-b',
      packages: PACKAGES,
      provenance: {
        versions: { isobuild: '0.2.0', packer: '1.12.0' },
        template: { file: 'template.json', sha256: sha('b'), apiVersion: '2024-02-01' },
      },
    });
    const diff = await diffRuns(await runA(), b);
    expect(diff.versions).toEqual({
      isobuild: { from: '0.1.0', to: '0.2.0' },
      packer: { from: '1.11.2', to: '1.12.0' },
    });
    expect(diff.template).toEqual({ from: sha('a'), to: sha('b') });
    expect(diff.equal).toBe(false);
    const lines = formatDiff(diff);
    expect(lines).toEqual(
      expect.arrayContaining([
        'Versions:',
        '  isobuild: 0.1.0 → 0.2.0',
        '  packer: 1.11.2 → 1.12.0',
        `  template sha256: ${sha('a')} → ${sha('b')}`,
      ]),
    );
  });

  it('each difference alone makes the runs differ', async () => {
    const cases: Partial<ProvenanceInput>[] = [
      { versions: { isobuild: '0.2.0', packer: '1.11.2' } },
      { versions: { isobuild: '0.1.0', packer: '1.12.0' } },
      { template: { file: 'template.json', sha256: sha('b'), apiVersion: '2024-02-01' } },
    ];
    for (const provenance of cases) {
      const diff = await diffRuns(
        await runA(),
        await run({ runId: 'run-b', packages: PACKAGES, provenance }),
      );
      expect(diff.equal, JSON.stringify(provenance)).toBe(false);
    }
  });

  it('notes a run without an SBOM, and the runs differ', async () => {
    const b = await run({
      runId: 'run-b',
      provenance: {},
      sbomStatus: { state: 'off' },
    });
    const diff = await diffRuns(await runA(), b);
    expect(diff.packages).toBeUndefined();
    expect(diff.notes).toEqual(['run run-b has no SBOM (sbom: off)']);
    expect(diff.steps).toEqual(noChanges);
    expect(diff.equal).toBe(false);
    expect(formatDiff(diff)).toContain('note: run run-b has no SBOM (sbom: off)');
  });

  it('stops with runNotFound when neither run has any record', async () => {
    const a = await run({ runId: 'run-a' });
    const b = await run({ runId: 'run-b' });
    const { code, message } = await rejection(diffRuns(a, b));
    expect(code).toBe('runNotFound');
    expect(message).toContain('neither run run-a nor run run-b has an SBOM or a provenance record');
  });

  it('stops with recordInvalid on an SBOM or a provenance record that is not one', async () => {
    const badSbom = await run({
      runId: 'run-b',
      provenance: {},
      text: { sbom: '{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": "none"}' },
    });
    const sbomError = await rejection(diffRuns(await runA(), badSbom));
    expect(sbomError.code).toBe('recordInvalid');
    expect(sbomError.message).toContain('work/run-b/sbom.cdx.json is not a valid CycloneDX SBOM');

    // Readable as an inventory, but not valid CycloneDX: the schema allows no unknown component field.
    const document = JSON.parse((await runA()).files.sbom!.text) as { components: Record<string, unknown>[] };
    document.components[1]!.colour = 'red';
    const offSchema = await run({ runId: 'run-b', provenance: {}, text: { sbom: JSON.stringify(document) } });
    expect(await rejection(diffRuns(await runA(), offSchema))).toMatchObject({ code: 'recordInvalid' });

    const badProvenance = await run({
      runId: 'run-b',
      packages: PACKAGES,
      text: { provenance: '{"_type": "https://in-toto.io/Statement/v0.1"}' },
    });
    const provenanceError = await rejection(diffRuns(await runA(), badProvenance));
    expect(provenanceError.code).toBe('recordInvalid');
    expect(provenanceError.message).toContain('work/run-b/provenance.json is not a provenance record');
  });

  it('stops with storeUnavailable when a record exists but cannot be read', async () => {
    const b = await run({
      runId: 'run-b',
      provenance: {},
      unreadable: { sbom: 'cannot read http://127.0.0.1:10000/acct/packerlogs/run-b/sbom.cdx.json: 503' },
    });
    const { code, message } = await rejection(diffRuns(await runA(), b));
    expect(code).toBe('storeUnavailable');
    expect(message).toBe(
      'cannot read http://127.0.0.1:10000/acct/packerlogs/run-b/sbom.cdx.json: 503; the runs cannot be compared without it.',
    );
  });
});

describe('formatDiff', () => {
  /** Every table: each row's cells start at the column where the header's cell starts. */
  function expectAligned(lines: readonly string[], head: readonly string[], rows: readonly string[][]): void {
    const headerAt = lines.findIndex((line) => line.trim().split(/\s+/).join(' ') === head.join(' '));
    expect(headerAt, `a header ${head.join(' ')}`).toBeGreaterThanOrEqual(0);
    const header = lines[headerAt]!;
    // Each header cell is found after the one before it, so a short name cannot match inside a longer one.
    const starts: number[] = [];
    for (const cell of head) starts.push(header.indexOf(cell, (starts.at(-1) ?? -1) + 1));
    expect(starts[0]).toBe(2); // indented two spaces
    for (const [r, cells] of rows.entries()) {
      const line = lines[headerAt + 1 + r]!;
      for (const [i, cell] of cells.entries()) {
        const at = starts[i]!;
        if (!cell) continue; // an empty last cell is trimmed away
        expect(line.slice(at - 2, at), `two spaces before column ${i} of ${JSON.stringify(line)}`).toBe('  ');
        expect(line.slice(at, at + cell.length), `column ${i} of ${JSON.stringify(line)}`).toBe(cell);
      }
    }
    expect(lines[headerAt + 1 + rows.length] ?? '', 'the table ends after its rows').toBe('');
  }

  it('lines every row of a table up under its header', async () => {
    const b = await run({
      runId: 'run-b',
      packages: [
        deb('bash', '5.2.15-2+b8'),
        deb('curl', '7.88.1-10+deb12u8'),
        deb('libreoffice-core-nogui', '4:7.4.7-1+deb12u8'),
        deb('zlib1g', '1:1.2.11.dfsg-1'),
      ],
      provenance: {
        steps: [
          step(1, 'customizer', 'Shell', 'a much longer step name than the others', sha('7')),
          { ...STEPS[0]!, position: 2, digest: sha('8') },
          { ...STEPS[2]!, position: 3 },
        ],
      },
    });
    const diff: RunDiff = await diffRuns(await runA(), b);
    const lines = formatDiff(diff);
    expectAligned(
      lines,
      ['CHANGE', 'PACKAGE', 'ARCH', 'FROM', 'TO'],
      [
        ['added', 'libreoffice-core-nogui', 'amd64', '', '4:7.4.7-1+deb12u8'],
        ['removed', 'nano', 'amd64', '7.2-1', ''],
        ['upgraded', 'bash', 'amd64', '5.2.15-2+b7', '5.2.15-2+b8'],
        ['downgraded', 'zlib1g', 'amd64', '1:1.2.13.dfsg-1', '1:1.2.11.dfsg-1'],
      ],
    );
    expectAligned(
      lines,
      ['CHANGE', 'NAME', 'FROM', 'TO'],
      [
        ['added', 'Shell "a much longer step name than the others"', '', ''],
        ['removed', 'File "motd"', '', ''],
        ['removed', 'deprovision step Shell "deprovision"', '', ''],
        ['changed', 'Shell "install tools"', sha('1'), sha('8')],
      ],
    );
    // Padding never leaves trailing blanks.
    for (const line of lines) expect(line).toBe(line.trimEnd());
  });
});
