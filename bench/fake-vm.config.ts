// Runs the fake Windows VM as a process of its own for bench/winrm-bench.vitest.ts and bench/winrm-upload-bench.mjs (see there).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { include: ['bench/fake-windows-vm.hold.ts'], testTimeout: 3_600_000 },
});
