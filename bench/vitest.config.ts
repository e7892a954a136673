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
    // The mail server is shared; each file starts its own in-memory Azurite. Sharing one let a file
    // pay for the one before: Azurite's queue garbage collection removes each consumed message's
    // extent with a LokiJS index rebuild, and after the send bench's 5,500 messages a sweep held
    // every Azurite service for 5-25 s in the middle of the receive bench's latency samples
    // (measured: one GET of queue messages took 5.2 s; no network error, no event-loop delay here).
    globalSetup: ['test/integration/mail-server.global-setup.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
