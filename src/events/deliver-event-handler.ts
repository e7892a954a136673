import type { InvocationContext } from '@azure/functions';
import { getServices } from '../composition.js';
import { deliveryMessageSchema } from './delivery-message.js';

/**
 * The deliver-event queue trigger. A message that is not a delivery message throws, so it ends in
 * deliver-event-poison where ops can see it; a failed delivery does not throw (its retry is a new
 * message), but a storage outage does, so the queue retries the message.
 */
export async function deliverEventHandler(message: unknown, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const parsed = deliveryMessageSchema.safeParse(message);
  if (!parsed.success) throw new Error(`deliver-event message is not a delivery message: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  const { customerId, eventId, endpointId, attempt, round } = parsed.data;
  const logger = services.logFor(context, { customerId, eventId, endpointId, attempt, round });
  const result = await services.deliverEvent(parsed.data);
  if (result.outcome === 'stale') logger.info('webhook delivery skipped', { reason: result.reason });
  else if (result.outcome === 'delivered') logger.info('webhook delivered', { httpStatus: result.attempt.httpStatus, latencyMs: result.attempt.latencyMs });
  else logger.warn(`webhook delivery ${result.outcome === 'retry' ? 'will be retried' : 'failed'}`, { attempt: result.attempt, nextAttemptAt: result.nextAttemptAt });
}
