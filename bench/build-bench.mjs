#!/usr/bin/env node
// Benchmark for `isobuild build` (issue 3), side by side in one run on a disposable test VM:
//  1. wall time of `isobuild build` (validate, fetch, render, SSH probe, Packer, status, logs) against
//     `packer build` run directly on the same rendered HCL, 3-customizer template (hyperfine): with the
//     default store (an Azurite isobuild starts and stops per run), with a store that is already running
//     (as a storage account is), and with --local-logs-only;
//  2. peak RSS of the isobuild process (VmHWM, sampled from /proc while it runs);
//  3. test VM start (until sshd answers) and stop times.
// Usage: node bench/build-bench.mjs   (after `npm run build`; needs root, packer and hyperfine)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { startEmbeddedAzurite } from '../dist/agent/src/logstore/embedded-azurite.js';
import { startTestVm, stopTestVm } from '../dist/agent/src/testvm/test-vm.js';

const cli = resolve(import.meta.dirname, '../dist/agent/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'isobuild-build-bench-'));
const SUB = '11111111-2222-3333-4444-555555555555';
const template = {
  type: 'Microsoft.VirtualMachineImages/imageTemplates',
  apiVersion: '2024-02-01',
  location: 'westeurope',
  identity: {
    type: 'UserAssigned',
    userAssignedIdentities: {
      [`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib`]:
        {},
    },
  },
  properties: {
    source: {
      type: 'PlatformImage',
      publisher: 'Canonical',
      offer: 'ubuntu-24_04-lts',
      sku: 'server',
      version: 'latest',
    },
    customize: [
      { type: 'Shell', name: 'packages', inline: ['echo installing', 'sudo mkdir -p /opt/app'] },
      { type: 'Shell', name: 'config', inline: ['echo "setting=1" | sudo tee /opt/app/app.conf'] },
      { type: 'Shell', name: 'motd', inline: ['echo "built by isobuild" | sudo tee -a /etc/motd'] },
    ],
    distribute: [{ type: 'VHD', runOutputName: 'vhd' }],
  },
};
const templateFile = join(work, 'template.json');
writeFileSync(templateFile, JSON.stringify(template));

// Test VM start and stop times (the issue asks for a start in under 2 seconds).
const vmTimes = [];
for (let i = 0; i < 5; i++) {
  const started = performance.now();
  const probe = await startTestVm();
  const up = performance.now();
  await stopTestVm(probe.id);
  vmTimes.push([up - started, performance.now() - up]);
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const vm = await startTestVm();
// Stands in for a storage account: started once, outside the measured runs.
const store = await startEmbeddedAzurite(join(work, 'store'));
try {
  const common = [
    '--host',
    vm.address,
    '--user',
    vm.user,
    '--ssh-key-file',
    vm.keyFile,
    '--skip-deprovision',
    '--work-dir',
    join(work, 'runs'),
  ];
  // The rendered HCL plain Packer runs: exactly what isobuild runs.
  execFileSync(
    process.execPath,
    [cli, 'render', templateFile, '--out', join(work, 'hcl'), '--skip-deprovision'],
    { stdio: 'ignore' },
  );
  const packerEnv = `PKR_VAR_build_host=${vm.address} PKR_VAR_build_username=${vm.user} PKR_VAR_ssh_private_key_file=${vm.keyFile} CHECKPOINT_DISABLE=1`;
  execFileSync(
    'hyperfine',
    [
      '-N',
      '--warmup',
      '2',
      '--runs',
      '15',
      '--style',
      'none',
      '--export-json',
      join(work, 'hf.json'),
      '-n',
      'isobuild build (3 customizers), logs to the embedded Azurite (default)',
      `${process.execPath} ${cli} build ${templateFile} ${common.join(' ')}`,
      '-n',
      'isobuild build, logs to an Azurite that is already running (as a storage account would be)',
      `${process.execPath} ${cli} build ${templateFile} ${common.join(' ')} --storage-connection-string ${store.connectionString.reveal()}`,
      '-n',
      'isobuild build --local-logs-only',
      `${process.execPath} ${cli} build ${templateFile} ${common.join(' ')} --local-logs-only`,
      '-n',
      'packer build, same HCL (peer)',
      `env ${packerEnv} sh -c "cd ${join(work, 'hcl')} && packer build -color=false customization.pkr.hcl"`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const results = JSON.parse(readFileSync(join(work, 'hf.json'), 'utf8')).results;

  const peaks = [];
  // The isobuild process itself; the embedded Azurite is a process of its own.
  for (let i = 0; i < 5; i++) peaks.push(await peakRssMb([cli, 'build', templateFile, ...common]));
  peaks.sort((a, b) => a - b);

  const ms = (s) => (s * 1000).toFixed(0);
  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
  );
  console.log('');
  console.log('| measurement | median | σ / range | target |');
  console.log('|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.command} (15 runs) | ${ms(r.median)} ms | σ ${ms(r.stddev)} ms | ${r.command.startsWith('isobuild') ? '≤ 1.15× packer' : '—'} |`,
    );
  console.log(
    `| peak RSS of the isobuild process (5 runs) | ${peaks[2].toFixed(0)} MB | ${peaks[0].toFixed(0)}–${peaks[4].toFixed(0)} MB | ≤ 150 MB |`,
  );
  console.log(
    `| test VM start, until sshd answers (5 runs) | ${median(vmTimes.map((t) => t[0])).toFixed(0)} ms | — | < 2 s |`,
  );
  console.log(
    `| test VM stop, everything removed (5 runs) | ${median(vmTimes.map((t) => t[1])).toFixed(0)} ms | — | — |`,
  );
  const [iso, running, local, peer] = results;
  console.log('');
  console.log(
    `Ratio (medians) to packer build: isobuild build ${(iso.median / peer.median).toFixed(2)}, to a running store ${(running.median / peer.median).toFixed(2)}, with --local-logs-only ${(local.median / peer.median).toFixed(2)}.`,
  );
} finally {
  await store.stop();
  await stopTestVm(vm.id);
  rmSync(work, { recursive: true, force: true });
}

/** Runs the command and returns the process's peak RSS (VmHWM) in MB, sampled until it exits. */
function peakRssMb(args) {
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    let peak = 0;
    const timer = setInterval(() => {
      try {
        const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        peak = Math.max(peak, kb / 1024);
      } catch {
        // The process has exited.
      }
    }, 10);
    child.once('exit', () => {
      clearInterval(timer);
      done(peak);
    });
  });
}
