import type { QueuePublisher } from '../store/queue-publisher.js';
import { QUEUES } from '../store/storage-layout.js';
import type { DeliveryMessage } from './delivery-message.js';

export interface QueueDeliveryDeps {
  queues: Pick<QueuePublisher, 'publish'>;
  /** Where the messages go: the deliver-event queue unless a test needs one of its own. */
  deliveryQueue?: string;
}

/**
 * Queues one delivery attempt, the one way every first attempt, retry and replay is queued.
 * The message never expires: functions stopped for longer than the Storage default of 7 days
 * must not lose events, a retry must outlive its delay, and a message that outlived its round
 * ends harmlessly as stale.
 */
export async function queueDelivery(deps: QueueDeliveryDeps, message: DeliveryMessage, delaySeconds?: number): Promise<void> {
  await deps.queues.publish(deps.deliveryQueue ?? QUEUES.deliverEvent, message, {
    ...(delaySeconds !== undefined && { delaySeconds }),
    timeToLiveSeconds: -1,
  });
}
