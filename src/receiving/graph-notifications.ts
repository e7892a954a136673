import { z } from 'zod';
import type { Connection } from '../domain/connection.js';
import type { Mailbox } from '../domain/mailbox.js';
import type { ReceiveState } from '../domain/receive-state.js';
import type { AccessToken, TokenOptions } from '../identity/access-tokens.js';
import type { Resource } from '../identity/scopes.js';
import type { GraphReceiver } from '../mail/graph-receiver.js';
import type { FoundMessage } from '../mail/mail-receiver.js';
import { keys, type Repositories, type SubscriptionIndex } from '../store/repositories.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { clientStateHashMatches, forget } from './graph-subscriptions.js';
import type { IngestMailbox, IngestOutcome } from './ingest-message.js';
import type { PollJob } from './poll-mailbox.js';
import type { ReceiveStates } from './receive-states.js';

/**
 * What Graph posts to the notification URLs, handled off the request (the endpoint only queues
 * it, to answer within Graph's 3 seconds). Each notification is checked against its
 * subscription's clientState before anything is done for it; one that does not match is dropped
 * and logged (a forgery, or a subscription we no longer know).
 *
 * - `created`: the new message is fetched by its (immutable) id and ingested at once; the delta
 *   round that later sees it too finds it already emitted.
 * - `reauthorizationRequired`: reauthorize the subscription (Graph asks before it stops sending).
 * - `subscriptionRemoved`: forget it; the next look makes a new one and catches up with delta.
 * - `missed`: notifications were lost; a look now catches up with delta.
 */

const notificationSchema = z.looseObject({
  subscriptionId: z.string().min(1).max(200),
  /** The SHA-256 of Graph's clientState: the endpoint hashes it before queueing, so no queue holds the secret. */
  clientStateHash: z.string().max(100).optional(),
  changeType: z.string().max(50).optional(),
  lifecycleEvent: z.string().max(100).optional(),
  resourceData: z.looseObject({ id: z.string().min(1).max(1000) }).optional(),
  tenantId: z.string().max(100).optional(),
});
export type GraphNotification = z.infer<typeof notificationSchema>;

export const notificationBatchSchema = z.object({
  kind: z.enum(['change', 'lifecycle']),
  value: z.array(notificationSchema).max(1000),
});
export type NotificationBatch = z.infer<typeof notificationBatchSchema>;

export interface NotificationDeps {
  index: Repositories['graphSubscriptions'];
  connections: Repositories['connections'];
  mailboxes: Repositories['mailboxes'];
  states: ReceiveStates;
  tokens: { getAccessToken(connection: Connection, resource: Resource, options?: TokenOptions): Promise<AccessToken> };
  graph(connection: Connection): GraphReceiver;
  ingest(mailbox: IngestMailbox, found: FoundMessage): Promise<IngestOutcome>;
  enqueuePoll(job: PollJob, delaySeconds: number): Promise<void>;
  logger: Logger;
  metrics: Metrics;
}

export interface NotificationOutcome {
  emitted: number;
  duplicates: number;
  rejected: number;
  polls: number;
}

export async function handleNotifications(deps: NotificationDeps, batch: NotificationBatch): Promise<NotificationOutcome> {
  const outcome: NotificationOutcome = { emitted: 0, duplicates: 0, rejected: 0, polls: 0 };
  const polls = new Map<string, PollJob>();
  for (const notification of batch.value) {
    const index = (await deps.index.get(keys.graphSubscription(notification.subscriptionId)))?.value;
    if (!index || !clientStateHashMatches(notification.clientStateHash, index.clientStateHash)) {
      outcome.rejected++;
      deps.metrics.count('receive.notifications', { kind: batch.kind, outcome: 'rejected' });
      deps.logger.warn('receive: a Graph notification for an unknown subscription or with the wrong clientState was dropped', {
        subscriptionId: notification.subscriptionId,
        known: index !== undefined,
      });
      continue;
    }
    deps.metrics.count('receive.notifications', { kind: batch.kind, outcome: 'accepted', event: notification.lifecycleEvent ?? notification.changeType ?? 'unknown' });
    const catchUp = (reason: PollJob['reason']) => polls.set(`${index.customerId}/${index.connectionId}/${index.mailboxId}`, { ...mailboxOf(index), reason });
    if (batch.kind === 'change') {
      const messageId = notification.resourceData?.id;
      if (notification.changeType !== 'created' || messageId === undefined) continue;
      const result = await fetchAndIngest(deps, index, messageId);
      if (result === 'new') outcome.emitted++;
      else if (result === 'duplicate') outcome.duplicates++;
      else catchUp('notification');
      continue;
    }
    switch (notification.lifecycleEvent) {
      case 'reauthorizationRequired':
        if (!(await reauthorize(deps, index, notification.subscriptionId))) catchUp('resubscribe');
        break;
      case 'subscriptionRemoved':
        await dropSubscription(deps, index, notification.subscriptionId);
        catchUp('resubscribe');
        break;
      case 'missed':
        catchUp('missed');
        break;
      default:
        deps.logger.info('receive: a Graph lifecycle notification of an unknown kind was ignored', { lifecycleEvent: notification.lifecycleEvent });
    }
  }
  for (const job of polls.values()) await deps.enqueuePoll(job, 0);
  outcome.polls = polls.size;
  return outcome;
}

function mailboxOf(index: SubscriptionIndex): Omit<PollJob, 'reason'> {
  return { customerId: index.customerId, connectionId: index.connectionId, mailboxId: index.mailboxId };
}

interface Reachable {
  connection: Connection;
  mailbox: Mailbox;
}

async function reachable(deps: NotificationDeps, index: SubscriptionIndex): Promise<Reachable | undefined> {
  const connection = (await deps.connections.get(keys.connection(index.customerId, index.connectionId)))?.value;
  const mailbox = (await deps.mailboxes.get(keys.mailbox(index.customerId, index.connectionId, index.mailboxId)))?.value;
  if (!connection || !mailbox || mailbox.receiveTransport !== 'graph') return undefined;
  if (connection.state !== 'connected' && connection.state !== 'degraded') return undefined;
  return { connection, mailbox };
}

/** 'new' or 'duplicate', or 'failed' when the message could not be had now (a look catches up instead). */
async function fetchAndIngest(deps: NotificationDeps, index: SubscriptionIndex, messageId: string): Promise<IngestOutcome | 'failed'> {
  const found = await reachable(deps, index);
  if (!found) return 'failed';
  const log = deps.logger.child({ customerId: index.customerId, connectionId: index.connectionId, mailboxId: index.mailboxId });
  try {
    const token = await deps.tokens.getAccessToken(found.connection, 'graph');
    const target = { mailbox: found.mailbox.address, accessToken: token.token };
    return await deps.ingest(
      { customerId: index.customerId, connectionId: index.connectionId, mailboxId: index.mailboxId, address: found.mailbox.address, transport: 'graph', tags: found.connection.tags },
      { folder: index.folder, fingerprint: `graph:${messageId}`, raw: () => deps.graph(found.connection).raw(target, messageId) },
    );
  } catch (error) {
    log.warn('receive: a notified message could not be fetched; a delta look catches up', { error });
    return 'failed';
  }
}

async function reauthorize(deps: NotificationDeps, index: SubscriptionIndex, subscriptionId: string): Promise<boolean> {
  const found = await reachable(deps, index);
  if (!found) return false;
  try {
    const token = await deps.tokens.getAccessToken(found.connection, 'graph');
    await deps.graph(found.connection).reauthorize({ mailbox: found.mailbox.address, accessToken: token.token }, subscriptionId);
    return true;
  } catch (error) {
    deps.logger.warn('receive: a Graph subscription could not be reauthorized; it is made again', { subscriptionId, error });
    const token = await deps.tokens.getAccessToken(found.connection, 'graph').catch(() => undefined);
    if (token) await forget(deps, deps.graph(found.connection), { mailbox: found.mailbox.address, accessToken: token.token }, subscriptionId, deps.logger);
    await dropSubscription(deps, index, subscriptionId);
    return false;
  }
}

async function dropSubscription(deps: NotificationDeps, index: SubscriptionIndex, subscriptionId: string): Promise<void> {
  await deps.states.change(index, (state) => {
    const subscriptions = Object.fromEntries(Object.entries(state.subscriptions ?? {}).filter(([, subscription]) => subscription.id !== subscriptionId));
    // Polling until the next look (which the caller queues) has made a new one, at once.
    const next: ReceiveState = { ...state, subscriptions, mode: 'polling', modeReason: 'Graph removed the subscription; a new one is being made.' };
    delete next.subscribeAfter;
    return next;
  });
  await deps.index.delete(keys.graphSubscription(subscriptionId));
}
