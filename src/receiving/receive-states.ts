import { randomUUID } from 'node:crypto';
import type { Mailbox } from '../domain/mailbox.js';
import { newReceiveState, type ReceiveState } from '../domain/receive-state.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError, ConcurrencyError, UNCHANGED, type Versioned } from '../store/table-repository.js';

/**
 * The receive-state rows and the lease a look holds on one. The lease is a conditional write (the
 * row's ETag): of two instances that take the same poll message, one looks and the other leaves.
 * A lease expires, so one whose holder died frees itself. Everything a look writes afterwards is
 * a read-modify-write of the row as it is then, so a notification that changed the row meanwhile
 * (a removed subscription) is not undone.
 */

export interface ReceiveStatesDeps {
  states: Repositories['receiveState'];
  now(): Date;
  /** This instance, as lease holder. */
  owner: string;
  /** Longer than any look takes. */
  leaseMs: number;
}

export interface HeldPoll {
  state: ReceiveState;
  /** When the lease was taken: a rerun asked for after this is one this look did not cover. */
  startedAt: Date;
  /** Applies the look's outcome to the row as it is now and lets the lease go. */
  finish(change: (state: ReceiveState) => ReceiveState): Promise<ReceiveState | undefined>;
}

export type ReceiveStateKey = Pick<ReceiveState, 'customerId' | 'connectionId' | 'mailboxId'>;

const keyOf = (state: ReceiveStateKey) => keys.receiveState(state.customerId, state.connectionId, state.mailboxId);

export class ReceiveStates {
  constructor(private readonly deps: ReceiveStatesDeps) {}

  async get(key: ReceiveStateKey): Promise<ReceiveState | undefined> {
    return (await this.deps.states.get(keyOf(key)))?.value;
  }

  /** The row of a mailbox that receives (with its ETag), made when missing; undefined for one that does not receive. */
  async ensure(mailbox: Mailbox): Promise<Versioned<ReceiveState> | undefined> {
    const fresh = newReceiveState(mailbox, this.deps.now());
    if (!fresh) return undefined;
    const key = keyOf(fresh);
    const found = await this.deps.states.get(key);
    if (found) return found;
    try {
      return await this.deps.states.create(key, fresh);
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      return this.deps.states.get(key);
    }
  }

  async remove(key: ReceiveStateKey): Promise<void> {
    await this.deps.states.delete(keyOf(key));
  }

  /** Changes the row unless it is gone. */
  async change(key: ReceiveStateKey, change: (state: ReceiveState) => ReceiveState | typeof UNCHANGED): Promise<ReceiveState | undefined> {
    return (await this.deps.states.update(keyOf(key), (current) => (current ? change(current) : UNCHANGED)))?.value;
  }

  /**
   * Takes the lease, or undefined when a live one is held by another look. `read` is the row as
   * the caller just read it, to save a read; when it went stale meanwhile, the row is read again.
   */
  async acquire(key: ReceiveStateKey, read?: Versioned<ReceiveState>): Promise<HeldPoll | undefined> {
    const first = read ?? (await this.deps.states.get(keyOf(key)));
    if (!first) return undefined;
    const owner = `${this.deps.owner}/${randomUUID()}`;
    const take = async (current: Versioned<ReceiveState>): Promise<HeldPoll | undefined | 'stale'> => {
      const now = this.deps.now();
      if (current.value.lease && current.value.lease.expiresAt > now.toISOString()) return undefined;
      const leased: ReceiveState = { ...current.value, lease: { owner, expiresAt: new Date(now.getTime() + this.deps.leaseMs).toISOString() } };
      let written: Versioned<ReceiveState>;
      try {
        written = await this.deps.states.replace(keyOf(key), leased, current.etag);
      } catch (error) {
        if (error instanceof ConcurrencyError) return 'stale';
        throw error;
      }
      return { state: leased, startedAt: now, finish: (change) => this.finish(key, written, owner, change) };
    };
    const taken = await take(first);
    if (taken !== 'stale') return taken;
    // Someone wrote the row since it was read (a notification, another look): read it and try once more.
    const again = await this.deps.states.get(keyOf(key));
    const retried = again && (await take(again));
    return retried === 'stale' ? undefined : retried;
  }

  /** Writes the look's outcome with the lease's ETag (one request); when the row changed meanwhile, onto the row as it is now. */
  private async finish(key: ReceiveStateKey, leased: Versioned<ReceiveState>, owner: string, change: (state: ReceiveState) => ReceiveState): Promise<ReceiveState | undefined> {
    const apply = (current: ReceiveState) => {
      const next = change(current);
      // Only our own lease is ours to clear: one that expired may have been taken meanwhile.
      if (next.lease?.owner === owner) delete next.lease;
      return next;
    };
    try {
      return (await this.deps.states.replace(keyOf(key), apply(leased.value), leased.etag)).value;
    } catch (error) {
      if (!(error instanceof ConcurrencyError)) throw error;
      return this.change(key, apply);
    }
  }
}
