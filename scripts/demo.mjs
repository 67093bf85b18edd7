#!/usr/bin/env node
// `make demo`: a real build of images/linux-baseline on a disposable test VM.
// It starts the VM, serves the image's artifacts from a local HTTP server (so scriptUri downloads and
// sha256Checksum checks run for real), runs `isobuild build` (its logs stream to the embedded Azurite),
// reads the stored run back with `isobuild logs`, and tears everything down, also on Ctrl-C. The Windows example is validated and rendered (Windows
// builds need a Windows VM).
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize, resolve } from 'node:path';
import { startTestVm, stopTestVm } from '../dist/agent/src/testvm/test-vm.js';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist/agent/src/cli/main.js');
const imagesDir = join(root, 'images');

function run(args, stdout = 'inherit') {
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', stdout, 'inherit'] });
    child.once('close', (code) => done(code ?? 1));
  });
}

// Serves images/ at /artifacts/, the path the example templates use on their (fictional) storage account.
const server = createServer((request, response) => {
  const path = normalize(decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname)).replace(
    /^\/artifacts\//,
    '',
  );
  const file = join(imagesDir, path);
  if (!file.startsWith(imagesDir) || !existsSync(file)) {
    response.writeHead(404).end();
    return;
  }
  createReadStream(file).pipe(response);
});
await new Promise((done) => server.listen(0, '127.0.0.1', done));
const artifactsUrl = `http://127.0.0.1:${server.address().port}/artifacts/`;

let vm;
let exitCode = 1;
const teardown = async () => {
  server.close();
  if (vm) await stopTestVm(vm.id);
};
process.once('SIGINT', () => void teardown().then(() => process.exit(130)));

try {
  console.log('=== starting a disposable test VM');
  vm = await startTestVm();
  console.log(`    ${vm.user}@${vm.address} (sshd in its own namespaces; writes stay inside the VM)`);
  // AIB's deprovision step needs the Azure Linux agent; a VM that could not get it says why.
  const deprovision = vm.azureAgent ? [] : ['--skip-deprovision'];
  if (!vm.azureAgent)
    console.log(`    no Azure Linux agent (${vm.azureAgentProblem}): building with --skip-deprovision`);
  console.log(
    `=== isobuild build images/linux-baseline/template.json (artifacts served from ${artifactsUrl})`,
  );
  const runId = `demo-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const workDir = join(root, '.work/runs');
  exitCode = await run([
    'build',
    join(imagesDir, 'linux-baseline/template.json'),
    '--host',
    vm.address,
    '--user',
    vm.user,
    '--ssh-key-file',
    vm.keyFile,
    '--work-dir',
    workDir,
    '--run-id',
    runId,
    '--rewrite-uri',
    `https://isobuildexamples.blob.core.windows.net/artifacts/=${artifactsUrl}`,
    ...deprovision,
  ]);
  console.log(`=== isobuild logs ${runId}: the run as stored in the embedded Blob store (Azurite)`);
  const logs = await run(['logs', runId, '--work-dir', workDir], 'ignore');
  if (exitCode === 0) exitCode = logs;
  console.log(
    '=== isobuild validate + render images/windows-baseline/template.json (a Windows build needs a Windows VM; the tests use a fake one)',
  );
  const windows = await run([
    'render',
    join(imagesDir, 'windows-baseline/template.json'),
    '--out',
    join(root, '.work/demo/windows-baseline'),
    '--check',
    '--rewrite-uri',
    `https://isobuildexamples.blob.core.windows.net/artifacts/=${imagesDir}/`,
  ]);
  if (exitCode === 0) exitCode = windows;
} finally {
  await teardown();
  console.log('=== test VM removed');
}
process.exitCode = exitCode;
