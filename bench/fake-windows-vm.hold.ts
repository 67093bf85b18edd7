// Holds a fake Windows VM (Windows' default costs and MaxEnvelopeSizekb) in its own process until the file
// named by BENCH_FAKE_VM_STOP appears, after writing how to reach it to BENCH_FAKE_VM_INFO. Started by
// bench/winrm-bench.vitest.ts and bench/winrm-upload-bench.mjs, so that the fake's work does not share an event
// loop with the client being measured (as a real VM would not). BENCH_FAKE_VM_RECEIVE_CAP_MS caps how long a
// Receive is held (the upload benchmark's builds take 1 s, as the Windows build tests do).
import { existsSync, writeFileSync } from 'node:fs';
import { it } from 'vitest';
import { startFakeWindowsVm } from '../test/helpers/fake-windows-vm/server.js';

it('serves a fake Windows VM for the WinRM benchmark', async () => {
  const info = process.env.BENCH_FAKE_VM_INFO;
  const stop = process.env.BENCH_FAKE_VM_STOP;
  if (!info || !stop)
    throw new Error('run by the WinRM benchmarks only (BENCH_FAKE_VM_INFO, BENCH_FAKE_VM_STOP)');
  const cap = Number(process.env.BENCH_FAKE_VM_RECEIVE_CAP_MS);
  const vm = await startFakeWindowsVm(cap > 0 ? { receiveCapMs: cap } : {});
  writeFileSync(
    info,
    JSON.stringify({
      host: vm.host,
      port: vm.port,
      user: vm.user,
      password: vm.password,
      certPem: vm.certPem,
      certFile: vm.certFile,
      sandbox: vm.sandbox,
    }),
  );
  while (!existsSync(stop)) await new Promise((resolve) => setTimeout(resolve, 200));
  await vm.close();
});
