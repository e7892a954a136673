import type { InvocationContext } from '@azure/functions';
import { getServices } from '../composition.js';
import { sendJobSchema } from './send-message.js';

/**
 * The send-mail queue's entry point. A malformed message throws, to end in the poison queue where
 * ops see it; so does a storage outage, so the queue tries again. What Microsoft answers never
 * throws: the use-case records it on the message and queues the next attempt itself.
 */
export async function sendMailHandler(message: unknown, context: InvocationContext): Promise<void> {
  const parsed = sendJobSchema.safeParse(message);
  if (!parsed.success) throw new Error(`send-mail message is malformed: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  const services = await getServices();
  const log = services.logFor(context, { customerId: parsed.data.customerId, messageId: parsed.data.messageId });
  if (!services.sendMessage) {
    // Without an app registration nothing can be sent (and no connection can be connected to queue one).
    throw new Error('no app registration is configured (ENTRA_CLIENT_ID); cannot send');
  }
  const result = await services.sendMessage(parsed.data);
  log.info('send: attempt done', { ...result, ...('until' in result && { until: result.until.toISOString() }) });
}
