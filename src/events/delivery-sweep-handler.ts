import type { InvocationContext, Timer } from '@azure/functions';
import { getServices } from '../composition.js';
import { parseQueueMessage } from '../store/queue-message.js';
import { deliverySweepSchema } from './delivery-sweep.js';

/**
 * The delivery sweep's Functions entry points: the timer enqueues a message per customer, the
 * queue sweeps one customer's recent events (or enqueues the next page of customers). A malformed
 * message throws, so it ends in delivery-sweep-poison; so does a storage outage after the queue's
 * retries, and the next timer run sweeps again.
 */

export async function deliverySweepTimerHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  services.logFor(context).debug('delivery sweep: customers enqueued', await services.enqueueDeliverySweeps());
}

export async function deliverySweepHandler(message: unknown, context: InvocationContext): Promise<void> {
  const sweep = parseQueueMessage('delivery-sweep', deliverySweepSchema, message);
  const services = await getServices();
  if ('continuationToken' in sweep) {
    services.logFor(context).debug('delivery sweep: next page of customers enqueued', await services.enqueueDeliverySweeps(sweep.continuationToken));
    return;
  }
  const result = await services.requeueStuckDeliveries(sweep.customerId);
  if (result.queued.length === 0) return;
  // Something stopped these deliveries (a crash before their queue message, a poison message): worth a look.
  services.logFor(context, { customerId: sweep.customerId }).warn('delivery sweep: stuck webhook deliveries queued again', {
    deliveries: result.queued.map((queued) => `${queued.eventId}/${queued.endpointId}#${String(queued.attempt)}`).join(' '),
  });
}
