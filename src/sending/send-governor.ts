import { block, bookSend, EMPTY_GOVERNOR_STATE, releaseSlot, takeSlot, type GovernorLimits, type GovernorState, type SlotResult } from '../domain/send-governor.js';
import { keys, type Repositories } from '../store/repositories.js';
import { UNCHANGED } from '../store/table-repository.js';

/**
 * Microsoft's per-mailbox limits kept across instances: the rules are domain/send-governor.ts,
 * the state one Table Storage row per mailbox written with ETags, so two instances never both
 * take the last slot.
 */

export interface SendGovernorDeps {
  state: Repositories['sendGovernor'];
  limits: GovernorLimits;
  now(): Date;
  sleep?: (ms: number) => Promise<void>;
}

export type SlotGrant = { granted: true } | { granted: false; retryAt: Date };

/** How long a message waits in its worker for a free slot before it goes back to the queue. */
const SLOT_WAIT_MS = 2_000;
/** When a worker found every slot taken for SLOT_WAIT_MS: about this long before it tries again. */
const BUSY_RETRY_MS = 1_000;
/** Under optimistic concurrency, many workers of one mailbox retry often; give them room. */
const UPDATE_ATTEMPTS = 30;

export class SendGovernor {
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly deps: SendGovernorDeps) {
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** When the send `bookingId` may go (booked on the first call; the same id gets the same time). `booked: false`: come back then and book again. */
  async book(mailbox: string, bookingId: string): Promise<{ at: Date; booked: boolean }> {
    const outcome = { at: 0, booked: true };
    await this.update(mailbox, (state) => {
      const result = bookSend(state, bookingId, this.now(), this.deps.limits);
      outcome.at = result.at;
      outcome.booked = result.booked;
      return result.state;
    });
    return { at: new Date(outcome.at), booked: outcome.booked };
  }

  /**
   * A request slot, waiting briefly when all are taken. Slots come back within a second or so,
   * so a worker that still finds none is told to come back shortly, not when a dead worker's slot
   * would expire; a mailbox Microsoft blocked is told when the block ends.
   */
  async acquire(mailbox: string, bookingId: string, slotId: string, holdMs: number): Promise<SlotGrant> {
    const deadline = this.now() + SLOT_WAIT_MS;
    for (let pause = 25; ; pause = Math.min(pause * 2, 200)) {
      const outcome: { result?: SlotResult } = {};
      await this.update(mailbox, (state) => {
        const result = takeSlot(state, bookingId, this.now(), this.deps.limits, holdMs, slotId);
        outcome.result = result;
        return result.granted ? result.state : UNCHANGED;
      });
      const result = outcome.result;
      if (!result || result.granted) return { granted: true };
      if (result.reason === 'blocked') return { granted: false, retryAt: new Date(result.retryAt) };
      if (this.now() >= deadline) return { granted: false, retryAt: new Date(this.now() + BUSY_RETRY_MS + Math.random() * BUSY_RETRY_MS) };
      await this.sleep(pause + Math.random() * pause);
    }
  }

  async release(mailbox: string, slotId: string): Promise<void> {
    await this.update(mailbox, (state) => (state.slots.some((slot) => slot.id === slotId) ? releaseSlot(state, slotId) : UNCHANGED));
  }

  /** Microsoft said to wait: nothing starts on this mailbox before `until`. */
  async block(mailbox: string, until: Date): Promise<void> {
    await this.update(mailbox, (state) => block(state, until.getTime()));
  }

  private now(): number {
    return this.deps.now().getTime();
  }

  private async update(mailbox: string, mutate: (state: GovernorState) => GovernorState | typeof UNCHANGED): Promise<void> {
    await this.deps.state.update(keys.sendGovernor(mailbox), (current) => mutate(current ?? EMPTY_GOVERNOR_STATE), { maxAttempts: UPDATE_ATTEMPTS });
  }
}
