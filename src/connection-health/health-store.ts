import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from '../domain/connection.js';
import { nextDueAt, type ConnectionHealth, type HeldLease, type LeaseOutcome, type RefreshPolicy } from '../domain/connection-health.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError, ConcurrencyError, UNCHANGED, type Versioned } from '../store/table-repository.js';

/**
 * The connection-health rows and the refresh lease they carry. The lease is a conditional write
 * (the row's ETag): of many instances that try at once exactly one wins, the others see it held.
 * A lease has an expiry, so one whose holder died frees itself.
 */

export interface HealthStoreDeps {
  health: Repositories['connectionHealth'];
  policy: RefreshPolicy;
  now(): Date;
  /** This instance, as lease holder. */
  owner: string;
  /** How long a lease lasts unless released: longer than any token request takes. */
  leaseMs?: number;
}

const DEFAULT_LEASE_MS = 60_000;
const POLL_MS = 200;

export class ConnectionHealthStore {
  constructor(private readonly deps: HealthStoreDeps) {}

  async get(customerId: string, connectionId: string): Promise<ConnectionHealth | undefined> {
    return (await this.deps.health.get(keys.connectionHealth(customerId, connectionId)))?.value;
  }

  /** The row of a connection, made when it is missing (a connection connected before health rows existed). */
  async ensure(connection: Connection): Promise<Versioned<ConnectionHealth>> {
    const key = keys.connectionHealth(connection.customerId, connection.id);
    const found = await this.deps.health.get(key);
    if (found) return found;
    try {
      return await this.deps.health.create(key, this.fresh(connection));
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      const raced = await this.deps.health.get(key);
      if (!raced) throw error;
      return raced;
    }
  }

  /**
   * A sign-in stored new tokens without holding the lease (no lease could be had in time): the
   * same as releasing one with `signed_in`.
   */
  async signedIn(connection: Connection): Promise<void> {
    await this.deps.health.update(keys.connectionHealth(connection.customerId, connection.id), (current) =>
      this.afterOutcome(current ?? this.fresh(connection), { kind: 'signed_in' }),
    );
  }

  /** Not due before `until` (while the app's credential is known to be refused, say). */
  async postpone(connection: Connection, until: Date): Promise<void> {
    const dueAt = until.toISOString();
    await this.deps.health.update(keys.connectionHealth(connection.customerId, connection.id), (current) =>
      !current || current.dueAt >= dueAt ? UNCHANGED : { ...current, dueAt },
    );
  }

  /** Sets when the connection is next due (after a state change the refresh did not make). */
  async reschedule(connection: Connection): Promise<void> {
    const now = this.deps.now();
    await this.deps.health.update(keys.connectionHealth(connection.customerId, connection.id), (current) => {
      if (!current) return UNCHANGED;
      const dueAt = nextDueAt(current, connection.state, this.deps.policy, now);
      return dueAt === current.dueAt ? UNCHANGED : { ...current, dueAt };
    });
  }

  /**
   * Takes the refresh lease, or undefined when another holder has it, or when `needed` says the row
   * (read in the same conditional write) no longer needs the work: a refresh finished meanwhile.
   */
  async acquire(connection: Connection, needed?: (health: ConnectionHealth) => boolean): Promise<HeldLease | undefined> {
    const current = await this.ensure(connection);
    const now = this.deps.now();
    if (current.value.lease && current.value.lease.expiresAt > now.toISOString()) return undefined;
    if (needed && !needed(current.value)) return undefined;
    // One holder per acquisition, not per instance: two invocations on one instance contend like any two.
    const owner = `${this.deps.owner}/${randomUUID()}`;
    const leased: ConnectionHealth = {
      ...current.value,
      lease: { owner, expiresAt: new Date(now.getTime() + (this.deps.leaseMs ?? DEFAULT_LEASE_MS)).toISOString() },
    };
    try {
      const written = await this.deps.health.replace(keys.connectionHealth(connection.customerId, connection.id), leased, current.etag);
      return this.held(connection, written, owner);
    } catch (error) {
      if (error instanceof ConcurrencyError) return undefined;
      throw error;
    }
  }

  /** Takes the lease, waiting up to `waitMs` for a holder to let go. */
  async acquireWaiting(connection: Connection, waitMs: number): Promise<HeldLease | undefined> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const lease = await this.acquire(connection);
      if (lease || Date.now() >= deadline) return lease;
      await sleep(POLL_MS + Math.random() * POLL_MS);
    }
  }

  private held(connection: Connection, leased: Versioned<ConnectionHealth>, owner: string): HeldLease {
    const key = keys.connectionHealth(connection.customerId, connection.id);
    let written = leased;
    return {
      cacheVersion: written.value.cacheVersion,
      health: written.value,
      renew: async () => {
        const expiresAt = new Date(this.deps.now().getTime() + (this.deps.leaseMs ?? DEFAULT_LEASE_MS)).toISOString();
        try {
          written = await this.deps.health.replace(key, { ...written.value, lease: { owner, expiresAt } }, written.etag);
          return true;
        } catch (error) {
          if (error instanceof ConcurrencyError) return false;
          throw error;
        }
      },
      release: async (outcome) => {
        const apply = (current: ConnectionHealth): ConnectionHealth => {
          const next = this.afterOutcome(current, outcome);
          // Only our own lease is ours to clear: one that expired may have been taken meanwhile.
          if (next.lease?.owner === owner) delete next.lease;
          return next;
        };
        try {
          return (await this.deps.health.replace(key, apply(written.value), written.etag)).value;
        } catch (error) {
          if (!(error instanceof ConcurrencyError)) throw error;
          // Written meanwhile (a sign-in, or our lease expired): apply the outcome to what is there now.
          const updated = await this.deps.health.update(key, (current) => (current ? apply(current) : UNCHANGED));
          return updated?.value ?? written.value;
        }
      },
    };
  }

  private afterOutcome(current: ConnectionHealth, outcome: LeaseOutcome): ConnectionHealth {
    if (outcome.kind === 'nothing') return { ...current, ...(outcome.cacheRewritten === true && { cacheVersion: current.cacheVersion + 1 }) };
    const now = this.deps.now();
    const at = now.toISOString();
    if (outcome.kind === 'signed_in') {
      const next: ConnectionHealth = { ...current, cacheVersion: current.cacheVersion + 1, lastSuccessAt: at, consecutiveFailures: 0 };
      delete next.failingSince;
      delete next.lastFailure;
      delete next.accessTokenExpiresAt;
      next.dueAt = nextDueAt(next, 'connected', this.deps.policy, now);
      return next;
    }
    const next: ConnectionHealth = { ...current, lastAttemptAt: at };
    if (outcome.used) next.usedAt = at;
    if (outcome.kind === 'success') {
      if (outcome.cacheRewritten) next.cacheVersion = current.cacheVersion + 1;
      if (outcome.fromNetwork) {
        next.lastSuccessAt = at;
        next.consecutiveFailures = 0;
        delete next.failingSince;
        delete next.lastFailure;
      }
      if (outcome.accessTokenExpiresAt) next.accessTokenExpiresAt = outcome.accessTokenExpiresAt.toISOString();
    } else {
      next.consecutiveFailures = current.consecutiveFailures + 1;
      next.lastFailure = { kind: outcome.failure.kind, code: outcome.failure.code, at };
      if (outcome.failure.kind === 'transient') next.failingSince = current.failingSince ?? at;
      else delete next.failingSince;
    }
    next.dueAt = nextDueAt(next, outcome.state, this.deps.policy, now);
    return next;
  }

  private fresh(connection: Connection): ConnectionHealth {
    const now = this.deps.now();
    const health: ConnectionHealth = {
      customerId: connection.customerId,
      connectionId: connection.id,
      appId: connection.appId,
      mode: connection.mode,
      dueAt: now.toISOString(),
      cacheVersion: 0,
      consecutiveFailures: 0,
    };
    return { ...health, dueAt: nextDueAt({ ...health, lastSuccessAt: now.toISOString() }, connection.state, this.deps.policy, now) };
  }
}
