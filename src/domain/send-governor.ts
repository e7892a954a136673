import { z } from 'zod';

/**
 * Microsoft's per-mailbox limits, kept by the connector before Microsoft has to enforce them
 * (microsoft.md §6.1, §6.3): at most `concurrent` requests in flight for a mailbox, and at most
 * `perMinute` messages submitted in any 60 seconds. The state is one small row per mailbox that
 * every instance updates with optimistic concurrency, so the limits hold across instances.
 *
 * Sends are booked in order: a message that may not go now gets the earliest time it may, and that
 * time is booked for it, so messages queued together go out one after another at the allowed rate
 * instead of all waking at once. A booking counts when it is made, whether or not the send then
 * succeeds, which errs on the side of sending too slowly.
 */

export interface GovernorLimits {
  concurrent: number;
  perMinute: number;
  /**
   * Added to the 60-second window when booking: a booked send may start up to this late (the
   * queue's polling interval, host.json maxPollingInterval) and the window still holds.
   */
  marginMs: number;
}

export const DEFAULT_GOVERNOR_LIMITS: GovernorLimits = { concurrent: 4, perMinute: 30, marginMs: 2_000 };
export const RATE_WINDOW_MS = 60_000;
/** A slot a worker never gave back (it crashed) frees itself after this. */
export const SLOT_HOLD_MS = 120_000;

export const governorStateSchema = z.object({
  /** Booked sends, oldest first: id, epoch milliseconds, and whether its request has started (its slot was taken). */
  sends: z.array(z.object({ id: z.string(), at: z.number(), started: z.boolean().optional() })),
  /** Requests in flight: id and until when the slot is held. */
  slots: z.array(z.object({ id: z.string(), until: z.number() })),
  /** Microsoft said to wait until then (429/503 Retry-After, or an SMTP throttling reply). */
  blockedUntil: z.number().optional(),
});
export type GovernorState = z.infer<typeof governorStateSchema>;

export const EMPTY_GOVERNOR_STATE: GovernorState = { sends: [], slots: [] };

/**
 * Drops what no longer counts: sends older than the window and its margin, and bookings whose time
 * passed more than the margin ago without their request starting. Those held a time their message
 * did not use (it came back late, behind a long queue, or not at all); counting them would keep
 * every late message behind bookings nobody is going to use. A message that comes back to a
 * dropped booking is booked again, as one that never had one.
 */
function pruned(state: GovernorState, now: number, limits: GovernorLimits): GovernorState {
  const horizon = now - RATE_WINDOW_MS - limits.marginMs;
  const stale = now - limits.marginMs;
  return {
    sends: state.sends.filter((send) => send.at > horizon && (send.started === true || send.at >= stale)),
    slots: state.slots.filter((slot) => slot.until > now),
    ...(state.blockedUntil !== undefined && state.blockedUntil > now && { blockedUntil: state.blockedUntil }),
  };
}

/** The earliest time a send booked now may go: after every earlier booking, and with the window's count below the limit. */
function earliestSend(state: GovernorState, now: number, limits: GovernorLimits): number {
  const last = state.sends.at(-1)?.at ?? 0;
  const limiting = state.sends.length >= limits.perMinute ? (state.sends[state.sends.length - limits.perMinute]?.at ?? 0) + RATE_WINDOW_MS + limits.marginMs : 0;
  return Math.max(now, last, limiting, state.blockedUntil ?? 0);
}

/**
 * The most bookings a row keeps: each is about 60 characters of JSON and a Table Storage string
 * holds 32K, so a long backlog is not booked ahead; its messages come back when the booked ones
 * are through and book then (SEND_RATE_PER_MINUTE is capped well below this).
 */
export const MAX_BOOKINGS = 450;

/** `booked: false` means the time is an estimate: come back then and book again. */
export type BookingResult = { state: GovernorState; at: number; booked: boolean };

/** Books the next send for `id` (the same id again keeps its booking). */
export function bookSend(current: GovernorState, id: string, now: number, limits: GovernorLimits): BookingResult {
  const state = pruned(current, now, limits);
  const existing = state.sends.find((send) => send.id === id);
  if (existing) return { state, at: existing.at, booked: true };
  const at = earliestSend(state, now, limits);
  if (state.sends.length >= MAX_BOOKINGS) return { state, at: Math.max(at, (state.sends.at(-1)?.at ?? now) + 1_000), booked: false };
  return { state: { ...state, sends: [...state.sends, { id, at }] }, at, booked: true };
}

/**
 * `blocked`: Microsoft asked the mailbox to wait until `retryAt`. `busy`: every slot is taken;
 * `retryAt` is when the oldest would free itself if its worker died, though slots are normally
 * given back within a second. `rebooked`: going now would make one send too many in the last 60
 * seconds; it was booked again, at `retryAt`, and `state` holds that.
 */
export type SlotResult =
  | { state: GovernorState; granted: true }
  | { state: GovernorState; granted: false; reason: 'blocked' | 'busy' | 'rebooked'; retryAt: number };

/**
 * A request slot for a message whose booked time has come. Microsoft counts requests when they
 * arrive, so what decides is the sends that really started: the message goes now when fewer than
 * `perMinute` started in the last 60 seconds (checked at every start, which keeps every 60 seconds
 * within the limit), and its booking moves to now and is marked started. When they are full (it
 * came back early, or late behind a long queue while others went), it is booked again behind the
 * others. Bookings only say when to come back; a message with none (dropped, or never made) is
 * treated the same way.
 */
export function takeSlot(current: GovernorState, id: string, now: number, limits: GovernorLimits, holdMs = SLOT_HOLD_MS, slotId = id): SlotResult {
  const state = pruned(current, now, limits);
  if (state.blockedUntil !== undefined) return { state, granted: false, reason: 'blocked', retryAt: state.blockedUntil };
  const others = state.slots.filter((slot) => slot.id !== slotId);
  if (others.length >= limits.concurrent) {
    return { state, granted: false, reason: 'busy', retryAt: Math.min(...others.map((slot) => slot.until)) };
  }
  const rest = state.sends.filter((send) => send.id !== id);
  const startedInWindow = rest.filter((send) => send.started === true && send.at > now - RATE_WINDOW_MS).length;
  if (startedInWindow >= limits.perMinute) {
    const again = bookSend({ ...state, sends: rest }, id, now, limits);
    return { state: again.state, granted: false, reason: 'rebooked', retryAt: again.at };
  }
  const sends = [...rest, { id, at: now, started: true }].sort((a, b) => a.at - b.at);
  return { state: { ...state, sends, slots: [...others, { id: slotId, until: now + holdMs }] }, granted: true };
}

export function releaseSlot(current: GovernorState, id: string): GovernorState {
  return { ...current, slots: current.slots.filter((slot) => slot.id !== id) };
}

/** Microsoft asked the mailbox to wait: nobody starts a request before `until`. */
export function block(current: GovernorState, until: number): GovernorState {
  return { ...current, blockedUntil: Math.max(current.blockedUntil ?? 0, until) };
}

