import type { EventDelivery, StoredEvent } from '../domain/events.js';
import { idLowerBound } from '../domain/ids.js';
import { keys } from '../store/repositories.js';
import { UNCHANGED, type TableRepository } from '../store/table-repository.js';
import type { DeliveryMessage } from './delivery-message.js';
import { waitingSince } from './delivery-sweep.js';
import { queueDelivery, type QueueDeliveryDeps } from './queue-delivery.js';

/**
 * Replays: deliver stored events again, after a receiver's outage or a fix on the vendor's side.
 * A replay starts a new round of a delivery: status pending, attempts cleared (the delivery shows
 * the current round; a round's attempts are what its retry check counts), attempt 1 queued. Queue
 * messages of the earlier round, such as a retry still waiting, become stale and end unsent. The
 * event keeps its id, so the receiver sees the same webhook-id and can dedupe.
 *
 * The new round is stored before its message is queued: a message queued first could be handled
 * before the round exists and be dropped as stale. If queueing fails the caller gets the error and
 * the delivery stays pending until another replay, or the delivery sweep for a recent event,
 * queues it (the round records when it was queued, so neither takes a round just queued for stuck).
 */

/**
 * How long a delivery may sit past its due time before replayFailedEvents counts it as stuck. It
 * covers a busy queue and the queue's own retries of a message (a few minutes each), so that a
 * delivery still on its way is not started over.
 */
const DEFAULT_STUCK_AFTER_MS = 60 * 60 * 1000;

export interface ReplayDeps extends QueueDeliveryDeps {
  events: Pick<TableRepository<StoredEvent>, 'update' | 'page'>;
  now?: () => Date;
}

export interface FailedEventsReplay {
  /** Events of the customer since the time that were looked at. */
  scannedEvents: number;
  /** Events with at least one failed or stuck delivery, now replayed. */
  replayedEvents: number;
  /** One message per replayed delivery. */
  queued: DeliveryMessage[];
}

export interface FailedEventsReplayOptions {
  pageSize?: number;
  /** How long past its due time a delivery counts as stuck; one hour by default. */
  stuckAfterMs?: number;
  now?: () => Date;
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

/**
 * Delivers again every failed or stuck delivery of the customer's events that occurred at or after
 * `since`. A delivery is stuck when nothing will move it on: its message went to the poison queue
 * (storage or the secret store out of reach for every dequeue), or queueing it failed after the
 * event or the round was saved. That shows as a delivery more than `stuckAfterMs` past its due
 * time: a retrying one past its nextAttemptAt, a pending one past the event's time, or past when a
 * replay or the delivery sweep last queued it. The delivery sweep (delivery-sweep.ts) queues the
 * stuck deliveries of recent events by itself; this is for older ones, and for the failed.
 */
export async function replayFailedEvents(
  deps: ReplayDeps,
  customerId: string,
  since: Date,
  options: FailedEventsReplayOptions = {},
): Promise<FailedEventsReplay> {
  const now = options.now ?? deps.now;
  const stuckBefore = (now?.() ?? new Date()).getTime() - (options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS);
  const choose = (delivery: EventDelivery, event: StoredEvent) => isFailedOrStuck(delivery, event, stuckBefore);
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
      if (!value.deliveries.some((delivery) => choose(delivery, value))) continue;
      // The event is read again inside replay: the deliveries chosen then are the ones replayed.
      const replayed = await replay({ ...deps, ...(now && { now }) }, customerId, value.id, choose);
      if (replayed && replayed.queued.length > 0) {
        result.replayedEvents++;
        result.queued.push(...replayed.queued);
      }
    }
    continuationToken = page.continuationToken;
  } while (continuationToken !== undefined);
  return result;
}

function isFailedOrStuck(delivery: EventDelivery, event: StoredEvent, stuckBefore: number): boolean {
  switch (delivery.status) {
    case 'failed':
      return true;
    case 'retrying':
    case 'pending':
      return waitingSince(delivery, event) < stuckBefore;
    case 'delivered':
      return false;
  }
}

/** Starts a new round of the chosen deliveries and queues their first attempts; undefined when there is no such event. */
async function replay(
  deps: ReplayDeps,
  customerId: string,
  eventId: string,
  choose: (delivery: EventDelivery, event: StoredEvent) => boolean,
): Promise<{ deliveries: EventDelivery[]; queued: DeliveryMessage[] } | undefined> {
  let chosen: string[] = [];
  const queuedAt = (deps.now?.() ?? new Date()).toISOString();
  const saved = await deps.events.update(keys.event(customerId, eventId), (current) => {
    if (!current) return UNCHANGED;
    // Reassigned on every run of the mutator, so a rerun after a lost race starts clean.
    chosen = current.deliveries.filter((delivery) => choose(delivery, current)).map((delivery) => delivery.endpointId);
    if (chosen.length === 0) return UNCHANGED;
    return {
      ...current,
      deliveries: current.deliveries.map((delivery) => {
        if (!chosen.includes(delivery.endpointId)) return delivery;
        const { nextAttemptAt: _stale, ...rest } = delivery;
        return { ...rest, status: 'pending', round: delivery.round + 1, attempts: [], queuedAt };
      }),
    };
  });
  if (!saved) return undefined;
  const queued = saved.value.deliveries
    .filter((delivery) => chosen.includes(delivery.endpointId))
    .map((delivery): DeliveryMessage => ({ customerId, eventId, endpointId: delivery.endpointId, round: delivery.round, attempt: 1 }));
  for (const message of queued) await queueDelivery(deps, message);
  return { deliveries: saved.value.deliveries, queued };
}
