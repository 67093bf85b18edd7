// Benchmarks that need the test-only fake Windows VM (TypeScript) run under vitest with this config:
// `npx vitest run --config bench/vitest.config.ts`. They are not part of `make test`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['bench/**/*.vitest.ts'],
    testTimeout: 600_000,
    hookTimeout: 60_000,
  },
});
