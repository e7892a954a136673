import { defineConfig } from 'vitest/config';

// Benchmarks run apart from the tests, one file at a time so they do not compete for the two cores:
// each compares the connector with a baseline measured in the same run, so the ratios hold on noisy
// machines where absolute timings do not. They assert nothing about time.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['bench/**/*.bench.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
  },
});
