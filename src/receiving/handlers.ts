import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from '@azure/functions';
import { parseQueueMessage } from '../store/queue-message.js';
import { getServices, type ReceivingServices, type Services } from '../composition.js';
import { QUEUES } from '../store/storage-layout.js';
import type { Logger } from '../telemetry/logger.js';
import { notificationBatchSchema, type NotificationBatch } from './graph-notifications.js';
import { answerGraph } from './notification-endpoint.js';
import { pollJobSchema } from './poll-mailbox.js';
import { POLL_TICK_MS, pollScanSchema } from './schedule-polls.js';

/**
 * The Functions entry points of receiving. Malformed queue messages throw, to end in the poison
 * queue where ops see them; so does a storage outage, so the queue tries again. What a mail
 * server or Graph answers never throws: the look records it on the mailbox and is due again later.
 */

async function receivingOrSkip(context: InvocationContext): Promise<{ services: Services; receiving: ReceivingServices; log: Logger } | undefined> {
  const services = await getServices();
  const log = services.logFor(context);
  if (!services.receiving) {
    log.info('no app registration is configured (ENTRA_CLIENT_ID); nothing to receive');
    return undefined;
  }
  return { services, receiving: services.receiving, log };
}

export async function pollTimerHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const ready = await receivingOrSkip(context);
  if (!ready) return;
  const result = await ready.receiving.enqueueDuePolls({ dueBefore: new Date(Date.now() + POLL_TICK_MS).toISOString() });
  if (result.enqueued > 0 || result.more) ready.log.debug('receive: due mailboxes enqueued', result);
}

export async function pollScanHandler(message: unknown, context: InvocationContext): Promise<void> {
  const scan = parseQueueMessage('poll-scan', pollScanSchema, message);
  const ready = await receivingOrSkip(context);
  if (!ready) return;
  ready.log.debug('receive: next page of due mailboxes enqueued', await ready.receiving.enqueueDuePolls(scan));
}

export async function pollMailboxHandler(message: unknown, context: InvocationContext): Promise<void> {
  const job = parseQueueMessage('poll-mailbox', pollJobSchema, message);
  const ready = await receivingOrSkip(context);
  if (!ready) return;
  const result = await ready.receiving.pollMailbox(job);
  const log = ready.services.logFor(context, { customerId: job.customerId, connectionId: job.connectionId, mailboxId: job.mailboxId });
  if (result.outcome === 'polled' && result.emitted > 0) log.info('receive: new messages', result);
  else log.debug('receive: look done', result);
}

export async function graphNotificationHandler(message: unknown, context: InvocationContext): Promise<void> {
  const batch = parseQueueMessage('graph-notification', notificationBatchSchema, message);
  const ready = await receivingOrSkip(context);
  if (!ready) return;
  ready.log.info('receive: Graph notifications handled', { kind: batch.kind, ...(await ready.receiving.handleNotifications(batch)) });
}

export async function inboxRetentionHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const deleted = await services.inboxContent.deleteBefore(new Date(Date.now() - services.config.receiving.retentionMs));
  services.logFor(context).info('receive: received messages past retention deleted', { deleted });
}

/** Graph's change notifications (…/api/graph/notifications) and lifecycle notifications (…/api/graph/lifecycle). */
export function graphNotificationsHttp(kind: NotificationBatch['kind']) {
  return (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> =>
    answerGraph(request, kind, async () => {
      const services = await getServices();
      return async (batch) => {
        try {
          await services.queues.publish(QUEUES.graphNotification, batch);
        } catch (error) {
          services.logFor(context).error('receive: a Graph notification could not be queued; Graph delivers it again', { error });
          throw error;
        }
      };
    });
}
