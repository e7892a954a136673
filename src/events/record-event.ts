import { endpointWants, type WebhookEndpoint } from '../domain/webhook-endpoint.js';
import { newId } from '../domain/ids.js';
import type { ConnectorEvent, EventDelivery, StoredEvent } from '../domain/events.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError } from '../store/table-repository.js';
import { queueDelivery, type QueueDeliveryDeps } from './queue-delivery.js';

/** How old an already stored event must be before recordEvent takes its unstarted deliveries for leftovers. */
const DEFAULT_REQUEUE_AFTER_MS = 60_000;

export interface RecordEventDeps extends QueueDeliveryDeps {
  events: Repositories['events'];
  /** The enabled webhook endpoints (cached by the caller; they change rarely). */
  endpoints: () => Promise<WebhookEndpoint[]>;
  /** How old a stored event must be before its unstarted deliveries count as leftovers; one minute by default. */
  requeueAfterMs?: number;
  now?: () => Date;
}

export type NewEvent = Omit<ConnectorEvent, 'id' | 'occurredAt'> & Partial<Pick<ConnectorEvent, 'id' | 'occurredAt'>>;

/**
 * Stores an event with a pending delivery for every endpoint that wants it, then queues one
 * delivery message per endpoint. The event is stored first: if queueing fails the caller sees the
 * error, and the event is still there to be replayed.
 *
 * Recording an event whose id is already stored is a retry of a call that failed half-way, or a
 * quick repeat of one that did not. Its first-round deliveries that never started are queued
 * again only once the event is older than `requeueAfterMs`: before that, their first message is
 * most likely still waiting in the queue, and a second one could send the event twice. A leftover
 * younger than that, or of a replay's round, is found by replayFailedEvents.
 */
export async function recordEvent(deps: RecordEventDeps, input: NewEvent): Promise<StoredEvent> {
  const now = deps.now?.() ?? new Date();
  const endpoints = (await deps.endpoints()).filter((endpoint) => endpointWants(endpoint, input.customerId, input.type));
  const fresh: StoredEvent = {
    ...input,
    id: input.id ?? newId('evt', now.getTime()),
    occurredAt: input.occurredAt ?? now.toISOString(),
    deliveries: endpoints.map((endpoint) => ({ endpointId: endpoint.id, status: 'pending', round: 0, attempts: [] })),
  };
  const key = keys.event(fresh.customerId, fresh.id);
  let event = fresh;
  let toQueue = fresh.deliveries;
  try {
    await deps.events.create(key, fresh);
  } catch (error) {
    const stored = error instanceof AlreadyExistsError ? await deps.events.get(key) : undefined;
    if (!stored) throw error;
    event = stored.value;
    const leftSince = now.getTime() - (deps.requeueAfterMs ?? DEFAULT_REQUEUE_AFTER_MS);
    toQueue = Date.parse(event.occurredAt) < leftSince ? event.deliveries.filter(neverStarted) : [];
  }
  await Promise.all(
    toQueue.map((delivery) =>
      queueDelivery(deps, { customerId: event.customerId, eventId: event.id, endpointId: delivery.endpointId, round: 0, attempt: 1 }),
    ),
  );
  return event;
}

function neverStarted(delivery: EventDelivery): boolean {
  return delivery.round === 0 && delivery.status === 'pending' && delivery.attempts.length === 0;
}
