import type { EventDelivery, StoredEvent } from '../domain/events.js';
import { idLowerBound } from '../domain/ids.js';
import type { QueuePublisher } from '../store/queue-publisher.js';
import { keys } from '../store/repositories.js';
import { QUEUES } from '../store/storage-layout.js';
import { UNCHANGED, type TableRepository } from '../store/table-repository.js';
import type { DeliveryMessage } from './delivery-message.js';

/**
 * Replays: deliver stored events again, after a receiver's outage or a fix on the vendor's side.
 * A replay starts a new round of a delivery: status pending, attempts cleared (the delivery shows
 * the current round; a round's attempts are what its retry check counts), attempt 1 queued. Queue
 * messages of the earlier round, such as a retry still waiting, become stale and end unsent. The
 * event keeps its id, so the receiver sees the same webhook-id and can dedupe.
 *
 * The new round is stored before its message is queued: a message queued first could be handled
 * before the round exists and be dropped as stale. If queueing fails the caller gets the error and
 * the delivery stays pending, for another replay.
 */

export interface ReplayDeps {
  events: Pick<TableRepository<StoredEvent>, 'update' | 'page'>;
  queues: Pick<QueuePublisher, 'publish'>;
  /** Where the messages go: the deliver-event queue unless a test needs one of its own. */
  deliveryQueue?: string;
}

export interface FailedEventsReplay {
  /** Events of the customer since the time that were looked at. */
  scannedEvents: number;
  /** Events with at least one failed delivery, now replayed. */
  replayedEvents: number;
  queued: DeliveryMessage[];
}

export class ReplayNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplayNotFoundError';
  }
}

/**
 * Delivers one event again: to one endpoint, or to every endpoint it was addressed to, whatever
 * their deliveries' status (a delivery still retrying is superseded). Returns the queued messages.
 */
export async function replayEvent(
  deps: ReplayDeps,
  customerId: string,
  eventId: string,
  endpointId?: string,
): Promise<DeliveryMessage[]> {
  const event = await replay(deps, customerId, eventId, (delivery) => endpointId === undefined || delivery.endpointId === endpointId);
  if (!event) throw new ReplayNotFoundError(`Event ${eventId} of customer ${customerId} was not found.`);
  if (endpointId !== undefined && !event.deliveries.some((delivery) => delivery.endpointId === endpointId)) {
    throw new ReplayNotFoundError(
      `Event ${eventId} was not addressed to webhook endpoint ${endpointId}; list the event to see its deliveries.`,
    );
  }
  return event.queued;
}

/** Delivers again every failed delivery of the customer's events that occurred at or after `since`. */
export async function replayFailedEvents(
  deps: ReplayDeps,
  customerId: string,
  since: Date,
  options: { pageSize?: number } = {},
): Promise<FailedEventsReplay> {
  const result: FailedEventsReplay = { scannedEvents: 0, replayedEvents: 0, queued: [] };
  // Event ids begin with their creation time, so the time is a row-key bound.
  const range = { from: idLowerBound('evt', since) };
  let continuationToken: string | undefined;
  do {
    const page = await deps.events.page(customerId, {
      range,
      ...(options.pageSize !== undefined && { pageSize: options.pageSize }),
      ...(continuationToken !== undefined && { continuationToken }),
    });
    for (const { value } of page.items) {
      result.scannedEvents++;
      if (!value.deliveries.some(isFailed)) continue;
      // The event is read again inside replay: its failed deliveries then are the ones replayed.
      const replayed = await replay(deps, customerId, value.id, isFailed);
      if (replayed && replayed.queued.length > 0) {
        result.replayedEvents++;
        result.queued.push(...replayed.queued);
      }
    }
    continuationToken = page.continuationToken;
  } while (continuationToken !== undefined);
  return result;
}

function isFailed(delivery: EventDelivery): boolean {
  return delivery.status === 'failed';
}

/** Starts a new round of the chosen deliveries and queues their first attempts; undefined when there is no such event. */
async function replay(
  deps: ReplayDeps,
  customerId: string,
  eventId: string,
  choose: (delivery: EventDelivery) => boolean,
): Promise<{ deliveries: EventDelivery[]; queued: DeliveryMessage[] } | undefined> {
  let chosen: string[] = [];
  const saved = await deps.events.update(keys.event(customerId, eventId), (current) => {
    if (!current) return UNCHANGED;
    // Reassigned on every run of the mutator, so a rerun after a lost race starts clean.
    chosen = current.deliveries.filter(choose).map((delivery) => delivery.endpointId);
    if (chosen.length === 0) return UNCHANGED;
    return {
      ...current,
      deliveries: current.deliveries.map((delivery) => {
        if (!choose(delivery)) return delivery;
        const { nextAttemptAt: _stale, ...rest } = delivery;
        return { ...rest, status: 'pending', round: delivery.round + 1, attempts: [] };
      }),
    };
  });
  if (!saved) return undefined;
  const queued = saved.value.deliveries
    .filter((delivery) => chosen.includes(delivery.endpointId))
    .map((delivery): DeliveryMessage => ({ customerId, eventId, endpointId: delivery.endpointId, round: delivery.round, attempt: 1 }));
  for (const message of queued) await deps.queues.publish(deps.deliveryQueue ?? QUEUES.deliverEvent, message);
  return { deliveries: saved.value.deliveries, queued };
}
