import { defineConfig } from 'vitest/config';

// Two projects: `unit` (fast, no built code; short timeouts) and `integration` (real processes and servers
// running dist/, which the global setup rebuilds when it is stale). `npx vitest run` runs both;
// `--project unit` or `--project integration` runs one.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
          hookTimeout: 10_000,
          setupFiles: ['test/helpers/fail-on-warning.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          setupFiles: ['test/helpers/fail-on-warning.ts'],
          globalSetup: ['test/setup/dist-fresh.ts'],
        },
      },
    ],
  },
});
