import { ConcurrencyError, type EntityKey, type TableRepository, type UNCHANGED, type Versioned } from '../store/table-repository.js';

/**
 * Rows that carry the event of their last change (connections, app health) save it in the same
 * write and record it after; a writer that dies in between leaves it only in the row. A write that
 * replaces that event must therefore record it first, and the check must be on the very version the
 * conditional write replaces: inside the update, again after every lost race. An event this call
 * has not recorded yet stops the write, is recorded, and the update starts over. Recording is by
 * event id, so an event already recorded is not recorded twice.
 */

/** How many other writers' events one change records before it gives up with ConcurrencyError. */
const MAX_EVENT_ROUNDS = 10;

interface CarriesEvent {
  lastEvent?: { id: string } | undefined;
}

/** Raised inside the update when the row carries an event this call has not recorded yet. */
class UnrecordedEvent<T> extends Error {
  constructor(readonly row: T) {
    super('the row carries an event that is to be recorded first');
  }
}

/**
 * `update` after recording every event the rows it replaces carry; `record` records a row's last
 * event, and `recorded` holds the ids already recorded (by this call, or known to be). Returns the
 * row as written, or as it was when `mutate` left it UNCHANGED.
 */
export async function updateAfterLastEvent<T extends CarriesEvent>(
  repository: Pick<TableRepository<T>, 'update'>,
  key: EntityKey,
  mutate: (current: T | undefined) => T | typeof UNCHANGED,
  record: (row: T) => Promise<void>,
  recorded: Set<string>,
): Promise<Versioned<T> | undefined> {
  for (let round = 1; ; round++) {
    try {
      return await repository.update(key, (current) => {
        const last = current?.lastEvent;
        if (current && last && !recorded.has(last.id)) throw new UnrecordedEvent(current);
        return mutate(current);
      });
    } catch (error) {
      if (!(error instanceof UnrecordedEvent)) throw error;
      // Each round records another writer's event; a row that keeps changing faster than that is a lost race.
      if (round >= MAX_EVENT_ROUNDS) throw new ConcurrencyError(key);
      const row = (error as UnrecordedEvent<T>).row;
      await record(row);
      const id = row.lastEvent?.id;
      if (id !== undefined) recorded.add(id);
    }
  }
}
