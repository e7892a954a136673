import { describe, expect, it } from 'vitest';
import { TtlCache } from '../../src/ttl-cache.js';

describe('TtlCache', () => {
  it('answers from memory until the time to live is over, sharing one load between concurrent callers', async () => {
    let now = 1_000;
    let loads = 0;
    const cache = new TtlCache<string, number>(100, () => now);
    const load = () => Promise.resolve(++loads);
    const [a, b] = await Promise.all([cache.get('k', load), cache.get('k', load)]);
    expect([a, b, loads]).toEqual([1, 1, 1]);
    now += 99;
    expect(await cache.get('k', load)).toBe(1);
    now += 2;
    expect(await cache.get('k', load)).toBe(2);
    expect(await cache.get('other', load)).toBe(3);
  });

  it('does not remember a failed load, and forgets on delete', async () => {
    const cache = new TtlCache<string, string>(10_000);
    await expect(cache.get('k', () => Promise.reject(new Error('storage down')))).rejects.toThrow('storage down');
    expect(await cache.get('k', () => Promise.resolve('fresh'))).toBe('fresh');
    cache.delete('k');
    expect(await cache.get('k', () => Promise.resolve('again'))).toBe('again');
  });

  it('stays bounded', async () => {
    const cache = new TtlCache<number, number>(10_000, Date.now, 3);
    for (let i = 0; i < 5; i++) await cache.get(i, () => Promise.resolve(i));
    let reloaded = false;
    await cache.get(0, () => {
      reloaded = true;
      return Promise.resolve(0);
    });
    expect(reloaded).toBe(true);
  });
});
