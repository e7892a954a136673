import { describe, expect, it } from 'vitest';
import { DEFAULT_REFRESH_POLICY, NEVER, isDegraded, nextDueAt, retryDelayMs, type ConnectionHealth } from '../../src/domain/connection-health.js';
import { credentialLevel } from '../../src/domain/app-health.js';

const HOUR = 3_600_000;
const now = new Date('2026-11-22T12:00:00.000Z');
const at = (offsetMs: number) => new Date(now.getTime() + offsetMs).toISOString();
const base: ConnectionHealth = { customerId: 'c', connectionId: 'con', appId: 'default', mode: 'delegated', dueAt: at(0), cacheVersion: 0, consecutiveFailures: 0 };
const policy = DEFAULT_REFRESH_POLICY;

describe('when a connection is due', () => {
  it('an idle connection: 24 hours after its last successful refresh', () => {
    expect(nextDueAt({ ...base, lastSuccessAt: at(-HOUR), accessTokenExpiresAt: at(10 * 60_000) }, 'connected', policy, now)).toBe(at(23 * HOUR));
  });

  it('a connection in use: 20 minutes before its access token expires', () => {
    const health = { ...base, lastSuccessAt: at(-HOUR), usedAt: at(-5 * 60_000), accessTokenExpiresAt: at(HOUR) };
    expect(nextDueAt(health, 'connected', policy, now)).toBe(at(40 * 60_000));
  });

  it('waiting for the user: never; waiting for an administrator: a day after the last attempt', () => {
    expect(nextDueAt(base, 'needs_reauth', policy, now)).toBe(NEVER);
    expect(nextDueAt(base, 'disconnected', policy, now)).toBe(NEVER);
    expect(nextDueAt({ ...base, lastAttemptAt: at(0) }, 'needs_admin', policy, now)).toBe(at(24 * HOUR));
  });

  it('failing: after the longest back-off for the number of failures', () => {
    expect(nextDueAt({ ...base, failingSince: at(-HOUR), lastAttemptAt: at(0), consecutiveFailures: 3 }, 'connected', policy, now)).toBe(at(4 * 60_000));
  });
});

describe('back-off', () => {
  it('doubles per failure, between half and all of it, up to 30 minutes', () => {
    expect(retryDelayMs(1, policy, () => 1)).toBe(60_000);
    expect(retryDelayMs(1, policy, () => 0)).toBe(30_000);
    expect(retryDelayMs(4, policy, () => 1)).toBe(8 * 60_000);
    expect(retryDelayMs(20, policy, () => 1)).toBe(30 * 60_000);
  });
});

describe('degraded', () => {
  it('after 72 hours of continuous transient failure', () => {
    expect(isDegraded({ failingSince: at(-71 * HOUR) }, policy, now)).toBe(false);
    expect(isDegraded({ failingSince: at(-72 * HOUR) }, policy, now)).toBe(true);
    expect(isDegraded({}, policy, now)).toBe(false);
  });
});

describe('credential expiry levels', () => {
  it('ok, then a warning from 30 days, critical from 7, expired after', () => {
    expect(credentialLevel(at(31 * 24 * HOUR), now)).toBe('ok');
    expect(credentialLevel(at(30 * 24 * HOUR), now)).toBe('warning');
    expect(credentialLevel(at(7 * 24 * HOUR), now)).toBe('critical');
    expect(credentialLevel(at(-1), now)).toBe('expired');
    expect(credentialLevel(undefined, now)).toBe('unknown');
  });
});
