import { block, bookSend, EMPTY_GOVERNOR_STATE, releaseSlot, takeSlot, type GovernorLimits, type GovernorState, type SlotResult } from '../domain/send-governor.js';
import { keys, type Repositories } from '../store/repositories.js';
import { UNCHANGED, type Versioned } from '../store/table-repository.js';

/**
 * Microsoft's per-mailbox limits kept across instances: the rules are domain/send-governor.ts,
 * the state one Table Storage row per mailbox written with ETags, so two instances never both
 * take the last slot.
 *
 * Within an instance, the changes to one mailbox's row go through one lane: while a write is in
 * flight, the changes that arrive wait and then go together in the next read-modify-write. The
 * queue runs up to 24 messages at once, often of one mailbox; each writing the row alone would
 * mostly meet the others' ETags and retry. A worker waiting for a slot is woken when one of this
 * instance's workers gives one back, and looks again now and then for other instances' slots.
 */

export interface SendGovernorDeps {
  state: Repositories['sendGovernor'];
  limits: GovernorLimits;
  now(): Date;
  /** How a waiting worker pauses (tests move a clock); a slot given back here still wakes it. */
  sleep?: (ms: number) => Promise<void>;
}

export type SlotGrant = { granted: true } | { granted: false; retryAt: Date };

/** How long a message waits in its worker for a free slot before it goes back to the queue. */
const SLOT_WAIT_MS = 2_000;
/** When a worker found every slot taken for SLOT_WAIT_MS: about this long before it tries again. */
const BUSY_RETRY_MS = 1_000;
/** How often a waiting worker looks at the row for a slot another instance gave back. */
const SLOT_RECHECK_MS = 250;
/** Instances contend for the row only with each other now, but a busy mailbox can still have several. */
const UPDATE_ATTEMPTS = 30;
/** Mailboxes whose last written row version an instance keeps, the most recently written first. */
const KNOWN_VERSIONS_KEPT = 2_000;

type Mutation = (state: GovernorState) => GovernorState | typeof UNCHANGED;

interface Lane {
  waiting: { mutate: Mutation; done: () => void; failed: (error: unknown) => void }[];
  writing: boolean;
  /** Workers waiting for a slot of this mailbox: called when one was given back here. */
  slotWaiters: Set<() => void>;
}

export class SendGovernor {
  private readonly lanes = new Map<string, Lane>();
  /**
   * The row as this instance last wrote or read it, by mailbox: the next write starts from it
   * instead of reading (one Table request less per change). When another instance wrote since,
   * its ETag refuses the write and the change is made again on the row as it is.
   */
  private readonly known = new Map<string, Versioned<GovernorState>>();

  constructor(private readonly deps: SendGovernorDeps) {}

  /**
   * When the send `bookingId` may go (booked on the first call; the same id gets the same time).
   * `booked: false`: come back then and book again. With `slot`, a booking that is due now takes its
   * request slot in the same write (`slotTaken`), which is the common case and saves a round trip.
   */
  async book(mailbox: string, bookingId: string, slot?: { id: string; holdMs: number }): Promise<{ at: Date; booked: boolean; slotTaken: boolean }> {
    const outcome = { at: 0, booked: true, slotTaken: false };
    await this.update(mailbox, (state) => {
      const now = this.now();
      const result = bookSend(state, bookingId, now, this.deps.limits);
      outcome.at = result.at;
      outcome.booked = result.booked;
      outcome.slotTaken = false;
      if (!slot || !result.booked || result.at > now) return result.state;
      const taken = takeSlot(result.state, bookingId, now, this.deps.limits, slot.holdMs, slot.id);
      if (!taken.granted) return result.state;
      outcome.slotTaken = true;
      return taken.state;
    });
    return { at: new Date(outcome.at), booked: outcome.booked, slotTaken: outcome.slotTaken };
  }

  /**
   * A request slot, waiting briefly when all are taken. Slots come back within a second or so,
   * so a worker that still finds none is told to come back shortly, not when a dead worker's slot
   * would expire; a mailbox Microsoft blocked is told when the block ends, and a message that came
   * too late for its booking when its new one is.
   */
  async acquire(mailbox: string, bookingId: string, slotId: string, holdMs: number): Promise<SlotGrant> {
    const deadline = this.now() + SLOT_WAIT_MS;
    for (;;) {
      const outcome: { result?: SlotResult } = {};
      await this.update(mailbox, (state) => {
        const result = takeSlot(state, bookingId, this.now(), this.deps.limits, holdMs, slotId);
        outcome.result = result;
        return result.granted || result.reason === 'rebooked' ? result.state : UNCHANGED;
      });
      const result = outcome.result;
      if (!result || result.granted) return { granted: true };
      if (result.reason !== 'busy') return { granted: false, retryAt: new Date(result.retryAt) };
      const left = deadline - this.now();
      if (left <= 0) return { granted: false, retryAt: new Date(this.now() + BUSY_RETRY_MS + Math.random() * BUSY_RETRY_MS) };
      await this.slotGivenBack(mailbox, Math.min(left, SLOT_RECHECK_MS * (0.5 + Math.random())));
    }
  }

  async release(mailbox: string, slotId: string): Promise<void> {
    await this.update(mailbox, (state) => (state.slots.some((slot) => slot.id === slotId) ? releaseSlot(state, slotId) : UNCHANGED));
    // All of them: their attempts go in one write, and one that cannot use the slot leaves it to the next.
    for (const wake of [...(this.lanes.get(mailbox.toLowerCase())?.slotWaiters ?? [])]) wake();
  }

  /** Microsoft said to wait: nothing starts on this mailbox before `until`. */
  async block(mailbox: string, until: Date): Promise<void> {
    await this.update(mailbox, (state) => block(state, until.getTime()));
  }

  private now(): number {
    return this.deps.now().getTime();
  }

  /** Resolves when a slot of `mailbox` is given back in this instance, or after `ms`. */
  private slotGivenBack(mailbox: string, ms: number): Promise<void> {
    const lane = this.lane(mailbox);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const wake = () => {
        if (!lane.slotWaiters.delete(wake)) return;
        clearTimeout(timer);
        this.forgetIfIdle(mailbox, lane);
        resolve();
      };
      lane.slotWaiters.add(wake);
      if (this.deps.sleep) void this.deps.sleep(ms).then(wake);
      else timer = setTimeout(wake, ms);
    });
  }

  private remember(name: string, version: Versioned<GovernorState> | undefined): void {
    this.known.delete(name);
    if (!version) return;
    this.known.set(name, version);
    if (this.known.size > KNOWN_VERSIONS_KEPT) {
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
  }

  private forgetIfIdle(mailbox: string, lane: Lane): void {
    if (!lane.writing && lane.waiting.length === 0 && lane.slotWaiters.size === 0) this.lanes.delete(mailbox.toLowerCase());
  }

  private lane(mailbox: string): Lane {
    const name = mailbox.toLowerCase();
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = { waiting: [], writing: false, slotWaiters: new Set() };
      this.lanes.set(name, lane);
    }
    return lane;
  }

  private update(mailbox: string, mutate: Mutation): Promise<void> {
    const lane = this.lane(mailbox);
    return new Promise<void>((resolve, reject) => {
      lane.waiting.push({ mutate, done: resolve, failed: reject });
      if (!lane.writing) void this.write(mailbox, lane);
    });
  }

  /** Writes what waits in the lane, in turns, each turn one read-modify-write for all of it. */
  private async write(mailbox: string, lane: Lane): Promise<void> {
    lane.writing = true;
    const name = mailbox.toLowerCase();
    try {
      while (lane.waiting.length > 0) {
        const turn = lane.waiting.splice(0);
        try {
          const written = await this.deps.state.update(
            keys.sendGovernor(mailbox),
            (current) => {
              let state = current ?? EMPTY_GOVERNOR_STATE;
              let changed = false;
              for (const { mutate } of turn) {
                const next = mutate(state);
                if (next !== UNCHANGED) {
                  state = next;
                  changed = true;
                }
              }
              return changed ? state : UNCHANGED;
            },
            { maxAttempts: UPDATE_ATTEMPTS, known: this.known.get(name) },
          );
          this.remember(name, written);
          for (const { done } of turn) done();
        } catch (error) {
          this.known.delete(name);
          for (const { failed } of turn) failed(error);
        }
      }
    } finally {
      lane.writing = false;
      this.forgetIfIdle(mailbox, lane);
    }
  }
}
