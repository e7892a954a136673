import { beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_GOVERNOR_LIMITS, RATE_WINDOW_MS, type GovernorState } from '../../src/domain/send-governor.js';
import { SendGovernor } from '../../src/sending/send-governor.js';
import { provisionStorage } from '../../src/store/provision-storage.js';
import { createRepositories, keys, type Repositories } from '../../src/store/repositories.js';
import type { TableRepository } from '../../src/store/table-repository.js';
import { testStorage, uniqueName } from '../support/storage.js';

/**
 * The governor's row on Azurite, as instances use it: one instance's changes to a mailbox go
 * together (one read-modify-write a turn, not one each), a slot given back wakes that instance's
 * waiting workers, and two instances on one row still never hold more slots than the limit.
 */

const storage = testStorage();
let repositories: Repositories;

beforeAll(async () => {
  await provisionStorage(storage);
  repositories = createRepositories(storage);
});

/** The governor row's repository, counting its read-modify-writes and the writes another writer beat. */
function counted(state: Repositories['sendGovernor']) {
  const counts = { updates: 0, conflicts: 0 };
  const wrapper = Object.create(state) as TableRepository<GovernorState>;
  wrapper.update = async (key, mutate, options) => {
    counts.updates++;
    let first = true;
    return state.update(
      key,
      (current) => {
        if (!first) counts.conflicts++;
        first = false;
        return mutate(current);
      },
      options,
    );
  };
  return { repository: wrapper, counts };
}

const never = () => new Promise<void>(() => undefined);

describe('the send governor on Table Storage', () => {
  it("one instance's 40 bookings at once go in two writes, in order, each with its own time", async () => {
    const mailbox = `${uniqueName('lane')}@contoso.example`;
    const { repository, counts } = counted(repositories.sendGovernor);
    const governor = new SendGovernor({ state: repository, limits: { ...DEFAULT_GOVERNOR_LIMITS, perMinute: 30 }, now: () => new Date() });

    const bookings = await Promise.all(Array.from({ length: 40 }, (_, i) => governor.book(mailbox, `m${String(i)}`)));

    // The first goes alone; the 39 that came while it was written go together in the next.
    expect(counts.updates).toBe(2);
    expect(counts.conflicts).toBe(0);
    const stored = (await repositories.sendGovernor.get(keys.sendGovernor(mailbox)))?.value;
    expect(stored?.sends.map((send) => send.id)).toEqual(Array.from({ length: 40 }, (_, i) => `m${String(i)}`));
    expect(bookings.map((booking) => booking.at.getTime())).toEqual(stored?.sends.map((send) => send.at));
    // 30 now, the other 10 a window (and its margin) later.
    const first = bookings[0]?.at.getTime() ?? 0;
    expect(bookings.filter((booking) => booking.at.getTime() - first < RATE_WINDOW_MS)).toHaveLength(30);
  });

  it('a booking due now takes its slot in the same write; one booked for later does not', async () => {
    const mailbox = `${uniqueName('lane')}@contoso.example`;
    const { repository, counts } = counted(repositories.sendGovernor);
    const governor = new SendGovernor({ state: repository, limits: { ...DEFAULT_GOVERNOR_LIMITS, perMinute: 1 }, now: () => new Date() });

    const first = await governor.book(mailbox, 'm0', { id: 'slot0', holdMs: 60_000 });
    expect(first).toMatchObject({ booked: true, slotTaken: true });
    expect(counts.updates).toBe(1);
    const second = await governor.book(mailbox, 'm1', { id: 'slot1', holdMs: 60_000 });
    expect(second).toMatchObject({ booked: true, slotTaken: false });
    expect(second.at.getTime() - first.at.getTime()).toBe(RATE_WINDOW_MS + DEFAULT_GOVERNOR_LIMITS.marginMs);
    const stored = (await repositories.sendGovernor.get(keys.sendGovernor(mailbox)))?.value;
    expect(stored?.slots.map((slot) => slot.id)).toEqual(['slot0']);
  });

  it("a slot given back wakes this instance's waiting worker at once", async () => {
    const mailbox = `${uniqueName('lane')}@contoso.example`;
    // A pause that never ends: only the wake-up can let the waiting worker look again.
    const governor = new SendGovernor({ state: repositories.sendGovernor, limits: DEFAULT_GOVERNOR_LIMITS, now: () => new Date(), sleep: never });
    for (let i = 0; i < 4; i++) {
      await governor.book(mailbox, `m${String(i)}`);
      expect(await governor.acquire(mailbox, `m${String(i)}`, `slot${String(i)}`, 60_000)).toEqual({ granted: true });
    }
    await governor.book(mailbox, 'm4');
    const fifth = governor.acquire(mailbox, 'm4', 'slot4', 60_000);
    let settled = false;
    void fifth.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled, 'every slot is taken: the fifth waits').toBe(false);

    await governor.release(mailbox, 'slot2');
    expect(await fifth).toEqual({ granted: true });
    const stored = (await repositories.sendGovernor.get(keys.sendGovernor(mailbox)))?.value;
    expect(stored?.slots.map((slot) => slot.id).sort()).toEqual(['slot0', 'slot1', 'slot3', 'slot4']);
  });

  it("an instance reads a mailbox's row once and then writes from its own last version, until another instance writes", async () => {
    const mailbox = `${uniqueName('lane')}@contoso.example`;
    const mine = createRepositories(storage).sendGovernor;
    const reads = vi.spyOn(mine, 'get');
    const limits = { ...DEFAULT_GOVERNOR_LIMITS, perMinute: 300 };
    const governor = new SendGovernor({ state: mine, limits, now: () => new Date() });
    const other = new SendGovernor({ state: repositories.sendGovernor, limits, now: () => new Date() });

    for (let i = 0; i < 10; i++) {
      expect(await governor.book(mailbox, `m${String(i)}`, { id: `slot${String(i)}`, holdMs: 60_000 })).toMatchObject({ booked: true, slotTaken: true });
      await governor.release(mailbox, `slot${String(i)}`);
    }
    expect(reads, 'only the first change reads the row').toHaveBeenCalledTimes(1);

    // Another instance books and holds a slot: this instance's version is stale, its ETag refused.
    await other.book(mailbox, 'theirs', { id: 'their-slot', holdMs: 60_000 });
    expect(await governor.book(mailbox, 'm10', { id: 'slot10', holdMs: 60_000 })).toMatchObject({ slotTaken: true });
    expect(reads).toHaveBeenCalledTimes(2);
    const stored = (await repositories.sendGovernor.get(keys.sendGovernor(mailbox)))?.value;
    expect(stored?.sends.map((send) => send.id)).toEqual([...Array.from({ length: 10 }, (_, i) => `m${String(i)}`), 'theirs', 'm10']);
    expect(stored?.slots.map((slot) => slot.id).sort()).toEqual(['slot10', 'their-slot']);
  });

  it('two instances, 12 workers each, on one mailbox: never more than 4 slots held, every worker served', async () => {
    const mailbox = `${uniqueName('lane')}@contoso.example`;
    const limits = { ...DEFAULT_GOVERNOR_LIMITS, perMinute: 300 };
    const governors = [0, 1].map(() => new SendGovernor({ state: repositories.sendGovernor, limits, now: () => new Date() }));
    let inFlight = 0;
    let most = 0;
    const served: string[] = [];

    const worker = async (governor: SendGovernor, id: string) => {
      await governor.book(mailbox, id);
      for (;;) {
        const grant = await governor.acquire(mailbox, id, `${id}/slot`, 60_000);
        if (grant.granted) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 20));
      inFlight--;
      served.push(id);
      await governor.release(mailbox, `${id}/slot`);
    };
    await Promise.all(governors.flatMap((governor, g) => Array.from({ length: 12 }, (_, i) => worker(governor, `g${String(g)}m${String(i)}`))));

    expect(served).toHaveLength(24);
    expect(most).toBeLessThanOrEqual(4);
    const stored = (await repositories.sendGovernor.get(keys.sendGovernor(mailbox)))?.value;
    expect(stored?.slots).toEqual([]);
    expect(stored?.sends).toHaveLength(24);
  });
});
