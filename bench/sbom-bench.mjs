#!/usr/bin/env node
// Benchmark for the SBOM (issue 15), side by side in one run on one disposable test VM:
//  1. collecting the VM's full package inventory the way a build does (a fresh SSH login, isobuild's
//     inventory script, parsing) against the bare `dpkg-query -W` over a fresh SSH login, both with the same
//     SSH client; then making the CycloneDX document from it (build, serialise, schema validation);
//  2. what the SBOM adds to a build: a one-step build with the inventories against the same with --no-sbom.
// Rounds alternate the peers so load drifts hit both; the report gives medians and their ratios.
// Usage: node bench/sbom-bench.mjs [rounds]   (after `npm run build`; needs root and packer)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { startTestVm, stopTestVm } from '../dist/agent/src/testvm/test-vm.js';
import { sshExec } from '../dist/agent/src/vm-path/ssh-exec.js';
import { LINUX_INVENTORY_SCRIPT, parseLinuxInventory } from '../dist/agent/src/sbom/linux-inventory.js';
import { buildCycloneDx } from '../dist/agent/src/sbom/cyclonedx.js';
import { writeTemplate } from './bench-templates.mjs';

const rounds = Number(process.argv[2] ?? 15);
const buildRounds = Math.max(3, Math.ceil(rounds / 3));
const cli = resolve(import.meta.dirname, '../dist/agent/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'isobuild-sbom-bench-'));

const vm = await startTestVm();
const target = { host: vm.address, port: 22, user: vm.user, privateKey: readFileSync(vm.keyFile) };
const exec = (command) => sshExec(target, command, { budgetMs: 30_000 });

async function timed(work) {
  const started = performance.now();
  const result = await work();
  return { ms: performance.now() - started, result };
}

const bareMs = [];
const collectMs = [];
const documentMs = [];
let packages = 0;
const templateFile = writeTemplate(join(work, 'one-step.json'), {
  customize: [{ type: 'Shell', name: 'one step', inline: ['echo hello'] }],
});
/** One build's wall time in ms; fails the benchmark unless it succeeds. */
function build(runId, args) {
  const started = performance.now();
  const run = spawnSync(
    process.execPath,
    [
      cli,
      'build',
      templateFile,
      ...['--host', vm.address, '--user', vm.user, '--ssh-key-file', vm.keyFile],
      ...['--skip-deprovision', '--local-logs-only', '--work-dir', join(work, 'runs'), '--run-id', runId],
      ...args,
    ],
    { encoding: 'utf8' },
  );
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`build ${runId} exited ${run.status}:\n${run.stdout}${run.stderr}`);
  return ms;
}
const withSbomMs = [];
const withoutSbomMs = [];
try {
  await exec('true'); // the first login warms the VM's sshd
  for (let round = 0; round < rounds; round++) {
    const bare = await timed(() => exec('dpkg-query -W'));
    const collected = await timed(async () => parseLinuxInventory(await exec(LINUX_INVENTORY_SCRIPT)));
    const document = await timed(() =>
      buildCycloneDx(collected.result, {
        runId: `bench-${round}`,
        imageLabel: 'bench',
        toolVersion: 'bench',
        timestamp: new Date().toISOString(),
        baseline: collected.result,
      }),
    );
    bareMs.push(bare.ms);
    collectMs.push(collected.ms);
    documentMs.push(document.ms);
    packages = collected.result.packages.length;
  }
  for (let round = 0; round < buildRounds; round++) {
    withSbomMs.push(build(`with-${round}`, []));
    withoutSbomMs.push(build(`without-${round}`, ['--no-sbom']));
  }
} finally {
  await stopTestVm(vm.id);
  rmSync(work, { recursive: true, force: true });
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ms = (value) => `${value.toFixed(0)} ms`;
console.log(`Inventory of the test VM (${packages} packages), ${rounds} rounds, medians:`);
console.log('| what | median | min | max |');
console.log('|---|---|---|---|');
for (const [label, values] of [
  ['`dpkg-query -W` over SSH (bare)', bareMs],
  ["isobuild's collection (script over SSH, parsed)", collectMs],
  ['CycloneDX document (build, serialise, schema-validate)', documentMs],
])
  console.log(
    `| ${label} | ${ms(median(values))} | ${ms(Math.min(...values))} | ${ms(Math.max(...values))} |`,
  );
console.log(
  `collection / bare dpkg-query = ${(median(collectMs) / median(bareMs)).toFixed(2)} (target ≤ 1.5)`,
);
console.log('');
console.log(`A one-step build, ${buildRounds} rounds each, medians:`);
console.log(`| build | median | all |`);
console.log(`|---|---|---|`);
const s = (value) => `${(value / 1000).toFixed(2)} s`;
console.log(`| with the SBOM (default) | ${s(median(withSbomMs))} | ${withSbomMs.map(s).join(', ')} |`);
console.log(`| --no-sbom | ${s(median(withoutSbomMs))} | ${withoutSbomMs.map(s).join(', ')} |`);
console.log(`the SBOM adds ${s(median(withSbomMs) - median(withoutSbomMs))} to a build (target ≤ 2 s)`);
