import { describe, expect, it } from 'vitest';
import { sweepExpired, type Expiring } from '../../src/connect/sweep-expired.js';
import { TableRepository, type TableCodec } from '../../src/store/table-repository.js';
import { testStorage, uniqueName } from '../support/storage.js';

const codec: TableCodec<Expiring> = {
  toProperties: (value) => ({ expiresAt: value.expiresAt }),
  fromProperties: (properties) => ({ expiresAt: String(properties.expiresAt) }),
};

describe('sweeping expired sign-in states and results on Azurite', () => {
  const storage = testStorage();
  const now = new Date('2026-11-22T12:00:00.000Z');
  const at = (minutes: number) => new Date(now.getTime() + minutes * 60_000).toISOString();

  async function table(rows: { partitionKey: string; rowKey: string; expiresAt: string }[]): Promise<TableRepository<Expiring>> {
    const name = uniqueName('sweep');
    await storage.tableService.createTable(name);
    const repo = new TableRepository(storage.table(name), codec);
    for (const { expiresAt, ...key } of rows) await repo.create(key, { expiresAt });
    return repo;
  }

  async function keysOf(repo: TableRepository<Expiring>): Promise<string[]> {
    const page = await repo.pageBefore('expiresAt', '9999', { pageSize: 1000 });
    return page.items.map((item) => item.key.rowKey).sort();
  }

  it('removes rows past their expiry in every partition of every table, and keeps the others', async () => {
    const states = await table([
      { partitionKey: 'aa', rowKey: 'expired-1', expiresAt: at(-1) },
      { partitionKey: 'zz', rowKey: 'expired-2', expiresAt: at(-600) },
      { partitionKey: 'aa', rowKey: 'live', expiresAt: at(5) },
      // Expiring this very millisecond is not expired yet: "lt", as the code's own checks treat it.
      { partitionKey: 'mm', rowKey: 'now', expiresAt: at(0) },
    ]);
    const results = await table([
      { partitionKey: 'q1', rowKey: 'old-result', expiresAt: at(-30) },
      { partitionKey: 'q2', rowKey: 'new-result', expiresAt: at(60 * 24) },
    ]);
    expect(await sweepExpired([states, results], now)).toEqual({ deleted: 3, more: false });
    expect(await keysOf(states)).toEqual(['live', 'now']);
    expect(await keysOf(results)).toEqual(['new-result']);
    expect(await sweepExpired([states, results], now)).toEqual({ deleted: 0, more: false });
  });

  it('stops at its budget and finishes the backlog on the next runs', async () => {
    const rows = Array.from({ length: 25 }, (_, i) => ({ partitionKey: `p${String(i % 7)}`, rowKey: `r${String(i).padStart(2, '0')}`, expiresAt: at(-i - 1) }));
    const repo = await table([...rows, { partitionKey: 'p0', rowKey: 'keep', expiresAt: at(1) }]);
    expect(await sweepExpired([repo], now, 10)).toEqual({ deleted: 10, more: true });
    expect(await sweepExpired([repo], now, 10)).toEqual({ deleted: 10, more: true });
    expect(await sweepExpired([repo], now, 10)).toEqual({ deleted: 5, more: false });
    expect(await keysOf(repo)).toEqual(['keep']);
  });

  it('leaves a row alone that was rewritten after it was read', async () => {
    const repo = await table([{ partitionKey: 'x', rowKey: 'renewed', expiresAt: at(-1) }]);
    const racing = Object.create(repo) as TableRepository<Expiring>;
    // Between the sweep's read and its delete, another writer gives the row a new life.
    racing.pageBefore = async (...args) => {
      const page = await repo.pageBefore(...args);
      for (const item of page.items) await repo.replace(item.key, { expiresAt: at(10) }, item.etag);
      return page;
    };
    expect(await sweepExpired([racing], now)).toEqual({ deleted: 0, more: false });
    expect(await keysOf(repo)).toEqual(['renewed']);
  });

  it('refuses a property name that would change the query', async () => {
    const repo = await table([]);
    await expect(repo.pageBefore('expiresAt lt 1 or true', now.toISOString())).rejects.toThrow(RangeError);
  });
});
