import { defineConfig } from 'vitest/config';

// Benchmarks run apart from the tests, one file at a time so they do not compete for the two cores:
// each compares the connector with a baseline measured in the same run, so the ratios hold on noisy
// machines where absolute timings do not. They assert nothing about time.
// The mail benchmarks need what the integration tests use: Azurite (each file its own) and the real
// Dovecot (which skips loudly when this machine cannot run it).
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['bench/**/*.bench.ts'],
    // Each file starts its own Azurite (bench/own-azurite.ts); the mail server is shared.
    globalSetup: ['test/integration/mail-server.global-setup.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
