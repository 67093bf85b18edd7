#!/usr/bin/env node
// Benchmarks for the template pipeline (issue 2), all measured in one run on this machine:
//  1. validate + render of a 200-customizer template in process (median of many runs), next to the same
//     work done by Packer itself (`packer validate` of the rendered file, a separate process);
//  2. cold start of `isobuild validate` on a small template, next to `packer validate` and a bare `node -e 0`,
//     with hyperfine.
// Usage: node bench/template-bench.mjs   (after `npm run build`; needs packer and hyperfine)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadTemplateText } from '../dist/agent/src/template/load-template.js';
import { renderPackerFile } from '../dist/agent/src/render/packer-template.js';

const SUB = '11111111-2222-3333-4444-555555555555';
const work = mkdtempSync(join(tmpdir(), 'isobuild-bench-'));

function bigTemplate(steps) {
  const customize = Array.from({ length: steps }, (_, i) =>
    i % 4 === 3
      ? {
          type: 'Shell',
          name: `script-${i}`,
          scriptUri: `https://example.blob.core.windows.net/a/s${i}.sh`,
          sha256Checksum: 'a'.repeat(64),
        }
      : {
          type: 'Shell',
          name: `step-${i}`,
          inline: [
            `echo "step ${i} \${HOME}"`,
            'sudo apt-get install -y curl jq',
            `printf '%s\\n' "line ${i}" | sudo tee -a /etc/motd`,
          ],
        },
  );
  return JSON.stringify({
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
      buildTimeoutInMinutes: 120,
      source: {
        type: 'PlatformImage',
        publisher: 'Canonical',
        offer: 'ubuntu-24_04-lts',
        sku: 'server',
        version: 'latest',
      },
      customize,
      validate: { inVMValidations: [{ type: 'Shell', name: 'check', inline: ['test -f /etc/motd'] }] },
      distribute: [
        {
          type: 'SharedImage',
          runOutputName: 'out',
          galleryImageId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d`,
          targetRegions: [{ name: 'westeurope' }],
        },
      ],
    },
  });
}

function validateAndRender(text) {
  const { template } = loadTemplateText(text, 'bench.json');
  const steps = template.customize.map((step) =>
    step.scriptUri ? { step, artifact: `artifacts/customize-${step.index}.sh` } : { step },
  );
  return renderPackerFile({
    template,
    steps,
    kind: 'customization',
    deprovisionScript: 'artifacts/isobuild-deprovision.sh',
    supportsPlugins: false,
    secrets: [],
    sourceLabel: 'bench.json',
  });
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p95: at(0.95), min: sorted[0] };
}

const text = bigTemplate(200);
const hcl = validateAndRender(text);
for (let i = 0; i < 50; i++) validateAndRender(text); // warm up the JIT
const samples = [];
for (let i = 0; i < 300; i++) {
  const start = performance.now();
  validateAndRender(text);
  samples.push(performance.now() - start);
}
const inProcess = stats(samples);

// Peer: Packer parsing the same 200-provisioner build (the syntax-only check opens no script files).
writeFileSync(join(work, 'big.pkr.hcl'), hcl);
const packerSamples = [];
for (let i = 0; i < 7; i++) {
  const start = performance.now();
  execFileSync('packer', ['validate', '-syntax-only', 'big.pkr.hcl'], {
    cwd: work,
    env: { ...process.env, CHECKPOINT_DISABLE: '1' },
  });
  packerSamples.push(performance.now() - start);
}
const packerStats = stats(packerSamples);

const small = join(work, 'small.json');
writeFileSync(small, bigTemplate(3));
writeFileSync(join(work, 'small.pkr.hcl'), validateAndRender(bigTemplate(3)));
execFileSync(
  'hyperfine',
  [
    '-N',
    '--warmup',
    '3',
    '--runs',
    '30',
    '--export-json',
    join(work, 'hf.json'),
    '--style',
    'none',
    '-n',
    'isobuild validate (CLI)',
    `node dist/agent/src/cli/main.js validate ${small}`,
    '-n',
    'packer validate -syntax-only (peer)',
    `packer validate -syntax-only ${join(work, 'small.pkr.hcl')}`,
    '-n',
    'node -e 0 (floor)',
    'node -e 0',
  ],
  { encoding: 'utf8', env: { ...process.env, CHECKPOINT_DISABLE: '1' } },
);
const hf = JSON.parse(readFileSync(join(work, 'hf.json'), 'utf8')).results;
const ms = (s) => (s * 1000).toFixed(1);

console.log(
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
);
console.log('');
console.log('| measurement | median | p95 / σ | target |');
console.log('|---|---|---|---|');
console.log(
  `| isobuild validate + render, 200 customizers, in process (300 runs) | ${inProcess.median.toFixed(2)} ms | p95 ${inProcess.p95.toFixed(2)} ms | ≤ 20 ms |`,
);
console.log(
  `| peer: packer validate -syntax-only of the same rendered file (7 runs, own process) | ${packerStats.median.toFixed(1)} ms | p95 ${packerStats.p95.toFixed(1)} ms | — |`,
);
for (const r of hf) {
  const target = r.command.startsWith('isobuild') ? '≤ 250 ms' : '—';
  console.log(
    `| cold start: ${r.command} (30 runs) | ${ms(r.median)} ms | σ ${ms(r.stddev)} ms | ${target} |`,
  );
}
const iso = hf.find((r) => r.command.startsWith('isobuild'));
const floor = hf.find((r) => r.command.startsWith('node'));
const peer = hf.find((r) => r.command.startsWith('packer'));
console.log('');
console.log(
  `Ratios (medians): isobuild validate / node floor = ${(iso.median / floor.median).toFixed(2)}; isobuild validate / packer validate = ${(iso.median / peer.median).toFixed(2)}.`,
);
rmSync(work, { recursive: true, force: true });
