#!/usr/bin/env node
// Benchmark for Windows File uploads (issue 16), side by side in one run:
//  1. isobuild's WinRM upload (uploadFile, dist/agent/src/winrm/upload.js) of a 100 MB file to the fake
//     Windows VM, with 1, 2 and 4 writers. The fake runs in a process of its own with Windows' costs
//     (shell, cmd.exe, powershell.exe start-up) and Windows' MaxEnvelopeSizekb of 500;
//  2. Packer 1.6.6's file provisioner over WinRM to the same fake (null builder, Basic over HTTPS, as isobuild
//     here), with a 4 MB file because it is slow;
//  3. Packer's file provisioner over SSH to a disposable Linux test VM, the same 100 MB, with SCP (its
//     default) and with SFTP: the Linux path builds keep.
//  4. the same as File steps of a whole `isobuild build` against the fake: the 100 MB file uploaded by isobuild
//     (staged, then moved at the step) against a 4 MB file by Packer's file provisioner (--windows-upload
//     packer), each build's time minus the same build with a 1-byte file.
// A Packer upload's time is its run's wall time minus the median of the same run with a 1-byte file (Packer's
// start-up and connect). Every upload is checked byte for byte. Rounds alternate the peers so load drifts hit
// all of them; the report gives medians, MB/s (10^6 bytes) and ratios.
// Usage: node bench/winrm-upload-bench.mjs [rounds]   (after `npm run build`; needs root and packer)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { Secret } from '../dist/agent/src/secret.js';
import { startTestVm, stopTestVm } from '../dist/agent/src/testvm/test-vm.js';
import { uploadFile } from '../dist/agent/src/winrm/upload.js';
import { writeTemplate } from './bench-templates.mjs';

const rounds = Number(process.argv[2] ?? 3);
const BIG = 100_000_000;
const PACKER_WINRM_SIZE = 4_000_000;
const PARALLEL = [1, 2, 4];
const work = mkdtempSync(join(tmpdir(), 'isobuild-upload-bench-'));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

function randomFile(name, size) {
  const file = join(work, name);
  writeFileSync(file, execFileSync('head', ['-c', String(size), '/dev/urandom'], { maxBuffer: size + 1 }));
  return { file, size, sha256: sha256(file) };
}

/** The fake Windows VM in a process of its own (bench/fake-windows-vm.hold.ts), as a real VM would be. */
async function startFakeVmProcess() {
  const info = join(work, 'vm.json');
  const stop = join(work, 'stop');
  const child = spawn('npx', ['vitest', 'run', '--config', 'bench/fake-vm.config.ts'], {
    stdio: 'ignore',
    env: {
      ...process.env,
      BENCH_FAKE_VM_INFO: info,
      BENCH_FAKE_VM_STOP: stop,
      BENCH_FAKE_VM_RECEIVE_CAP_MS: '1000',
    },
  });
  for (let i = 0; i < 300 && !existsSync(info); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  if (!existsSync(info)) throw new Error('the fake Windows VM did not start');
  return {
    ...JSON.parse(readFileSync(info, 'utf8')),
    close: async () => {
      writeFileSync(stop, '');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** Wall time of `packer build` of one file provisioner, in ms; fails the benchmark when Packer fails. */
function packerUpload(name, communicator, source, destination) {
  const dir = join(work, name);
  execFileSync('mkdir', ['-p', dir]);
  const hcl = `source "null" "bench" {\n${communicator}\n}\nbuild {\n  sources = ["source.null.bench"]\n  provisioner "file" {\n    source      = "${source}"\n    destination = "${destination.replace(/\\/g, '\\\\')}"\n  }\n}\n`;
  writeFileSync(join(dir, 'bench.pkr.hcl'), hcl);
  const started = performance.now();
  const run = spawnSync('packer', ['build', '-color=false', 'bench.pkr.hcl'], {
    cwd: dir,
    env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    encoding: 'utf8',
  });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`packer (${name}) failed:\n${run.stdout}\n${run.stderr}`);
  return ms;
}

const cli = join(import.meta.dirname, '../dist/agent/src/cli/main.js');
/** Wall time of `isobuild build` of one Windows File step to the fake VM, in ms; fails the benchmark on failure. */
function buildFileStep(name, vm, source, destination, args = []) {
  const template = writeTemplate(
    join(work, `${name}.json`),
    { customize: [{ type: 'File', name: 'payload', sourceUri: `file://${source}`, destination }] },
    'windows',
  );
  const started = performance.now();
  const run = spawnSync(
    process.execPath,
    [
      cli,
      'build',
      template,
      ...['--host', vm.host, '--port', String(vm.port), '--user', vm.user, '--winrm-auth', 'basic'],
      ...[
        '--work-dir',
        join(work, 'runs'),
        '--run-id',
        name,
        '--skip-deprovision',
        '--local-logs-only',
        '--no-sbom',
      ],
      ...args,
    ],
    { encoding: 'utf8', env: { ...process.env, ISOBUILD_WINRM_PASSWORD: vm.password } },
  );
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`isobuild build (${name}) failed:\n${run.stdout}\n${run.stderr}`);
  return ms;
}

const big = randomFile('big.bin', BIG);
const medium = randomFile('medium.bin', PACKER_WINRM_SIZE);
const tiny = randomFile('tiny.bin', 1);
const windows = await startFakeVmProcess();
const linux = await startTestVm();
const results = {};
const record = (name, ms) => (results[name] ??= []).push(ms);
try {
  const target = {
    host: windows.host,
    port: windows.port,
    servername: 'fake-windows-vm',
    tls: { kind: 'ca', ca: windows.certPem },
    auth: { kind: 'basic', user: windows.user, password: new Secret(windows.password) },
  };
  const winrm = `  communicator = "winrm"\n  winrm_host = "${windows.host}"\n  winrm_port = ${windows.port}\n  winrm_username = "${windows.user}"\n  winrm_password = "${windows.password}"\n  winrm_use_ssl = true\n  winrm_insecure = true\n  winrm_use_ntlm = false\n  winrm_timeout = "2m"`;
  const ssh = (method) =>
    `  communicator = "ssh"\n  ssh_host = "${linux.address}"\n  ssh_username = "${linux.user}"\n  ssh_private_key_file = "${linux.keyFile}"\n  ssh_file_transfer_method = "${method}"`;
  const onVm = (command) =>
    execFileSync('ssh', [
      '-i',
      linux.keyFile,
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      `${linux.user}@${linux.address}`,
      command,
    ]).toString();

  for (let round = 0; round < rounds; round++) {
    for (const parallel of PARALLEL) {
      const started = performance.now();
      await uploadFile(target, big.file, 'C:\\Windows\\Temp\\isobuild-staging\\big.bin', { parallel });
      record(`isobuild upload, ${parallel} writer${parallel > 1 ? 's' : ''}`, performance.now() - started);
      if (sha256(join(windows.sandbox, 'Windows', 'Temp', 'isobuild-staging', 'big.bin')) !== big.sha256)
        throw new Error('isobuild: the uploaded file differs');
    }
    record(
      'packer winrm baseline',
      packerUpload(`winrm-base-${round}`, winrm, tiny.file, 'C:\\bench\\tiny.bin'),
    );
    record('packer winrm', packerUpload(`winrm-${round}`, winrm, medium.file, 'C:\\bench\\medium.bin'));
    if (sha256(join(windows.sandbox, 'bench', 'medium.bin')) !== medium.sha256)
      throw new Error('packer winrm: the uploaded file differs');
    for (const method of ['scp', 'sftp']) {
      const destination = `/tmp/isobuild-upload-bench-${method}.bin`;
      record(
        `packer ${method} baseline`,
        packerUpload(`${method}-base-${round}`, ssh(method), tiny.file, destination),
      );
      record(`packer ${method}`, packerUpload(`${method}-${round}`, ssh(method), big.file, destination));
      if (!onVm(`sha256sum ${destination}`).startsWith(big.sha256))
        throw new Error(`packer ${method}: the uploaded file differs`);
      onVm(`rm -f ${destination}`);
    }
    record('build baseline', buildFileStep(`base-${round}`, windows, tiny.file, 'C:\\bench\\step-tiny.bin'));
    record('build isobuild', buildFileStep(`iso-${round}`, windows, big.file, 'C:\\bench\\step-big.bin'));
    if (sha256(join(windows.sandbox, 'bench', 'step-big.bin')) !== big.sha256)
      throw new Error('isobuild build: the File step left a different file');
    record(
      'build packer baseline',
      buildFileStep(`pbase-${round}`, windows, tiny.file, 'C:\\bench\\step-ptiny.bin', [
        '--windows-upload',
        'packer',
      ]),
    );
    record(
      'build packer',
      buildFileStep(`packer-${round}`, windows, medium.file, 'C:\\bench\\step-medium.bin', [
        '--windows-upload',
        'packer',
      ]),
    );
    if (sha256(join(windows.sandbox, 'bench', 'step-medium.bin')) !== medium.sha256)
      throw new Error('packer build: the File step left a different file');
  }
} finally {
  await windows.close();
  await stopTestVm(linux.id);
  rmSync(work, { recursive: true, force: true });
}

const stepMs = (name, baseline) => median(results[name]) - median(results[baseline]);
const stepRate = (name, baseline, size) => size / 1e6 / (stepMs(name, baseline) / 1000);
const rows = [];
const rate = {};
for (const parallel of PARALLEL) {
  const name = `isobuild upload, ${parallel} writer${parallel > 1 ? 's' : ''}`;
  const ms = median(results[name]);
  rate[name] = BIG / 1e6 / (ms / 1000);
  rows.push([name, 'WinRM (fake Windows VM)', '100 MB', ms, rate[name]]);
}
for (const [name, channel, size] of [
  ['packer winrm', 'WinRM (fake Windows VM)', PACKER_WINRM_SIZE],
  ['packer scp', 'SSH (Linux test VM)', BIG],
  ['packer sftp', 'SSH (Linux test VM)', BIG],
]) {
  const ms = median(results[name]) - median(results[`${name} baseline`]);
  rate[name] = size / 1e6 / (ms / 1000);
  rows.push([
    `${name.replace('packer', 'Packer file provisioner,')}`,
    channel,
    `${size / 1e6} MB`,
    ms,
    rate[name],
  ]);
}
const best = PARALLEL.map((p) => `isobuild upload, ${p} writer${p > 1 ? 's' : ''}`).reduce((a, b) =>
  rate[a] >= rate[b] ? a : b,
);
const one = 'isobuild upload, 1 writer';
console.log(
  [
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, ${rounds} rounds`,
    '',
    '| upload | channel | file | median time of the upload | MB/s |',
    '|---|---|---|---|---|',
    ...rows.map(
      ([name, channel, size, ms, mbps]) =>
        `| ${name} | ${channel} | ${size} | ${(ms / 1000).toFixed(2)} s | ${mbps.toFixed(2)} |`,
    ),
    '',
    `Packer runs without the upload (1-byte file, subtracted above): WinRM ${(median(results['packer winrm baseline']) / 1000).toFixed(1)} s, SCP ${(median(results['packer scp baseline']) / 1000).toFixed(1)} s, SFTP ${(median(results['packer sftp baseline']) / 1000).toFixed(1)} s.`,
    `isobuild (1 writer) / Packer over WinRM = ${(rate[one] / rate['packer winrm']).toFixed(0)}× (target ≥ 20×); 100 MB in ${(median(results[one]) / 1000).toFixed(1)} s (target ≤ 15 s).`,
    `Fastest isobuild setting: ${best}, ${(rate[best] / rate[one]).toFixed(2)}× one writer.`,
    `isobuild (1 writer) / Packer over SCP = ${(rate[one] / rate['packer scp']).toFixed(2)}×, over SFTP = ${(rate[one] / rate['packer sftp']).toFixed(2)}×.`,
    '',
    'A File step in an `isobuild build` (the build minus the same build with a 1-byte file):',
    '',
    '| File step | file | median time of the step | MB/s |',
    '|---|---|---|---|',
    `| isobuild's upload (default) | 100 MB | ${(stepMs('build isobuild', 'build baseline') / 1000).toFixed(2)} s | ${stepRate('build isobuild', 'build baseline', BIG).toFixed(2)} |`,
    `| Packer's file provisioner (--windows-upload packer) | 4 MB | ${(stepMs('build packer', 'build packer baseline') / 1000).toFixed(2)} s | ${stepRate('build packer', 'build packer baseline', PACKER_WINRM_SIZE).toFixed(2)} |`,
    '',
    `Builds with a 1-byte file: ${(median(results['build baseline']) / 1000).toFixed(1)} s (isobuild's upload), ${(median(results['build packer baseline']) / 1000).toFixed(1)} s (Packer's).`,
    `isobuild / Packer, as File steps = ${(stepRate('build isobuild', 'build baseline', BIG) / stepRate('build packer', 'build packer baseline', PACKER_WINRM_SIZE)).toFixed(0)}× (target ≥ 20×); the 100 MB step in ${(stepMs('build isobuild', 'build baseline') / 1000).toFixed(1)} s (target ≤ 15 s).`,
  ].join('\n'),
);
