import { z } from 'zod';
import { CONNECTION_MODES, type ConnectionState } from './connection.js';
import type { TokenFailure } from './token-failure.js';

/**
 * How a connection's tokens are doing, kept apart from the connection itself: this row is written
 * on every refresh and holds the refresh lease, so the connection row (what the vendor reads and
 * edits) never contends with it. It also says when the connection is next due for a refresh.
 */

export const connectionHealthSchema = z.object({
  customerId: z.string(),
  connectionId: z.string(),
  appId: z.string(),
  mode: z.enum(CONNECTION_MODES),
  /** When the refresh timer should next enqueue the connection (ISO; `NEVER` while it waits for a person). */
  dueAt: z.iso.datetime(),
  /** Raised each time the token cache in the secret store is rewritten: an instance whose copy is older reads it again. */
  cacheVersion: z.int().nonnegative(),
  /** Who is refreshing right now; a lease past its expiry is free (its holder died). */
  lease: z.object({ owner: z.string(), expiresAt: z.iso.datetime() }).optional(),
  /** Last time a transport asked for a token that had to come from the token cache or Microsoft. */
  usedAt: z.iso.datetime().optional(),
  /** Earliest expiry of the access tokens the last refresh obtained. */
  accessTokenExpiresAt: z.iso.datetime().optional(),
  lastSuccessAt: z.iso.datetime().optional(),
  lastAttemptAt: z.iso.datetime().optional(),
  /** Start of the current run of transient failures. */
  failingSince: z.iso.datetime().optional(),
  consecutiveFailures: z.int().nonnegative(),
  lastFailure: z.object({ kind: z.string(), code: z.string(), at: z.iso.datetime() }).optional(),
});
export type ConnectionHealth = z.infer<typeof connectionHealthSchema>;

/** The due time of a connection that waits for a person (a reconnect) rather than for the clock. */
export const NEVER = '9999-12-31T23:59:59.000Z';

export interface RefreshPolicy {
  /** Refresh at least this often, so an idle refresh token stays far from Microsoft's 90-day inactivity limit. */
  idleRefreshMs: number;
  /** A connection in use is refreshed when its access token expires within this (more than the timer's period). */
  expiringWithinMs: number;
  /** How recent a token request must be for a connection to count as in use. */
  inUseWindowMs: number;
  /** How often a connection that needs its administrator is checked again. */
  adminRecheckMs: number;
  /** Continuous transient failure for this long turns a connection `degraded`. */
  degradedAfterMs: number;
  /** Back-off after transient failures: the first delay, doubled per failure up to the maximum, with jitter. */
  retryBaseMs: number;
  retryMaxMs: number;
}

export const DEFAULT_REFRESH_POLICY: RefreshPolicy = {
  idleRefreshMs: 24 * 3_600_000,
  expiringWithinMs: 20 * 60_000,
  inUseWindowMs: 2 * 3_600_000,
  adminRecheckMs: 24 * 3_600_000,
  degradedAfterMs: 72 * 3_600_000,
  retryBaseMs: 60_000,
  retryMaxMs: 30 * 60_000,
};

/** When the connection should next be refreshed, given its health and state. */
export function nextDueAt(health: ConnectionHealth, state: ConnectionState, policy: RefreshPolicy, now: Date): string {
  if (state === 'needs_reauth' || state === 'disconnected' || state === 'pending') return NEVER;
  const from = (iso: string | undefined) => (iso === undefined ? now.getTime() : Date.parse(iso));
  if (state === 'needs_admin' || state === 'app_misconfigured') return new Date(from(health.lastAttemptAt) + policy.adminRecheckMs).toISOString();
  if (health.failingSince !== undefined) {
    // Backing off: the delay after the last attempt (the queue retry normally comes first).
    return new Date(from(health.lastAttemptAt) + retryDelayMs(health.consecutiveFailures, policy, () => 1)).toISOString();
  }
  let due = from(health.lastSuccessAt) + policy.idleRefreshMs;
  const inUse = health.usedAt !== undefined && now.getTime() - Date.parse(health.usedAt) < policy.inUseWindowMs;
  if (inUse && health.accessTokenExpiresAt !== undefined) due = Math.min(due, Date.parse(health.accessTokenExpiresAt) - policy.expiringWithinMs);
  return new Date(due).toISOString();
}

export function isDue(health: ConnectionHealth, now: Date): boolean {
  return health.dueAt <= now.toISOString();
}

/**
 * Wait before retrying after `failures` consecutive transient failures: exponential, capped, with
 * jitter between half and all of it so connections that failed together do not retry together.
 * (msal itself keeps a token endpoint's Retry-After and answers from it until it passes.)
 */
export function retryDelayMs(failures: number, policy: RefreshPolicy, random: () => number = Math.random): number {
  const exponential = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exponential * (0.5 + random() / 2));
}

/** True when transient failures have lasted long enough for a connected connection to be called degraded. */
export function isDegraded(health: Pick<ConnectionHealth, 'failingSince'>, policy: RefreshPolicy, now: Date): boolean {
  return health.failingSince !== undefined && now.getTime() - Date.parse(health.failingSince) >= policy.degradedAfterMs;
}

/** What a refresh or token request came to, as the lease holder reports it when letting go. */
export type LeaseOutcome =
  | {
      kind: 'success';
      /** The token came from Microsoft (a refresh), not from the cache. */
      fromNetwork: boolean;
      cacheRewritten: boolean;
      accessTokenExpiresAt?: Date;
      /** A transport asked for the token (not the refresh timer). */
      used: boolean;
      state: ConnectionState;
    }
  | { kind: 'failure'; failure: TokenFailure; state: ConnectionState; used: boolean }
  /** A sign-in stored new tokens: the cache changed, the failure history ends, the schedule starts over. */
  | { kind: 'signed_in' }
  /**
   * Nothing to report: the schedule stays as it was, so the work is done again (the holder failed
   * after the token call, say). A cache the holder rewrote still moves the version on.
   */
  | { kind: 'nothing'; cacheRewritten?: boolean };

/** A connection's refresh lease, held: only its holder redeems the refresh token. */
export interface HeldLease {
  /** The token cache version the holder must have (or read) before using the cache. */
  cacheVersion: number;
  health: ConnectionHealth;
  /**
   * Extends the lease, false when it is no longer ours (it expired and another holder took it):
   * checked right before the token cache is written, so a holder that overran never overwrites a newer one.
   */
  renew(): Promise<boolean>;
  release(outcome: LeaseOutcome): Promise<ConnectionHealth>;
}
