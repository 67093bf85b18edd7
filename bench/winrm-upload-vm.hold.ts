// Holds a fake Windows VM (with Windows' default costs and MaxEnvelopeSizekb) in its own process until the
// file named by BENCH_FAKE_VM_STOP appears, after writing how to reach it to BENCH_FAKE_VM_INFO. Started by
// bench/winrm-upload-bench.mjs, so that the fake's work does not share an event loop with the uploader.
import { existsSync, writeFileSync } from 'node:fs';
import { it } from 'vitest';
import { startFakeWindowsVm } from '../test/helpers/fake-windows-vm/server.js';

it('serves a fake Windows VM for the WinRM upload benchmark', async () => {
  const info = process.env.BENCH_FAKE_VM_INFO;
  const stop = process.env.BENCH_FAKE_VM_STOP;
  if (!info || !stop) throw new Error('run by bench/winrm-upload-bench.mjs only');
  const vm = await startFakeWindowsVm({ receiveCapMs: 1_000 });
  writeFileSync(
    info,
    JSON.stringify({
      host: vm.host,
      port: vm.port,
      user: vm.user,
      password: vm.password,
      certPem: vm.certPem,
      sandbox: vm.sandbox,
    }),
  );
  while (!existsSync(stop)) await new Promise((resolve) => setTimeout(resolve, 200));
  await vm.close();
});
