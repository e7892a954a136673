import { describe, expect, it } from 'vitest';
import type { Customer } from '../../src/domain/customer.js';
import { VENDOR_EVENTS, type EventDelivery } from '../../src/domain/events.js';
import { deliverySweepSchema, enqueueDeliverySweeps, waitingSince } from '../../src/events/delivery-sweep.js';
import { keys } from '../../src/store/repositories.js';
import { QUEUES } from '../../src/store/storage-layout.js';
import type { Page, RowKeyRange } from '../../src/store/table-repository.js';

/** The customers partition in pages of two, and what the fan-out published. */
function customersOf(ids: string[]) {
  const published: { queue: string; payload: unknown }[] = [];
  const asked: { partitionKey: string; continuationToken?: string }[] = [];
  const customers = {
    page(partitionKey: string, options: { range?: RowKeyRange; pageSize?: number; continuationToken?: string } = {}): Promise<Page<Customer>> {
      asked.push({ partitionKey, ...(options.continuationToken !== undefined && { continuationToken: options.continuationToken }) });
      const start = Number(options.continuationToken ?? 0);
      const items = ids.slice(start, start + 2).map((id) => ({
        key: keys.customer(id),
        value: { id, tags: {}, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' },
        etag: '*',
      }));
      return Promise.resolve({ items, ...(start + 2 < ids.length && { continuationToken: String(start + 2) }) });
    },
  };
  const queues = {
    publish(queue: string, payload: unknown) {
      published.push({ queue, payload });
      return Promise.resolve();
    },
  };
  return { deps: { customers, queues, pageSize: 2 }, published, asked };
}

describe('enqueueDeliverySweeps', () => {
  it('the timer: a sweep per customer of the first page, one for the vendor app events, and the next page', async () => {
    const { deps, published, asked } = customersOf(['acme', 'contoso', 'fabrikam']);
    expect(await enqueueDeliverySweeps(deps)).toEqual({ enqueued: 3, more: true });
    expect(asked).toEqual([{ partitionKey: keys.customersPartition }]);
    expect(published).toEqual([
      { queue: QUEUES.deliverySweep, payload: { customerId: 'acme' } },
      { queue: QUEUES.deliverySweep, payload: { customerId: 'contoso' } },
      { queue: QUEUES.deliverySweep, payload: { customerId: VENDOR_EVENTS } },
      { queue: QUEUES.deliverySweep, payload: { continuationToken: '2' } },
    ]);
  });

  it('a later page: its customers only, and no further page after the last', async () => {
    const { deps, published } = customersOf(['acme', 'contoso', 'fabrikam']);
    expect(await enqueueDeliverySweeps(deps, '2')).toEqual({ enqueued: 1, more: false });
    expect(published).toEqual([{ queue: QUEUES.deliverySweep, payload: { customerId: 'fabrikam' } }]);
    for (const { payload } of published) expect(deliverySweepSchema.safeParse(payload).success).toBe(true);
  });

  it('reads its messages strictly: one customer or one page, never both or neither', () => {
    expect(deliverySweepSchema.safeParse({ customerId: 'acme' }).success).toBe(true);
    expect(deliverySweepSchema.safeParse({ continuationToken: 'eyJ9' }).success).toBe(true);
    expect(deliverySweepSchema.safeParse({}).success).toBe(false);
    expect(deliverySweepSchema.safeParse({ customerId: 'acme', continuationToken: 'eyJ9' }).success).toBe(false);
    expect(deliverySweepSchema.safeParse({ customerId: '' }).success).toBe(false);
  });
});

describe('waitingSince', () => {
  const event = { occurredAt: '2026-01-01T10:00:00.000Z' };
  const delivery: EventDelivery = { endpointId: 'whk_1', status: 'pending', round: 0, attempts: [] };
  const at = (iso: string) => Date.parse(iso);

  it('a first attempt has been due since the event', () => {
    expect(waitingSince(delivery, event)).toBe(at(event.occurredAt));
  });

  it('a retry since its time, a delivery queued again since then: whichever is latest', () => {
    const retrying: EventDelivery = {
      ...delivery,
      status: 'retrying',
      attempts: [{ number: 1, at: '2026-01-01T10:00:01.000Z', outcome: 'retry', latencyMs: 5, httpStatus: 503 }],
      nextAttemptAt: '2026-01-01T10:05:01.000Z',
    };
    expect(waitingSince(retrying, event)).toBe(at('2026-01-01T10:05:01.000Z'));
    expect(waitingSince({ ...retrying, queuedAt: '2026-01-01T10:20:00.000Z' }, event)).toBe(at('2026-01-01T10:20:00.000Z'));
    expect(waitingSince({ ...delivery, round: 1, queuedAt: '2026-01-02T08:00:00.000Z' }, event)).toBe(at('2026-01-02T08:00:00.000Z'));
  });
});
