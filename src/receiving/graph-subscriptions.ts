import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { subscriptionDue, type ReceivePolicy, type ReceiveState, type Subscription } from '../domain/receive-state.js';
import type { GraphReceiver } from '../mail/graph-receiver.js';
import { ReceiveAttemptError, type ReceiveFailure, type ReceiveTarget } from '../mail/mail-receiver.js';
import { keys, type Repositories } from '../store/repositories.js';
import type { Logger } from '../telemetry/logger.js';

/**
 * Graph change notifications for a mailbox's folders (microsoft.md §5.5): one subscription per
 * folder, renewed a day before it expires, recreated when Graph removed it. When one cannot be
 * made (Graph cannot reach the notification URL, as on a developer's machine, or refuses), the
 * mailbox keeps polling by delta, says why in its status, and tries again hours later.
 *
 * The clientState is a fresh random secret per subscription: Graph echoes it in every
 * notification, and only its SHA-256 is kept, so a notification is checked without storing a
 * secret in a table.
 */

export interface SubscriptionDeps {
  index: Repositories['graphSubscriptions'];
  /** Where Graph posts change notifications and lifecycle notifications; undefined when notifications are off. */
  urls: { notifications: string; lifecycle: string } | undefined;
  policy: ReceivePolicy;
  logger: Logger;
  now(): Date;
}

export interface SubscriptionOutcome {
  subscriptions: Record<string, Subscription>;
  mode: ReceiveState['mode'];
  modeReason?: string;
  subscribeAfter?: string;
}

export function hashClientState(clientState: string): string {
  return createHash('sha256').update(clientState, 'utf8').digest('base64url');
}

/** Compares a notification's clientState hash with the subscription's, in constant time; a missing one never matches. */
export function clientStateHashMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Makes, renews and drops subscriptions so that each watched folder has one; says the mode that results. */
export async function upkeepSubscriptions(
  deps: SubscriptionDeps,
  graph: GraphReceiver,
  target: ReceiveTarget,
  state: ReceiveState,
  folders: readonly string[],
): Promise<SubscriptionOutcome> {
  const now = deps.now();
  const current = new Map(Object.entries(state.subscriptions ?? {}));
  const log = deps.logger.child({ customerId: state.customerId, connectionId: state.connectionId, mailboxId: state.mailboxId });

  for (const [folder, subscription] of [...current]) {
    if (folders.includes(folder) && deps.urls) continue;
    current.delete(folder);
    await forget(deps, graph, target, subscription.id, log);
  }
  if (!deps.urls) return { subscriptions: Object.fromEntries(current), mode: 'polling', modeReason: 'Graph notifications are turned off (GRAPH_NOTIFICATIONS=off).' };

  let failure: ReceiveFailure | undefined;
  const waiting = state.subscribeAfter !== undefined && state.subscribeAfter > now.toISOString();
  for (const folder of folders) {
    const existing = current.get(folder);
    if (existing && !subscriptionDue(existing, deps.policy, now)) continue;
    if (existing) {
      try {
        const renewed = await graph.renew(target, existing.id, new Date(now.getTime() + deps.policy.subscriptionLifetimeMs));
        current.set(folder, { ...existing, expiresAt: renewed.expiresAt });
        continue;
      } catch (error) {
        if (!(error instanceof ReceiveAttemptError)) throw error;
        if (error.failure.kind !== 'not_found' && Date.parse(existing.expiresAt) > now.getTime()) {
          // It still works for a while; the next look tries again.
          log.warn('receive: a Graph subscription could not be renewed', { subscriptionId: existing.id, failure: error.failure });
          continue;
        }
        current.delete(folder);
        await deps.index.delete(keys.graphSubscription(existing.id));
      }
    }
    if (waiting) continue;
    try {
      current.set(folder, await subscribe(deps, graph, target, state, folder, now));
    } catch (error) {
      if (!(error instanceof ReceiveAttemptError)) throw error;
      failure = error.failure;
      log.warn('receive: no Graph subscription; the mailbox is polled by delta instead', { folder, failure: error.failure });
    }
  }

  const subscriptions = Object.fromEntries(current);
  if (folders.every((folder) => current.has(folder))) return { subscriptions, mode: 'notifications' };
  if (failure === undefined) {
    // Still waiting to try again: the reason is the one given when the last try failed.
    return { subscriptions, mode: 'polling', modeReason: state.modeReason ?? 'Graph notifications are not set up yet.', ...(state.subscribeAfter !== undefined && { subscribeAfter: state.subscribeAfter }) };
  }
  return {
    subscriptions,
    mode: 'polling',
    modeReason: `Graph could not create a change-notification subscription, so the mailbox is polled instead (${failure.detail}). ${subscribeAdvice(failure, deps.urls.notifications)} It is tried again in ${String(Math.round(deps.policy.resubscribeAfterMs / 3_600_000))} hours.`,
    subscribeAfter: new Date(now.getTime() + deps.policy.resubscribeAfterMs).toISOString(),
  };
}

async function subscribe(deps: SubscriptionDeps, graph: GraphReceiver, target: ReceiveTarget, state: ReceiveState, folder: string, now: Date): Promise<Subscription> {
  const urls = deps.urls;
  if (!urls) throw new Error('notifications are off');
  const clientState = randomBytes(32).toString('base64url');
  const created = await graph.subscribe(target, {
    folder: graphFolder(folder),
    notificationUrl: urls.notifications,
    lifecycleNotificationUrl: urls.lifecycle,
    expiresAt: new Date(now.getTime() + deps.policy.subscriptionLifetimeMs),
    clientState,
  });
  const clientStateHash = hashClientState(clientState);
  await deps.index.create(keys.graphSubscription(created.id), {
    customerId: state.customerId,
    connectionId: state.connectionId,
    mailboxId: state.mailboxId,
    folder,
    clientStateHash,
  });
  return { id: created.id, expiresAt: created.expiresAt, clientStateHash };
}

function subscribeAdvice(failure: ReceiveFailure, notificationUrl: string): string {
  if (failure.kind === 'not_connected' || failure.kind === 'authentication') return 'The app may not read this mailbox\'s mail: check its Mail.Read (or Mail.ReadWrite) permission and consent.';
  if (failure.kind === 'not_found') return 'A watched folder does not exist: correct receive.folders.';
  if (failure.kind === 'throttled' || failure.kind === 'network' || (failure.status !== undefined && failure.status >= 500)) return 'Graph was not available.';
  return `Graph must reach ${notificationUrl} over https (it validates the URL when the subscription is made).`;
}

/** Deletes a subscription at Graph (best effort: it expires anyway) and from the index. */
export async function forget(deps: Pick<SubscriptionDeps, 'index'>, graph: GraphReceiver, target: ReceiveTarget, subscriptionId: string, log: Logger): Promise<void> {
  await graph.unsubscribe(target, subscriptionId).catch((error: unknown) => {
    log.warn('receive: a Graph subscription could not be deleted; it expires on its own', { subscriptionId, error });
  });
  await deps.index.delete(keys.graphSubscription(subscriptionId));
}

const WELL_KNOWN_FOLDERS = new Set(['inbox', 'archive', 'junkemail', 'deleteditems', 'sentitems', 'drafts', 'outbox', 'clutter', 'conversationhistory']);

/** A folder as Graph names it: well-known names in Graph's spelling, anything else is a folder id. */
export function graphFolder(folder: string): string {
  const lower = folder.toLowerCase();
  return WELL_KNOWN_FOLDERS.has(lower) ? lower : folder;
}
