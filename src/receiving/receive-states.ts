import { randomUUID } from 'node:crypto';
import type { Mailbox } from '../domain/mailbox.js';
import { newReceiveState, type ReceiveState } from '../domain/receive-state.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError, ConcurrencyError, UNCHANGED } from '../store/table-repository.js';

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

  /** The row of a mailbox that receives, made when missing; undefined for one that does not receive. */
  async ensure(mailbox: Mailbox): Promise<ReceiveState | undefined> {
    const fresh = newReceiveState(mailbox, this.deps.now());
    if (!fresh) return undefined;
    const key = keyOf(fresh);
    const found = await this.deps.states.get(key);
    if (found) return found.value;
    try {
      return (await this.deps.states.create(key, fresh)).value;
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      return (await this.deps.states.get(key))?.value;
    }
  }

  async remove(key: ReceiveStateKey): Promise<void> {
    await this.deps.states.delete(keyOf(key));
  }

  /** Changes the row unless it is gone. */
  async change(key: ReceiveStateKey, change: (state: ReceiveState) => ReceiveState | typeof UNCHANGED): Promise<ReceiveState | undefined> {
    return (await this.deps.states.update(keyOf(key), (current) => (current ? change(current) : UNCHANGED)))?.value;
  }

  /** Takes the lease, or undefined when a live one is held by another look. */
  async acquire(key: ReceiveStateKey): Promise<HeldPoll | undefined> {
    const current = await this.deps.states.get(keyOf(key));
    if (!current) return undefined;
    const now = this.deps.now();
    if (current.value.lease && current.value.lease.expiresAt > now.toISOString()) return undefined;
    const owner = `${this.deps.owner}/${randomUUID()}`;
    const leased: ReceiveState = { ...current.value, lease: { owner, expiresAt: new Date(now.getTime() + this.deps.leaseMs).toISOString() } };
    try {
      await this.deps.states.replace(keyOf(key), leased, current.etag);
    } catch (error) {
      if (error instanceof ConcurrencyError) return undefined;
      throw error;
    }
    return {
      state: leased,
      startedAt: now,
      finish: (change) =>
        this.change(key, (now) => {
          const next = change(now);
          // Only our own lease is ours to clear: one that expired may have been taken meanwhile.
          if (next.lease?.owner === owner) delete next.lease;
          return next;
        }),
    };
  }
}
