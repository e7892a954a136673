import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AlreadyExistsError,
  ConcurrencyError,
  TableRepository,
  UNCHANGED,
  type TableCodec,
} from '../../src/store/table-repository.js';
import { testStorage, uniqueName } from '../support/storage.js';

interface Counter {
  count: number;
  writers: string;
}

const counterCodec: TableCodec<Counter> = {
  toProperties: (value) => ({ count: value.count, writers: value.writers }),
  fromProperties: (properties) => ({ count: Number(properties.count), writers: String(properties.writers) }),
};

describe('TableRepository on Azurite', () => {
  const storage = testStorage();
  let repo: TableRepository<Counter>;

  beforeAll(async () => {
    const table = uniqueName('repo');
    await storage.tableService.createTable(table);
    repo = new TableRepository(storage.table(table), counterCodec);
  });

  it('creates, reads and refuses a second create of the same key', async () => {
    const key = { partitionKey: 'p1', rowKey: 'create' };
    const created = await repo.create(key, { count: 1, writers: 'a' });
    expect(created.etag).toMatch(/^W\/"/);
    expect(await repo.get(key)).toEqual({ key, value: { count: 1, writers: 'a' }, etag: created.etag });
    await expect(repo.create(key, { count: 2, writers: 'b' })).rejects.toBeInstanceOf(AlreadyExistsError);
    expect(await repo.get({ partitionKey: 'p1', rowKey: 'missing' })).toBeUndefined();
  });

  it('rejects a replace based on a stale ETag: the second of two writers loses, nothing is overwritten', async () => {
    const key = { partitionKey: 'p1', rowKey: 'stale' };
    const original = await repo.create(key, { count: 0, writers: '' });
    const readByA = await repo.get(key);
    const readByB = await repo.get(key);
    if (!readByA || !readByB) throw new Error('entity vanished');

    await repo.replace(key, { count: 1, writers: 'a' }, readByA.etag);
    await expect(repo.replace(key, { count: 1, writers: 'b' }, readByB.etag)).rejects.toBeInstanceOf(ConcurrencyError);
    expect((await repo.get(key))?.value).toEqual({ count: 1, writers: 'a' });
    await expect(repo.delete(key, original.etag)).rejects.toBeInstanceOf(ConcurrencyError);
  });

  it('applies every update from two concurrent writers (no lost update)', async () => {
    const key = { partitionKey: 'p2', rowKey: 'counter' };
    const writer = async (name: string, times: number) => {
      for (let i = 0; i < times; i++) {
        await repo.update(key, (current) => ({
          count: (current?.count ?? 0) + 1,
          writers: `${current?.writers ?? ''}${name}`,
        }), { maxAttempts: 50 });
      }
    };
    await Promise.all([writer('a', 15), writer('b', 15)]);
    const final = await repo.get(key);
    expect(final?.value.count).toBe(30);
    expect(final?.value.writers.replace(/b/g, '')).toBe('a'.repeat(15));
    expect(final?.value.writers.replace(/a/g, '')).toBe('b'.repeat(15));
  });

  it('update can leave an entity unchanged and delete removes it once', async () => {
    const key = { partitionKey: 'p3', rowKey: 'x' };
    expect(await repo.update(key, () => UNCHANGED)).toBeUndefined();
    const created = await repo.update(key, () => ({ count: 5, writers: 'z' }));
    expect(created?.value.count).toBe(5);
    expect(await repo.delete(key, created?.etag)).toBe(true);
    expect(await repo.delete(key)).toBe(false);
  });

  it('an update from a known version writes without reading; a stale one is refused by its ETag and the update redone on the row as it is', async () => {
    const key = { partitionKey: 'p4', rowKey: 'known' };
    const reads = vi.spyOn(repo, 'get');
    const increment = (name: string) => (current: Counter | undefined) => ({ count: (current?.count ?? 0) + 1, writers: `${current?.writers ?? ''}${name}` });
    try {
      const first = await repo.update(key, increment('a'));
      expect(reads).toHaveBeenCalledTimes(1);
      const second = await repo.update(key, increment('a'), { known: first });
      expect(reads).toHaveBeenCalledTimes(1);
      expect(second?.value).toEqual({ count: 2, writers: 'aa' });

      // Another writer changes the row: the known version is stale now.
      if (!second) throw new Error('no version');
      await repo.replace(key, { count: 10, writers: 'aab' }, second.etag);
      const third = await repo.update(key, increment('a'), { known: second });
      expect(reads).toHaveBeenCalledTimes(2);
      expect(third?.value).toEqual({ count: 11, writers: 'aaba' });
      expect((await repo.get(key))?.value).toEqual({ count: 11, writers: 'aaba' });

      // Gone since: the update creates it again.
      await repo.delete(key);
      expect((await repo.update(key, increment('c'), { known: third }))?.value).toEqual({ count: 1, writers: 'c' });
    } finally {
      reads.mockRestore();
    }
  });

  it('doing nothing is not decided on a known version: UNCHANGED from it is checked on a fresh read', async () => {
    const key = { partitionKey: 'p4', rowKey: 'unchanged' };
    const actual = await repo.create(key, { count: 3, writers: '' });
    const oldView = { key, value: { count: 10, writers: 'old view' }, etag: actual.etag.replace(/"$/, '-stale"') };
    const upToTen = (current: Counter | undefined) => ((current?.count ?? 0) >= 10 ? UNCHANGED : { count: (current?.count ?? 0) + 1, writers: 'fresh' });
    expect((await repo.update(key, upToTen, { known: oldView }))?.value).toEqual({ count: 4, writers: 'fresh' });
    expect((await repo.get(key))?.value).toEqual({ count: 4, writers: 'fresh' });
    await expect(repo.update({ ...key, rowKey: 'other' }, upToTen, { known: oldView })).rejects.toThrow(RangeError);
  });

  it('pages through a partition by row-key prefix and range', async () => {
    for (const rowKey of ['a-1', 'a-2', 'a-3', 'b-1', 'b-2']) {
      await repo.create({ partitionKey: 'pages', rowKey }, { count: 0, writers: rowKey });
    }
    const first = await repo.page('pages', { range: { prefix: 'a-' }, pageSize: 2 });
    expect(first.items.map((i) => i.key.rowKey)).toEqual(['a-1', 'a-2']);
    expect(first.continuationToken).toBeTruthy();
    const second = await repo.page('pages', {
      range: { prefix: 'a-' },
      pageSize: 2,
      ...(first.continuationToken && { continuationToken: first.continuationToken }),
    });
    expect(second.items.map((i) => i.key.rowKey)).toEqual(['a-3']);
    expect(second.continuationToken).toBeUndefined();
    const range = await repo.page('pages', { range: { from: 'a-3', to: 'b-2' } });
    expect(range.items.map((i) => i.key.rowKey)).toEqual(['a-3', 'b-1']);
  });

  it('refuses keys Table Storage cannot hold', async () => {
    await expect(repo.get({ partitionKey: 'a/b', rowKey: 'x' })).rejects.toThrow(/does not allow/);
    await expect(repo.create({ partitionKey: 'p', rowKey: 'x#y' }, { count: 0, writers: '' })).rejects.toThrow(RangeError);
  });
});
