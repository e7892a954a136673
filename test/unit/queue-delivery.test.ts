import { describe, expect, it } from 'vitest';
import type { DeliveryMessage } from '../../src/events/delivery-message.js';
import { queueDelivery } from '../../src/events/queue-delivery.js';
import type { PublishOptions } from '../../src/store/queue-publisher.js';
import { QUEUES } from '../../src/store/storage-layout.js';

function recordingQueues() {
  const published: { queue: string; payload: unknown; options: PublishOptions | undefined }[] = [];
  return {
    published,
    queues: {
      publish: (queue: string, payload: unknown, options?: PublishOptions) => {
        published.push({ queue, payload, options });
        return Promise.resolve({ messageId: String(published.length) });
      },
    },
  };
}

const message: DeliveryMessage = { customerId: 'acme', eventId: 'evt_01J0000000000000000000000A', endpointId: 'whk_1', round: 2, attempt: 1 };

describe('queueDelivery', () => {
  it('publishes a never-expiring message to the deliver-event queue', async () => {
    const { queues, published } = recordingQueues();
    await queueDelivery({ queues }, message);
    expect(published).toEqual([{ queue: QUEUES.deliverEvent, payload: message, options: { timeToLiveSeconds: -1 } }]);
  });

  it('delays it when asked, and goes to the queue a test names', async () => {
    const { queues, published } = recordingQueues();
    await queueDelivery({ queues, deliveryQueue: 'deliver-event-test' }, message, 300);
    expect(published).toEqual([{ queue: 'deliver-event-test', payload: message, options: { delaySeconds: 300, timeToLiveSeconds: -1 } }]);
  });
});
