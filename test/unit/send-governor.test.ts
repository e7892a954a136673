import { describe, expect, it } from 'vitest';
import {
  DEFAULT_GOVERNOR_LIMITS,
  EMPTY_GOVERNOR_STATE,
  MAX_BOOKINGS,
  RATE_WINDOW_MS,
  SLOT_HOLD_MS,
  block,
  bookSend,
  governorStateSchema,
  releaseSlot,
  takeSlot,
  type GovernorLimits,
  type GovernorState,
} from '../../src/domain/send-governor.js';

/** The per-mailbox send governor (send-governor.ts): booked sends at the allowed rate, request slots, and Microsoft's "wait". */

const limits: GovernorLimits = { perMinute: 30, concurrent: 4, marginMs: 2_500 };
const SPACING = RATE_WINDOW_MS + limits.marginMs;

/** A small seeded generator (mulberry32), so a failing simulation can be run again. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The most times that fall in any half-open window [s, s + windowMs). */
function busiestWindow(times: readonly number[], windowMs = RATE_WINDOW_MS): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while ((sorted[end] ?? 0) - (sorted[start] ?? 0) >= windowMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

/** Books `count` sends at `now`, one after another, and gives their times. */
function bookMany(state: GovernorState, count: number, now: number, prefix = 'm'): { state: GovernorState; times: number[] } {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const booked = bookSend(state, `${prefix}${String(i)}`, now, limits);
    state = booked.state;
    times.push(booked.at);
  }
  return { state, times };
}

/** The state once every booking due by `now` has gone on time (its slot was taken then). */
function goneBy(state: GovernorState, now: number): GovernorState {
  return { ...state, sends: state.sends.map((send) => (send.at <= now ? { ...send, started: true } : send)) };
}

/** Arrival times: bursts of up to 60 messages at once, steady trickles, and idle gaps of up to two minutes. */
function arrivals(random: () => number, count: number): number[] {
  const times: number[] = [];
  let now = 1_700_000_000_000;
  while (times.length < count) {
    const roll = random();
    if (roll < 0.1) {
      const burst = 1 + Math.floor(random() * 60);
      for (let i = 0; i < burst; i++) times.push(now);
    } else {
      times.push(now);
    }
    now += roll < 0.15 ? Math.floor(random() * 120_000) : Math.floor(random() * 3_000);
  }
  return times.slice(0, count);
}

describe('bookSend', () => {
  it('books the first send now', () => {
    const { state, at } = bookSend(EMPTY_GOVERNOR_STATE, 'm1', 1_000, limits);
    expect(at).toBe(1_000);
    expect(state.sends).toEqual([{ id: 'm1', at: 1_000 }]);
  });

  it('gives the same id the same time, and does not count it twice', () => {
    const first = bookSend(EMPTY_GOVERNOR_STATE, 'm1', 0, limits);
    const again = bookSend(first.state, 'm1', limits.marginMs, limits);
    expect(again.at).toBe(0);
    expect(again.state.sends).toEqual([{ id: 'm1', at: 0 }]);
  });

  it('drops a booking whose time passed by more than the margin without its request starting, and books anew', () => {
    // 30 booked at 0, none went (their messages are stuck behind a long queue): they no longer hold the window.
    const { state } = bookMany(EMPTY_GOVERNOR_STATE, 30, 0);
    const late = bookSend(state, 'other', limits.marginMs + 1, limits);
    expect(late.at).toBe(limits.marginMs + 1);
    expect(late.state.sends).toEqual([{ id: 'other', at: limits.marginMs + 1 }]);
    // Ones that did go still count.
    const gone = bookSend(goneBy(state, 0), 'other', limits.marginMs + 1, limits);
    expect(gone.at).toBe(SPACING);
  });

  it('does not change the state it was given', () => {
    const state = bookMany(EMPTY_GOVERNOR_STATE, 35, 0).state;
    const copy = structuredClone(state);
    bookSend(state, 'another', 10_000, limits);
    takeSlot(state, 'm0', 10_000, limits);
    releaseSlot(state, 'm0');
    block(state, 99_000);
    expect(state).toEqual(copy);
  });

  it('does not waste throughput: 90 messages at t=0 go 30 at 0, 30 at 62.5 s, 30 at 125 s', () => {
    const { times } = bookMany(EMPTY_GOVERNOR_STATE, 90, 0);
    expect(times.slice(0, 30)).toEqual(Array<number>(30).fill(0));
    expect(times.slice(30, 60)).toEqual(Array<number>(30).fill(SPACING));
    expect(times.slice(60, 90)).toEqual(Array<number>(30).fill(2 * SPACING));
    expect(SPACING).toBe(62_500);
  });

  it('books after the window\'s oldest send when the window is full, not after the newest', () => {
    let state = EMPTY_GOVERNOR_STATE;
    for (let i = 0; i < 30; i++) state = bookSend(goneBy(state, i * 1_000), `m${String(i)}`, i * 1_000, limits).state;
    // 30 sends at 0 s … 29 s; the 31st may go once the one at 0 s has left the window (plus the margin).
    expect(bookSend(goneBy(state, 30_000), 'm30', 30_000, limits).at).toBe(SPACING);
  });

  it('forgets sends older than the window and its margin', () => {
    const state = goneBy(bookMany(EMPTY_GOVERNOR_STATE, 30, 0).state, 0);
    const later = bookSend(state, 'late', SPACING, limits);
    expect(later.at).toBe(SPACING);
    expect(later.state.sends).toEqual([{ id: 'late', at: SPACING }]);
    expect(bookSend(state, 'just-before', SPACING - 1, limits).state.sends).toHaveLength(31);
  });

  it('an id whose booking was forgotten gets a new one', () => {
    const first = bookSend(EMPTY_GOVERNOR_STATE, 'm1', 0, limits);
    expect(bookSend(first.state, 'm1', SPACING + 10, limits).at).toBe(SPACING + 10);
  });

  it('follows other limits', () => {
    const tight: GovernorLimits = { perMinute: 2, concurrent: 1, marginMs: 0 };
    let state = EMPTY_GOVERNOR_STATE;
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const booked = bookSend(state, `m${String(i)}`, 0, tight);
      state = booked.state;
      times.push(booked.at);
    }
    expect(times).toEqual([0, 0, 60_000, 60_000, 120_000]);
  });

  it(`books at most ${String(MAX_BOOKINGS)} sends ahead; later ones get an estimate to come back at, unbooked`, () => {
    let state = EMPTY_GOVERNOR_STATE;
    for (let i = 0; i < MAX_BOOKINGS; i++) state = bookSend(state, `m${String(i)}`, 0, limits).state;
    expect(state.sends).toHaveLength(MAX_BOOKINGS);
    const last = state.sends.at(-1)?.at ?? 0;
    const overflow = bookSend(state, 'late', 0, limits);
    expect(overflow).toMatchObject({ booked: false, state: { sends: state.sends } });
    expect(overflow.at).toBeGreaterThan(last);
    // The row stays within Table Storage's 32K characters for a string.
    expect(JSON.stringify(state.sends.map((s) => ({ ...s, id: 'msg_01JXXXXXXXXXXXXXXXXXXXXXXX#12' }))).length).toBeLessThan(32_000);
  });

  it('defaults to 30 a minute, 4 at once, and a 2-second margin (the queue polls at least every 2 s)', () => {
    expect(DEFAULT_GOVERNOR_LIMITS).toEqual({ ...limits, marginMs: 2_000 });
  });
});

describe('simulation: one mailbox, bookings at random times', () => {
  it.each([1, 2, 3, 4, 5, 42, 2026])('seed %i: never more than 30 in any 60 seconds, in order, nothing wasted', (seed) => {
    const random = seeded(seed);
    let state: GovernorState = EMPTY_GOVERNOR_STATE;
    const booked = new Map<string, number>();
    const times: number[] = [];
    let previous = -Infinity;
    let lastNow = 0;

    arrivals(random, 2_000).forEach((now, i) => {
      lastNow = now;
      const id = `m${String(i)}`;
      state = goneBy(state, now);
      const result = bookSend(state, id, now, limits);
      state = result.state;

      expect(result.at).toBeGreaterThanOrEqual(now);
      expect(result.at).toBeGreaterThanOrEqual(previous);
      // Not later than it has to be: now, with the send before it, or as soon as the 30th before it leaves the window.
      const thirtiethBefore = times.at(-limits.perMinute);
      expect([now, previous, thirtiethBefore === undefined ? undefined : thirtiethBefore + SPACING]).toContain(result.at);

      previous = result.at;
      times.push(result.at);
      booked.set(id, result.at);

      // Now and then a message is booked again (a retry of the same dequeue): it keeps its time while it is remembered.
      if (random() < 0.2) {
        const earlier = `m${String(Math.floor(random() * (i + 1)))}`;
        const at = booked.get(earlier) ?? 0;
        if (at > now - SPACING) {
          const again = bookSend(state, earlier, now, limits);
          expect(again.at).toBe(at);
          expect(again.state.sends).toHaveLength(state.sends.length);
          state = again.state;
        }
      }
      expect(governorStateSchema.safeParse(state).success).toBe(true);
      expect(state.sends.length).toBeLessThanOrEqual(2_000);
    });

    expect(busiestWindow(times)).toBeLessThanOrEqual(limits.perMinute);
    // The bursts do fill the window: the limit is reached, not just respected.
    expect(busiestWindow(times)).toBe(limits.perMinute);
    // And the state stays small: it keeps only the sends the window (with its margin) still needs.
    for (const send of state.sends) expect(send.at).toBeGreaterThan(lastNow - SPACING);
    expect(state.sends.length).toBe(times.filter((at) => at > lastNow - SPACING).length);
  });

  it.each([7, 8, 9])('seed %i: with every slot taken on time, the window still holds and no booking moves', (seed) => {
    const random = seeded(seed);
    let state: GovernorState = EMPTY_GOVERNOR_STATE;
    const due: { id: string; at: number }[] = [];
    const times: number[] = [];

    const runDue = (until: number) => {
      while (due.length > 0 && (due[0]?.at ?? Infinity) <= until) {
        const next = due.shift();
        if (!next) break;
        const slot = takeSlot(state, next.id, next.at, limits);
        expect(slot.granted).toBe(true);
        expect(slot.state.sends.find((send) => send.id === next.id)?.at).toBe(next.at);
        state = releaseSlot(slot.state, next.id);
      }
    };

    arrivals(random, 1_500).forEach((now, i) => {
      runDue(now);
      const result = bookSend(state, `m${String(i)}`, now, limits);
      state = result.state;
      due.push({ id: `m${String(i)}`, at: result.at });
      times.push(result.at);
    });
    runDue(Infinity);

    expect(busiestWindow(times)).toBeLessThanOrEqual(limits.perMinute);
    expect(state.slots).toEqual([]);
  });

  it.each([11, 12])('seed %i: with sends that take time, never more than 4 in flight, and each booking ends at its real start', (seed) => {
    const random = seeded(seed);
    let state: GovernorState = EMPTY_GOVERNOR_STATE;
    type Event = { at: number; kind: 'arrive' | 'start' | 'finish'; id: string };
    const events: Event[] = arrivals(random, 600).map((at, i) => ({ at, kind: 'arrive', id: `m${String(i)}` }));
    const inFlight = new Set<string>();
    const started = new Map<string, number>();
    let mostInFlight = 0;
    let rebooked = 0;

    // At one instant a send finishes before another starts, and both before a message arrives.
    const order = { finish: 0, start: 1, arrive: 2 };
    const push = (event: Event) => {
      events.push(event);
      events.sort((a, b) => a.at - b.at || order[a.kind] - order[b.kind]);
    };

    while (events.length > 0) {
      const event = events.shift();
      if (!event) break;
      if (event.kind === 'arrive') {
        const booking = bookSend(state, event.id, event.at, limits);
        state = booking.state;
        push({ at: booking.at, kind: 'start', id: event.id });
      } else if (event.kind === 'start') {
        const slot = takeSlot(state, event.id, event.at, limits);
        state = slot.state;
        if (slot.granted) {
          inFlight.add(event.id);
          started.set(event.id, event.at);
          mostInFlight = Math.max(mostInFlight, inFlight.size);
          push({ at: event.at + 200 + Math.floor(random() * 4_000), kind: 'finish', id: event.id });
        } else if (slot.reason === 'rebooked') {
          // It waited for a slot past its margin: it goes at its new booking, behind the others.
          rebooked++;
          expect(slot.retryAt).toBeGreaterThan(event.at);
          expect(state.sends.find((s) => s.id === event.id)?.at).toBe(slot.retryAt);
          push({ at: slot.retryAt, kind: 'start', id: event.id });
        } else {
          const others = state.slots.filter((s) => s.id !== event.id);
          expect(others).toHaveLength(limits.concurrent);
          expect(slot.retryAt).toBe(Math.min(...others.map((s) => s.until)));
          // A worker looks again after a short while rather than waiting for a slot to expire.
          push({ at: Math.min(slot.retryAt, event.at + 500), kind: 'start', id: event.id });
        }
      } else {
        inFlight.delete(event.id);
        state = releaseSlot(state, event.id);
        // The booking was moved to when the send really started (while it is still remembered).
        const send = state.sends.find((s) => s.id === event.id);
        if (send) expect(send.at).toBe(started.get(event.id));
      }
      expect(state.slots.length).toBeLessThanOrEqual(limits.concurrent);
    }

    expect(mostInFlight).toBe(limits.concurrent);
    expect(started.size).toBe(600);
    // Microsoft counts when the requests arrive: the real starts, late ones included, keep the limit.
    expect(busiestWindow([...started.values()])).toBeLessThanOrEqual(limits.perMinute);
    expect(rebooked, 'the late starts this simulation makes do need re-booking').toBeGreaterThan(0);
  });
});

describe('simulation: one mailbox behind a long queue', () => {
  it.each([21, 22, 23])('seed %i: messages that come back up to 20 s late all go, within the limit, at close to the full rate', (seed) => {
    const random = seeded(seed);
    let state: GovernorState = EMPTY_GOVERNOR_STATE;
    const count = 300;
    // Each message books, and is back (the queue's backlog) up to 20 s after its booked time.
    const due: { id: string; at: number }[] = [];
    for (let i = 0; i < count; i++) {
      const booking = bookSend(state, `m${String(i)}`, 0, limits);
      state = booking.state;
      due.push({ id: `m${String(i)}`, at: booking.at + random() * 20_000 });
    }
    const starts: number[] = [];
    let rebooked = 0;
    while (due.length > 0) {
      due.sort((a, b) => a.at - b.at);
      const next = due.shift();
      if (!next) break;
      const slot = takeSlot(state, next.id, next.at, limits);
      state = slot.state;
      if (slot.granted) {
        starts.push(next.at);
        state = releaseSlot(state, next.id);
      } else {
        rebooked++;
        due.push({ id: next.id, at: slot.retryAt + random() * 20_000 });
      }
    }
    expect(starts).toHaveLength(count);
    expect(busiestWindow(starts)).toBeLessThanOrEqual(limits.perMinute);
    // The bookings their messages did not keep do not hold the others back: 300 at 30 a minute take
    // about ten windows, and the lateness adds about one.
    const ideal = (count / limits.perMinute) * SPACING;
    expect(Math.max(...starts)).toBeLessThan(ideal * 1.25);
    expect(rebooked).toBeGreaterThan(0);
  });
});

describe('takeSlot', () => {
  const booked = bookMany(EMPTY_GOVERNOR_STATE, 10, 0).state;

  it('grants up to the concurrency limit, then refuses with the earliest expiry as retryAt', () => {
    let state = booked;
    for (let i = 0; i < 4; i++) {
      const slot = takeSlot(state, `m${String(i)}`, i * 1_000, limits);
      expect(slot.granted).toBe(true);
      state = slot.state;
    }
    expect(state.slots).toEqual([
      { id: 'm0', until: SLOT_HOLD_MS },
      { id: 'm1', until: 1_000 + SLOT_HOLD_MS },
      { id: 'm2', until: 2_000 + SLOT_HOLD_MS },
      { id: 'm3', until: 3_000 + SLOT_HOLD_MS },
    ]);
    const fifth = takeSlot(state, 'm4', 4_000, limits);
    expect(fifth).toEqual({ state: expect.objectContaining({ slots: state.slots }) as unknown, granted: false, reason: 'busy', retryAt: SLOT_HOLD_MS });
  });

  it('takes the hold time it is given', () => {
    expect(takeSlot(booked, 'm0', 0, limits, 5_000).state.slots).toEqual([{ id: 'm0', until: 5_000 }]);
  });

  it('gives a slot back on release', () => {
    let state = booked;
    for (let i = 0; i < 4; i++) state = takeSlot(state, `m${String(i)}`, 0, limits).state;
    expect(takeSlot(state, 'm4', 0, limits).granted).toBe(false);
    state = releaseSlot(state, 'm2');
    expect(state.slots.map((slot) => slot.id)).toEqual(['m0', 'm1', 'm3']);
    expect(takeSlot(state, 'm4', 0, limits).granted).toBe(true);
  });

  it('releasing a slot nobody holds changes nothing', () => {
    const state = takeSlot(booked, 'm0', 0, limits).state;
    expect(releaseSlot(state, 'unknown')).toEqual(state);
  });

  it('frees slots whose holders never gave them back once they expire', () => {
    let state = booked;
    for (let i = 0; i < 4; i++) state = takeSlot(state, `m${String(i)}`, 0, limits, 10_000).state;
    expect(takeSlot(state, 'm4', 9_999, limits)).toMatchObject({ granted: false, retryAt: 10_000 });
    const after = takeSlot(state, 'm4', 10_000, limits, 10_000);
    expect(after.granted).toBe(true);
    expect(after.state.slots).toEqual([{ id: 'm4', until: 20_000 }]);
  });

  it('the same id taking its slot again keeps one slot, with a new expiry, even at the limit', () => {
    let state = booked;
    for (let i = 0; i < 4; i++) state = takeSlot(state, `m${String(i)}`, 0, limits).state;
    const again = takeSlot(state, 'm1', 1_000, limits);
    expect(again.granted).toBe(true);
    expect(again.state.slots).toHaveLength(4);
    expect(again.state.slots.find((slot) => slot.id === 'm1')).toEqual({ id: 'm1', until: 1_000 + SLOT_HOLD_MS });
  });

  it('a booking taken late moves to when its slot was taken, and later bookings count from there', () => {
    // The 29 others went on time; m7's message came back late.
    const booked = bookMany(EMPTY_GOVERNOR_STATE, 30, 0).state;
    let state: GovernorState = { ...booked, sends: booked.sends.map((send) => (send.id === 'm7' ? send : { ...send, started: true })) };
    const slot = takeSlot(state, 'm7', 10_000, limits);
    expect(slot.granted).toBe(true);
    state = slot.state;
    expect(state.sends.find((send) => send.id === 'm7')).toEqual({ id: 'm7', at: 10_000, started: true });
    expect(state.sends.at(-1)).toEqual({ id: 'm7', at: 10_000, started: true });
    expect(state.sends.map((send) => send.at)).toEqual([...state.sends.map((send) => send.at)].sort((a, b) => a - b));

    const { times } = bookMany(state, 30, 10_000, 'n');
    expect(times.slice(0, 29)).toEqual(Array<number>(29).fill(SPACING));
    expect(times[29]).toBe(10_000 + SPACING);
    expect(busiestWindow([...Array<number>(29).fill(0), 10_000, ...times])).toBe(30);
  });

  it('a message whose last 60 seconds already hold the limit of started sends is booked again behind the others', () => {
    // 30 went at 0 … 29 s; m30 (booked for SPACING) comes back early, at 59 s, while all 30 are in its last 60 s.
    let state = EMPTY_GOVERNOR_STATE;
    for (let i = 0; i < 30; i++) {
      state = releaseSlot(takeSlot(bookSend(state, `m${String(i)}`, i * 1_000, limits).state, `m${String(i)}`, i * 1_000, limits).state, `m${String(i)}`);
    }
    state = bookSend(state, 'm30', 29_000, limits).state;
    state = bookSend(state, 'm31', 29_000, limits).state;
    const slot = takeSlot(state, 'm30', 59_000, limits);
    expect(slot).toMatchObject({ granted: false, reason: 'rebooked' });
    // Behind m31, which was booked after it: the earliest the window allows after every booking.
    expect(slot.granted ? 0 : slot.retryAt).toBe(1_000 + SPACING);
    expect(slot.state.slots).toEqual([]);
    // Once the first send has left the last 60 seconds, a message goes.
    expect(takeSlot(slot.state, 'm31', 60_001, limits).granted).toBe(true);
  });

  it('a message that comes back late goes when its last 60 seconds have room, even past bookings made after it', () => {
    // 60 booked at 0: m0 … m29 for 0, m30 … m59 for SPACING. m1 … m29 went at 0; m0 comes back 20 s late.
    let state = bookMany(EMPTY_GOVERNOR_STATE, 60, 0).state;
    for (let i = 1; i < 30; i++) state = releaseSlot(takeSlot(state, `m${String(i)}`, 0, limits).state, `m${String(i)}`);
    const slot = takeSlot(state, 'm0', 20_000, limits);
    expect(slot.granted).toBe(true);
    expect(slot.state.sends.find((send) => send.id === 'm0')).toEqual({ id: 'm0', at: 20_000, started: true });
    // At SPACING, m0 is still in the last 60 s: 29 of m30 … m59 go, the last is booked again; the limit holds.
    state = releaseSlot(slot.state, 'm0');
    const outcomes: boolean[] = [];
    for (let i = 30; i < 60; i++) {
      const taken = takeSlot(state, `m${String(i)}`, SPACING, limits);
      outcomes.push(taken.granted);
      state = releaseSlot(taken.state, `m${String(i)}`);
    }
    expect(outcomes.filter(Boolean)).toHaveLength(29);
    expect(outcomes.at(-1)).toBe(false);
    expect(busiestWindow(state.sends.filter((send) => send.started).map((send) => send.at))).toBe(30);
  });

  it('a booking taken late within the margin goes, and moves to its real start', () => {
    let state = bookMany(EMPTY_GOVERNOR_STATE, 60, 0).state;
    const late = SPACING - RATE_WINDOW_MS;
    const slot = takeSlot(state, 'm0', late, limits);
    expect(slot.granted).toBe(true);
    state = slot.state;
    expect(state.sends.find((send) => send.id === 'm0')).toEqual({ id: 'm0', at: late, started: true });
    expect(busiestWindow(state.sends.map((send) => send.at))).toBe(30);
  });

  it('a message whose booking was forgotten goes now when the window has room, and is counted', () => {
    const slot = takeSlot(bookMany(EMPTY_GOVERNOR_STATE, 5, 0).state, 'stranger', 1_000, limits);
    expect(slot.granted).toBe(true);
    expect(slot.state.sends.at(-1)).toEqual({ id: 'stranger', at: 1_000, started: true });
  });

  it('a message whose booking was forgotten, when its last 60 seconds are full, is booked after them', () => {
    const slot = takeSlot(goneBy(bookMany(EMPTY_GOVERNOR_STATE, 30, 0).state, 0), 'stranger', 1_000, limits);
    expect(slot).toMatchObject({ granted: false, reason: 'rebooked', retryAt: SPACING });
  });

  it('a message that starts on time keeps its booked time; one that starts early is counted when it starts', () => {
    const state = goneBy(bookMany(EMPTY_GOVERNOR_STATE, 31, 0).state, 0);
    expect(state.sends.at(-1)).toEqual({ id: 'm30', at: SPACING });
    expect(takeSlot(state, 'm30', SPACING, limits).state.sends.at(-1)).toEqual({ id: 'm30', at: SPACING, started: true });
    // Early, with 30 started in its last 60 s: it does not go.
    expect(takeSlot(state, 'm30', 1_000, limits)).toMatchObject({ granted: false, reason: 'rebooked' });
  });
});

describe('block', () => {
  it('makes takeSlot refuse until then, with that time as retryAt', () => {
    const state = block(bookSend(EMPTY_GOVERNOR_STATE, 'm1', 0, limits).state, 30_000);
    expect(takeSlot(state, 'm1', 0, limits)).toMatchObject({ granted: false, retryAt: 30_000 });
    expect(takeSlot(state, 'm1', 29_999, limits)).toMatchObject({ granted: false, retryAt: 30_000 });
    const after = takeSlot(state, 'm1', 30_000, limits);
    expect(after.granted).toBe(true);
    expect(after.state).not.toHaveProperty('blockedUntil');
  });

  it('refuses even a mailbox with free slots, and one whose message already holds a slot', () => {
    const holding = takeSlot(bookSend(EMPTY_GOVERNOR_STATE, 'm1', 0, limits).state, 'm1', 0, limits).state;
    expect(takeSlot(block(holding, 5_000), 'm1', 1_000, limits)).toMatchObject({ granted: false, retryAt: 5_000 });
  });

  it('makes bookSend book after it', () => {
    const blocked = block(EMPTY_GOVERNOR_STATE, 45_000);
    const { state, times } = bookMany(blocked, 31, 1_000);
    expect(times.slice(0, 30)).toEqual(Array<number>(30).fill(45_000));
    expect(times[30]).toBe(45_000 + SPACING);
    expect(state.blockedUntil).toBe(45_000);
  });

  it('keeps the later of two blocks', () => {
    expect(block(block(EMPTY_GOVERNOR_STATE, 50_000), 20_000).blockedUntil).toBe(50_000);
    expect(block(block(EMPTY_GOVERNOR_STATE, 20_000), 50_000).blockedUntil).toBe(50_000);
  });

  it('a block in the past is forgotten', () => {
    const state = block(EMPTY_GOVERNOR_STATE, 1_000);
    const booking = bookSend(state, 'm1', 2_000, limits);
    expect(booking.at).toBe(2_000);
    expect(booking.state).not.toHaveProperty('blockedUntil');
  });
});
