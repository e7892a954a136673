import { endpointWants, type WebhookEndpoint } from '../domain/webhook-endpoint.js';
import { newId } from '../domain/ids.js';
import type { ConnectorEvent, StoredEvent } from '../domain/events.js';
import type { QueuePublisher } from '../store/queue-publisher.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError } from '../store/table-repository.js';
import { QUEUES } from '../store/storage-layout.js';
import type { DeliveryMessage } from './delivery-message.js';

export interface RecordEventDeps {
  events: Repositories['events'];
  /** The enabled webhook endpoints (cached by the caller; they change rarely). */
  endpoints: () => Promise<WebhookEndpoint[]>;
  queues: Pick<QueuePublisher, 'publish'>;
  now?: () => Date;
}

export type NewEvent = Omit<ConnectorEvent, 'id' | 'occurredAt'> & Partial<Pick<ConnectorEvent, 'id' | 'occurredAt'>>;

/**
 * Stores an event with a pending delivery for every endpoint that wants it, then queues one
 * delivery message per endpoint. The event is stored first: if queueing fails the caller sees the
 * error, and the event is still there to be replayed. Recording an event whose id is already
 * stored (a retry after a failure half-way) queues its deliveries that never started, again.
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
  try {
    await deps.events.create(key, fresh);
  } catch (error) {
    const stored = error instanceof AlreadyExistsError ? await deps.events.get(key) : undefined;
    if (!stored) throw error;
    event = stored.value;
  }
  await Promise.all(
    event.deliveries
      .filter((delivery) => delivery.round === 0 && delivery.attempts.length === 0 && delivery.status === 'pending')
      .map((delivery) =>
        deps.queues.publish(
          QUEUES.deliverEvent,
          { customerId: event.customerId, eventId: event.id, endpointId: delivery.endpointId, round: 0, attempt: 1 } satisfies DeliveryMessage,
          // Never expiring: functions stopped for longer than the 7-day default must not lose events.
          { timeToLiveSeconds: -1 },
        ),
      ),
  );
  return event;
}
