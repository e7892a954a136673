import { RestError, odata, type TableClient, type TableEntityResult } from '@azure/data-tables';

/**
 * A Table Storage repository with optimistic concurrency: every read returns the entity's ETag,
 * every conditional write sends it back, and a write based on a stale read fails instead of
 * overwriting someone else's change. Queries stay on PartitionKey/RowKey equality and ranges,
 * where Azurite and Azure behave the same.
 */

export interface EntityKey {
  partitionKey: string;
  rowKey: string;
}

/** A primitive Table Storage can hold in one property. */
export type TableValue = string | number | boolean | Date | null | undefined;
export type TableProperties = Record<string, TableValue>;

/** Maps a domain value to table properties and back; keys stay outside the value's encoding. */
export interface TableCodec<T> {
  toProperties(value: T): TableProperties;
  fromProperties(properties: TableProperties, key: EntityKey): T;
}

export interface Versioned<T> {
  key: EntityKey;
  value: T;
  etag: string;
}

export interface Page<T> {
  items: Versioned<T>[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  continuationToken?: string;
}

export interface RowKeyRange {
  /** Inclusive lower bound. */
  from?: string;
  /** Exclusive upper bound. */
  to?: string;
  /** Shorthand for the range of row keys that start with this text. */
  prefix?: string;
}

/** A conditional write lost a race: the entity changed (or vanished) since it was read. */
export class ConcurrencyError extends Error {
  constructor(readonly key: EntityKey) {
    super(`The ${describeKey(key)} was changed by someone else; read it again and retry.`);
    this.name = 'ConcurrencyError';
  }
}

/** A continuation token this partition's listing did not hand out. */
export class InvalidContinuationTokenError extends RangeError {
  constructor() {
    super('The continuation token does not belong to this listing.');
    this.name = 'InvalidContinuationTokenError';
  }
}

export class AlreadyExistsError extends Error {
  constructor(readonly key: EntityKey) {
    super(`The ${describeKey(key)} already exists.`);
    this.name = 'AlreadyExistsError';
  }
}

/** Returned by an update's mutator to leave the entity as it is. */
export const UNCHANGED: unique symbol = Symbol('unchanged');

export interface UpdateOptions<T = unknown> {
  /** How many read-modify-write rounds to try before giving up with ConcurrencyError. */
  maxAttempts?: number;
  /**
   * The version the caller saw last (its own last write, typically): the update starts from it
   * without reading. When another writer changed the entity since, the ETag refuses the write and
   * the update reads and goes on as usual. `mutate` answering UNCHANGED from it is checked on a
   * fresh read: doing nothing must not be decided on an old version.
   */
  known?: Versioned<T>;
}

const MAX_KEY_LENGTH = 1024;
// Characters Table Storage forbids in PartitionKey and RowKey.
// eslint-disable-next-line no-control-regex
const FORBIDDEN_KEY_CHARACTERS = /[/\\#?\u0000-\u001f\u007f-\u009f]/;

export function assertValidKey(key: EntityKey): void {
  for (const [name, value] of [['PartitionKey', key.partitionKey], ['RowKey', key.rowKey]] as const) {
    if (value.length > MAX_KEY_LENGTH) throw new RangeError(`${name} is longer than ${MAX_KEY_LENGTH} characters`);
    if (FORBIDDEN_KEY_CHARACTERS.test(value)) {
      throw new RangeError(`${name} contains a character Table Storage does not allow (/ \\ # ? or a control character)`);
    }
  }
}

export class TableRepository<T> {
  constructor(
    private readonly client: TableClient,
    private readonly codec: TableCodec<T>,
  ) {}

  get tableName(): string {
    return this.client.tableName;
  }

  async get(key: EntityKey): Promise<Versioned<T> | undefined> {
    assertValidKey(key);
    try {
      const entity = await this.client.getEntity<TableProperties>(key.partitionKey, key.rowKey);
      return this.toVersioned(entity);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** Inserts a new entity; fails with AlreadyExistsError when the key is taken. */
  async create(key: EntityKey, value: T): Promise<Versioned<T>> {
    assertValidKey(key);
    try {
      const response = await this.client.createEntity({ ...this.codec.toProperties(value), ...key });
      return { key, value, etag: requireEtag(response.etag) };
    } catch (error) {
      if (statusOf(error) === 409) throw new AlreadyExistsError(key);
      throw error;
    }
  }

  /** Replaces the entity if it still has `etag`; fails with ConcurrencyError otherwise. */
  async replace(key: EntityKey, value: T, etag: string): Promise<Versioned<T>> {
    assertValidKey(key);
    try {
      const response = await this.client.updateEntity({ ...this.codec.toProperties(value), ...key }, 'Replace', { etag });
      return { key, value, etag: requireEtag(response.etag) };
    } catch (error) {
      const status = statusOf(error);
      if (status === 412 || status === 404) throw new ConcurrencyError(key);
      throw error;
    }
  }

  /**
   * Deletes the entity. With `etag`, only if it is unchanged (ConcurrencyError otherwise).
   * Returns false when there was nothing to delete.
   */
  async delete(key: EntityKey, etag?: string): Promise<boolean> {
    assertValidKey(key);
    try {
      await this.client.deleteEntity(key.partitionKey, key.rowKey, etag ? { etag } : undefined);
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) {
        if (etag) throw new ConcurrencyError(key);
        return false;
      }
      if (status === 412) throw new ConcurrencyError(key);
      throw error;
    }
  }

  /**
   * Read-modify-write that cannot lose an update: reads the entity, applies `mutate`, and writes
   * it back conditionally; when another writer got there first, it reads again and reapplies.
   * `mutate` receives undefined when the entity does not exist yet and may return UNCHANGED.
   * It must be free of side effects: it can run more than once.
   */
  async update(
    key: EntityKey,
    mutate: (current: T | undefined) => T | typeof UNCHANGED,
    options: UpdateOptions<T> = {},
  ): Promise<Versioned<T> | undefined> {
    const maxAttempts = options.maxAttempts ?? 10;
    if (options.known) {
      const written = await this.writeFromKnown(key, mutate, options.known);
      if (written) return written;
    }
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(key);
      const next = mutate(current?.value);
      if (next === UNCHANGED) return current;
      try {
        return current ? await this.replace(key, next, current.etag) : await this.create(key, next);
      } catch (error) {
        const lostRace = error instanceof ConcurrencyError || error instanceof AlreadyExistsError;
        if (!lostRace || attempt >= maxAttempts) {
          throw lostRace ? new ConcurrencyError(key) : error;
        }
        await delay(Math.random() * Math.min(200, 10 * 2 ** attempt));
      }
    }
  }

  /** update's first attempt from a known version: the row as written, or undefined to go on with a fresh read. */
  private async writeFromKnown(key: EntityKey, mutate: (current: T | undefined) => T | typeof UNCHANGED, known: Versioned<T>): Promise<Versioned<T> | undefined> {
    if (known.key.partitionKey !== key.partitionKey || known.key.rowKey !== key.rowKey) {
      throw new RangeError(`The known version is of ${describeKey(known.key)}, not of ${describeKey(key)}.`);
    }
    const next = mutate(known.value);
    if (next === UNCHANGED) return undefined;
    try {
      return await this.replace(key, next, known.etag);
    } catch (error) {
      if (error instanceof ConcurrencyError) return undefined;
      throw error;
    }
  }

  /** One page of a partition, in row-key order, optionally limited to a row-key range. */
  async page(
    partitionKey: string,
    options: { range?: RowKeyRange; pageSize?: number; continuationToken?: string } = {},
  ): Promise<Page<T>> {
    assertValidKey({ partitionKey, rowKey: '' });
    if (options.continuationToken !== undefined) assertContinuationShape(options.continuationToken);
    return this.queryPage(rangeFilter(partitionKey, options.range ?? {}), options);
  }

  /**
   * One page, across partitions, of the rows whose ISO-8601 `property` is before `before`: for
   * housekeeping of short-lived rows (a table scan; keep it to tables that stay small).
   */
  async pageBefore(property: string, before: string, options: { pageSize?: number; continuationToken?: string } = {}): Promise<Page<T>> {
    if (!/^[A-Za-z_]\w{0,254}$/.test(property)) throw new RangeError(`"${property}" is not a property name`);
    if (options.continuationToken !== undefined) assertContinuationShape(options.continuationToken);
    // A string literal in OData doubles its quotes (the SDK's `odata` tag does this only after text).
    return this.queryPage(`${property} lt '${before.replaceAll("'", "''")}'`, options);
  }

  private async queryPage(filter: string, options: { pageSize?: number; continuationToken?: string }): Promise<Page<T>> {
    const pages = this.client
      .listEntities<TableProperties>({ queryOptions: { filter } })
      .byPage({ maxPageSize: options.pageSize ?? 100, ...(options.continuationToken && { continuationToken: options.continuationToken }) });
    const first: IteratorResult<TableEntityResult<TableProperties>[] & { continuationToken?: string }> = await pages.next();
    if (first.done) return { items: [] };
    const page = first.value;
    return {
      items: page.map((entity) => this.toVersioned(entity)),
      ...(page.continuationToken && { continuationToken: page.continuationToken }),
    };
  }

  /** Every row of a partition (within a row-key range), page by page: for small partitions and admin tools. */
  async *scan(partitionKey: string, range: RowKeyRange = {}): AsyncIterable<Versioned<T>> {
    let continuationToken: string | undefined;
    do {
      const page = await this.page(partitionKey, { range, pageSize: 1000, ...(continuationToken !== undefined && { continuationToken }) });
      yield* page.items;
      continuationToken = page.continuationToken;
    } while (continuationToken !== undefined);
  }

  /** The values of `scan`, collected. */
  async all(partitionKey: string, range: RowKeyRange = {}): Promise<T[]> {
    const values: T[] = [];
    for await (const item of this.scan(partitionKey, range)) values.push(item.value);
    return values;
  }

  private toVersioned(entity: TableEntityResult<TableProperties>): Versioned<T> {
    const { partitionKey, rowKey, etag, timestamp: _timestamp, ...properties } = entity;
    const key = { partitionKey: partitionKey ?? '', rowKey: rowKey ?? '' };
    delete (properties as Record<string, unknown>)['odata.metadata'];
    return { key, value: this.codec.fromProperties(properties, key), etag: requireEtag(etag) };
  }
}

/**
 * Table Storage tokens are base64 JSON naming where the next page starts, in the service's own
 * encoding. A token of another shape was made up: refuse it before it reaches the SDK, which would
 * fail on it in ways that look like a server error. (One from another partition is harmless: the
 * query's PartitionKey filter still holds.)
 */
function assertContinuationShape(token: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
  } catch {
    throw new InvalidContinuationTokenError();
  }
  const next = parsed as { nextPartitionKey?: unknown; nextRowKey?: unknown } | null;
  if (typeof next !== 'object' || next === null || typeof next.nextPartitionKey !== 'string') throw new InvalidContinuationTokenError();
  if (next.nextRowKey !== undefined && typeof next.nextRowKey !== 'string') throw new InvalidContinuationTokenError();
}

function rangeFilter(partitionKey: string, range: RowKeyRange): string {
  const parts = [odata`PartitionKey eq ${partitionKey}`];
  const from = range.prefix ?? range.from;
  const to = range.prefix !== undefined ? prefixUpperBound(range.prefix) : range.to;
  if (from) parts.push(odata`RowKey ge ${from}`);
  if (to !== undefined) parts.push(odata`RowKey lt ${to}`);
  return parts.join(' and ');
}

/** The smallest string greater than every string that starts with `prefix`. */
function prefixUpperBound(prefix: string): string | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const code = prefix.charCodeAt(i);
    if (code < 0xffff) return prefix.slice(0, i) + String.fromCharCode(code + 1);
  }
  return undefined;
}

function describeKey(key: EntityKey): string {
  return `entity (PartitionKey '${key.partitionKey}', RowKey '${key.rowKey}')`;
}

function statusOf(error: unknown): number | undefined {
  return error instanceof RestError ? error.statusCode : undefined;
}

function requireEtag(etag: string | undefined): string {
  if (!etag) throw new Error('Table Storage returned no ETag');
  return etag;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
