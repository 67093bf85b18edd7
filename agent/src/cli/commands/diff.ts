/**
 * `isobuild diff RUN_A RUN_B`: what changed between two runs, from their SBOMs and provenance records
 * (found in --work-dir, else in the log store). Exits like diff(1): 0 equal, 1 different.
 */
import { parseArgs } from 'node:util';
import { EXIT_CODES, IsobuildError } from '../../errors.js';
import { diffRuns, type NamedChanges, type RunDiff } from '../../run-record/run-diff.js';
import { readRunRecord, type RunFile } from '../../run-record/run-record.js';
import type { InventoryDiff } from '../../sbom/inventory-diff.js';
import { loadLogStoreConfig, storeSecrets } from '../../settings/build-config.js';
import { optionHelp } from '../../settings/option-help.js';
import { processEnvironment } from '../../settings/process-environment.js';
import { commandOptions } from '../../settings/settings-table.js';
import type { CommandIo } from '../command.js';

export const DIFF_HELP = `Usage: isobuild diff <runA> <runB> [--json] [options]

Compares two runs: the packages of their SBOMs (added, removed, upgraded, downgraded), the steps and
artifacts of their provenance records (by sha256), and the versions of isobuild and Packer that built them.
Each run is looked up in --work-dir, else in the log store.

Options:
  --json                   print the comparison as JSON (for pipelines)
${optionHelp('diff', ['workDir'])}
Log store (where to look for a run that is not in --work-dir; the same settings as "isobuild build"):
${optionHelp('diff', 'store')}
  -h, --help               show this help

Exit codes: 0 the runs are equal, 1 they differ (also when only one of them has an SBOM or provenance
record), 2 bad arguments, no such run, or neither run has a record to compare, 4 the log store cannot be read.`;

const RECORDS: readonly RunFile[] = ['sbom', 'provenance'];

export async function runDiff(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' },
      ...commandOptions('diff'),
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(DIFF_HELP);
    return EXIT_CODES.ok;
  }
  const [first, second] = positionals;
  if (!first || !second || positionals.length > 2)
    throw new IsobuildError('usage', 'diff needs two run ids: isobuild diff <runA> <runB>.');
  const config = loadLogStoreConfig(values, processEnvironment());
  io.registerSecrets(storeSecrets(config.store));
  const a = await readRunRecord(first, config, io.signal, RECORDS);
  const b = await readRunRecord(second, config, io.signal, RECORDS);
  const diff = await diffRuns(a, b);
  io.out(values.json ? JSON.stringify(diff, null, 2) : formatDiff(diff).join('\n'));
  return diff.equal ? EXIT_CODES.ok : EXIT_CODES.buildFailed;
}

/** The human form: one table per kind of change, then the verdict. */
export function formatDiff(diff: RunDiff): string[] {
  const [a, b] = diff.runs;
  const lines = [`Comparing run ${a} with run ${b}`];
  if (diff.packages) lines.push('', ...packageLines(diff.packages));
  if (diff.steps) lines.push('', ...namedLines('Steps', diff.steps));
  if (diff.artifacts) lines.push('', ...namedLines('Artifacts', diff.artifacts));
  const versions = Object.entries(diff.versions).map(([tool, c]) => `  ${tool}: ${c.from} → ${c.to}`);
  if (diff.template) versions.push(`  template sha256: ${diff.template.from} → ${diff.template.to}`);
  if (versions.length > 0) lines.push('', 'Versions:', ...versions);
  for (const note of diff.notes) lines.push(`note: ${note}`);
  lines.push('', diff.equal ? 'The runs are equal.' : 'The runs differ.');
  return lines;
}

function packageLines(diff: InventoryDiff): string[] {
  const rows: string[][] = [
    ...diff.added.map((p) => ['added', p.name, p.arch ?? '', '', p.version]),
    ...diff.removed.map((p) => ['removed', p.name, p.arch ?? '', p.version, '']),
    ...diff.upgraded.map((p) => ['upgraded', p.name, p.arch ?? '', p.from, p.to]),
    ...diff.downgraded.map((p) => ['downgraded', p.name, p.arch ?? '', p.from, p.to]),
  ];
  const head = `Packages: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.upgraded.length} upgraded, ${diff.downgraded.length} downgraded, ${diff.unchanged} unchanged`;
  const os = diff.os ? [`  OS: ${diff.os.from} → ${diff.os.to}`] : [];
  if (rows.length === 0) return [head, ...os];
  return [head, ...os, ...table(['CHANGE', 'PACKAGE', 'ARCH', 'FROM', 'TO'], rows)];
}

function namedLines(title: string, changes: NamedChanges): string[] {
  const rows = [
    ...changes.added.map((name) => ['added', name, '', '']),
    ...changes.removed.map((name) => ['removed', name, '', '']),
    ...changes.changed.map((c) => ['changed', c.name, c.from, c.to]),
  ];
  if (rows.length === 0) return [`${title}: no changes`];
  return [`${title}:`, ...table(['CHANGE', 'NAME', 'FROM', 'TO'], rows)];
}

/** Columns padded to their widest cell, indented two spaces. */
function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `  ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  return [line(head), ...rows.map(line)];
}
