/**
 * Remembers answers for a while, per key, so hot paths (every API call, every delivery) do not
 * read the same row or secret again and again. Concurrent misses for one key share one load; a
 * failed load is not remembered.
 */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: Promise<V>; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) return hit.value;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    const value = load();
    this.entries.set(key, { value, expires: Number.POSITIVE_INFINITY });
    value.then(
      () => {
        const entry = this.entries.get(key);
        if (entry?.value === value) entry.expires = this.now() + this.ttlMs;
      },
      () => {
        if (this.entries.get(key)?.value === value) this.entries.delete(key);
      },
    );
    return value;
  }

  delete(key: K): void {
    this.entries.delete(key);
  }
}
