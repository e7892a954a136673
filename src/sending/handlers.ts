import type { InvocationContext } from '@azure/functions';
import { getServices } from '../composition.js';
import { parseQueueMessage } from '../store/queue-message.js';
import { sendJobSchema } from './send-message.js';

/**
 * The send-mail queue's entry point. A malformed message throws, to end in the poison queue where
 * ops see it; so does a storage outage, so the queue tries again. What Microsoft answers never
 * throws: the use-case records it on the message and queues the next attempt itself.
 */
export async function sendMailHandler(message: unknown, context: InvocationContext): Promise<void> {
  const job = parseQueueMessage('send-mail', sendJobSchema, message);
  const services = await getServices();
  const log = services.logFor(context, { customerId: job.customerId, messageId: job.messageId });
  if (!services.sendMessage) {
    // Without an app registration nothing can be sent (and no connection can be connected to queue one).
    throw new Error('no app registration is configured (ENTRA_CLIENT_ID); cannot send');
  }
  const result = await services.sendMessage(job);
  log.info('send: attempt done', { ...result, ...('until' in result && { until: result.until.toISOString() }) });
}
