import { z } from 'zod';
import type { Customer } from '../domain/customer.js';
import { VENDOR_EVENTS, type EventDelivery, type StoredEvent } from '../domain/events.js';
import { idLowerBound } from '../domain/ids.js';
import { keys } from '../store/repositories.js';
import { QUEUES } from '../store/storage-layout.js';
import { UNCHANGED, type TableRepository } from '../store/table-repository.js';
import type { DeliveryMessage } from './delivery-message.js';
import { queueDelivery, type QueueDeliveryDeps } from './queue-delivery.js';

/**
 * The delivery sweep: deliveries that nothing will move on, queued again without an operator. A
 * delivery is stored before its queue message is sent (recordEvent, a retry, a replay), so a crash
 * or a failed queue write in between leaves it pending with no message; so does a message that
 * went to the poison queue. The caller's own retry does not help when it comes within a minute
 * (recordEvent then takes the first message for still waiting).
 *
 * A timer fans out one message per customer (and one for the vendor's app events); each looks at
 * the customer's recent events and queues the next attempt of every delivery that has waited for
 * one too long. The attempt is the one that is due, in the delivery's current round, so a message
 * that was merely slow and the sweep's are the same attempt: whichever runs first makes it, and the
 * deliver-event handler turns the other away as already made (only two handled at the very same
 * moment could both post it, with one webhook-id the receiver dedupes by; a new round instead would
 * make the slow message stale, and a queue slower than the threshold would then never deliver).
 * Each delivery queued again is first stamped (queuedAt) in a conditional write that checks again
 * on the row it writes, so of several sweeps at once one queues it, and the next sweeps wait
 * another `stuckAfterMs` before they do.
 */

/** How long a delivery may wait for its next attempt before the sweep queues it again. */
export const STUCK_AFTER_MS = 10 * 60_000;
/**
 * How far back the sweep looks, by the event's time: far enough for a secret store or storage
 * outage of a few hours (whose messages went to the poison queue meanwhile); an older event is left
 * to `replay-failed`. It bounds what every sweep reads: each event is read about 70 times.
 */
export const SWEEP_WINDOW_MS = 6 * 3_600_000;

/** A delivery-sweep queue message: sweep one customer's events, or enqueue the next page of customers. */
export const deliverySweepSchema = z.union([
  z.strictObject({ customerId: z.string().min(1) }),
  z.strictObject({ continuationToken: z.string().min(1) }),
]);
export type DeliverySweep = z.infer<typeof deliverySweepSchema>;

export interface SweepScheduleDeps {
  customers: Pick<TableRepository<Customer>, 'page'>;
  queues: { publish(queue: string, payload: unknown): Promise<unknown> };
  pageSize?: number;
}

/**
 * The timer's fan-out (no continuation token) and the delivery-sweep queue's next pages: one page of
 * customers, a message per customer, and one for the next page. The first page also sweeps the
 * vendor's app events, which no customer holds.
 */
export async function enqueueDeliverySweeps(deps: SweepScheduleDeps, continuationToken?: string): Promise<{ enqueued: number; more: boolean }> {
  const page = await deps.customers.page(keys.customersPartition, {
    pageSize: deps.pageSize ?? 200,
    ...(continuationToken !== undefined && { continuationToken }),
  });
  const customerIds = page.items.map((item) => item.value.id);
  if (continuationToken === undefined) customerIds.push(VENDOR_EVENTS);
  await Promise.all(customerIds.map((customerId) => deps.queues.publish(QUEUES.deliverySweep, { customerId } satisfies DeliverySweep)));
  if (page.continuationToken !== undefined) {
    await deps.queues.publish(QUEUES.deliverySweep, { continuationToken: page.continuationToken } satisfies DeliverySweep);
  }
  return { enqueued: customerIds.length, more: page.continuationToken !== undefined };
}

export interface DeliverySweepDeps extends QueueDeliveryDeps {
  events: Pick<TableRepository<StoredEvent>, 'page' | 'update'>;
  now?: () => Date;
}

export interface DeliverySweepOptions {
  stuckAfterMs?: number;
  windowMs?: number;
  pageSize?: number;
}

export interface DeliverySweepResult {
  scannedEvents: number;
  /** One message per delivery queued again. */
  queued: DeliveryMessage[];
}

/** Queues again the next attempt of every delivery of the customer's recent events that waited for it longer than `stuckAfterMs`. */
export async function requeueStuckDeliveries(deps: DeliverySweepDeps, customerId: string, options: DeliverySweepOptions = {}): Promise<DeliverySweepResult> {
  const now = deps.now?.() ?? new Date();
  const stuckBefore = now.getTime() - (options.stuckAfterMs ?? STUCK_AFTER_MS);
  // Event ids begin with their creation time; an event younger than the threshold has nothing stuck yet.
  const range = { from: idLowerBound('evt', new Date(now.getTime() - (options.windowMs ?? SWEEP_WINDOW_MS))), to: idLowerBound('evt', new Date(stuckBefore)) };
  const stuck = (delivery: EventDelivery, event: StoredEvent) => isWaiting(delivery) && waitingSince(delivery, event) < stuckBefore;
  const result: DeliverySweepResult = { scannedEvents: 0, queued: [] };
  let continuationToken: string | undefined;
  do {
    const page = await deps.events.page(customerId, { range, pageSize: options.pageSize ?? 1000, ...(continuationToken !== undefined && { continuationToken }) });
    for (const { value } of page.items) {
      result.scannedEvents++;
      if (value.deliveries.some((delivery) => stuck(delivery, value))) result.queued.push(...(await requeue(deps, value, stuck, now)));
    }
    continuationToken = page.continuationToken;
  } while (continuationToken !== undefined);
  return result;
}

/** Waiting for an attempt: a first one (pending) or a retry. */
function isWaiting(delivery: EventDelivery): boolean {
  return delivery.status === 'pending' || delivery.status === 'retrying';
}

/**
 * Since when the delivery's next attempt has been due: the latest of the event's time, the last
 * attempt, the retry's time and the last time a replay or the sweep queued it.
 */
export function waitingSince(delivery: EventDelivery, event: Pick<StoredEvent, 'occurredAt'>): number {
  const times = [event.occurredAt, delivery.attempts.at(-1)?.at, delivery.nextAttemptAt, delivery.queuedAt];
  return Math.max(...times.flatMap((time) => (time === undefined ? [] : [Date.parse(time)])));
}

/** Stamps the chosen deliveries (checked again on the row being written) and queues their next attempts. */
async function requeue(
  deps: DeliverySweepDeps,
  event: StoredEvent,
  choose: (delivery: EventDelivery, event: StoredEvent) => boolean,
  now: Date,
): Promise<DeliveryMessage[]> {
  let chosen: EventDelivery[] = [];
  await deps.events.update(keys.event(event.customerId, event.id), (current) => {
    // Reassigned on every run of the mutator: the run whose write counts decides.
    chosen = current ? current.deliveries.filter((delivery) => choose(delivery, current)) : [];
    if (!current || chosen.length === 0) return UNCHANGED;
    return {
      ...current,
      deliveries: current.deliveries.map((delivery) => (chosen.includes(delivery) ? { ...delivery, queuedAt: now.toISOString() } : delivery)),
    };
  });
  const messages = chosen.map(
    (delivery): DeliveryMessage => ({
      customerId: event.customerId,
      eventId: event.id,
      endpointId: delivery.endpointId,
      round: delivery.round,
      attempt: (delivery.attempts.at(-1)?.number ?? 0) + 1,
    }),
  );
  for (const message of messages) await queueDelivery(deps, message);
  return messages;
}
