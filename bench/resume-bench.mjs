#!/usr/bin/env node
// Benchmark for the iteration loop (issue 14), side by side in one run on one disposable test VM: a build of
// 10 steps of 3 s each fails at the last step; the script is fixed; the time to a green build by
//  - fix and resume: `isobuild build --resume RUN` (runs step 10 only), against
//  - fix and rebuild: `isobuild build` from the start (runs all 10 steps again).
// Rounds alternate the two so load drifts hit both; the report gives medians and their ratio.
// Usage: node bench/resume-bench.mjs [rounds]   (after `npm run build`; needs root and packer)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { startTestVm, stopTestVm } from '../dist/agent/src/testvm/test-vm.js';
import { writeTemplate } from './bench-templates.mjs';

const rounds = Number(process.argv[2] ?? 3);
const STEPS = 10;
const STEP_SECONDS = 3;
const cli = resolve(import.meta.dirname, '../dist/agent/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'isobuild-resume-bench-'));

/** Ten 3-second steps; the last exits `lastExit`. */
function templateFile(name, lastExit) {
  const customize = Array.from({ length: STEPS }, (_, i) => ({
    type: 'Shell',
    name: `step ${i + 1}`,
    inline: [`sleep ${STEP_SECONDS}`, ...(i === STEPS - 1 ? [`exit ${lastExit}`] : [])],
  }));
  return writeTemplate(join(work, `${name}.json`), { customize });
}

const vm = await startTestVm();
const common = [
  '--user',
  vm.user,
  '--ssh-key-file',
  vm.keyFile,
  '--skip-deprovision',
  '--local-logs-only',
  '--work-dir',
  join(work, 'runs'),
];
/** One build; returns its wall time in ms, and fails the benchmark when the exit code is not the expected one. */
function build(template, args, expectedCode) {
  const started = performance.now();
  const run = spawnSync(process.execPath, [cli, 'build', template, ...common, ...args], { encoding: 'utf8' });
  const ms = performance.now() - started;
  if (run.status !== expectedCode)
    throw new Error(
      `build ${args.join(' ')} exited ${run.status}, not ${expectedCode}:\n${run.stdout}${run.stderr}`,
    );
  return ms;
}

const failing = templateFile('failing', 5);
const fixed = templateFile('fixed', 0);
const resumeMs = [];
const rebuildMs = [];
try {
  for (let round = 0; round < rounds; round++) {
    const failedRun = `failed-${round}`;
    build(failing, ['--host', vm.address, '--run-id', failedRun], 1);
    resumeMs.push(build(fixed, ['--run-id', `resumed-${round}`, '--resume', failedRun], 0));
    rebuildMs.push(build(fixed, ['--host', vm.address, '--run-id', `rebuilt-${round}`], 0));
  }
} finally {
  await stopTestVm(vm.id);
  rmSync(work, { recursive: true, force: true });
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const s = (ms) => `${(ms / 1000).toFixed(1)} s`;
console.log(
  `Time to a green build after a failure at step ${STEPS} of ${STEPS} (${STEP_SECONDS} s each), ${rounds} rounds:`,
);
console.log(`| path | median | all |`);
console.log(`|---|---|---|`);
console.log(`| fix and resume (--resume) | ${s(median(resumeMs))} | ${resumeMs.map(s).join(', ')} |`);
console.log(`| fix and rebuild | ${s(median(rebuildMs))} | ${rebuildMs.map(s).join(', ')} |`);
console.log(`resume / rebuild = ${(median(resumeMs) / median(rebuildMs)).toFixed(2)} (target ≤ 0.20)`);
