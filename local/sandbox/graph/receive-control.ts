import { answering, CONTROL_PREFIX, ControlError, parse } from '../identity/control-api.js';
import { dropNotificationsInput, injectMessageInput, lifecycleEventInput, moveMessageInput, notificationDeliveryInput } from '../identity/control-schemas.js';
import type { Route } from '../identity/http.js';
import type { Mailbox } from '../identity/sandbox-state.js';
import { injectMessage } from './inject-message.js';
import { graphDate } from './message-entity.js';
import { sameText } from './mailboxes.js';
import type { DeliverySettings } from './notifications.js';
import type { GraphEnvironment } from './router.js';
import { subscriptionDate, type DeliveryStats, type Subscription } from './subscription-registry.js';

/**
 * The control API's calls for the receiving side of the sandbox Graph (JSON under /_sandbox):
 * - `POST /mailboxes/{address}/messages` (injectMessage) → 201 InjectedMessage: mail delivered from outside
 * - `POST /mailboxes/{address}/messages/{id}/move` `{ folder }` → InjectedMessage; `DELETE /mailboxes/{address}/messages/{id}` → 204
 * - `POST /mailboxes/{address}/expire-delta-tokens` → 204: every delta token of the mailbox issued so far answers 410
 * - `GET /graph/subscriptions` → SubscriptionView[]: the live subscriptions, with what became of their notifications
 * - `POST /graph/subscriptions/{id}/lifecycle` `{ lifecycleEvent }` → `{ sent }`: a lifecycle notification now
 * - `POST /graph/notification-drops` `{ subscriptionId | address, count }` → `{ subscriptions }`: the next `count`
 *   change notifications of the subscription (or of each subscription on the mailbox) are dropped, then `missed` goes
 * - `GET`/`PUT /graph/notification-delivery` `{ retryDelaysMs?, timeoutMs?, validationTimeoutMs?, batchDelayMs? }` → DeliverySettings
 * Messages are named by their immutable id (MessageView.id, InjectedMessage.id) or their regular one.
 */

export interface InjectedMessage {
  /** Its immutable id (also its regular id until it moves). */
  id: string;
  /** Its regular id, the one Graph shows without Prefer: IdType="ImmutableId". */
  regularId: string;
  internetMessageId: string;
  folder: string;
  receivedDateTime: string;
}

export interface SubscriptionView {
  id: string;
  tenantId: string;
  applicationId: string;
  creatorId: string;
  resource: string;
  /** The mailbox it watches, and the folder (null: all of them). */
  mailbox: string;
  folder: string | null;
  changeType: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  clientState: string | null;
  expirationDateTime: string;
  immutableIds: boolean;
  needsReauthorization: boolean;
  /** Change notifications still to be dropped. */
  dropNext: number;
  delivery: DeliveryStats;
}

function subscriptionView(subscription: Subscription): SubscriptionView {
  return {
    id: subscription.id,
    tenantId: subscription.tenantId,
    applicationId: subscription.applicationId,
    creatorId: subscription.creatorId,
    resource: subscription.resource,
    mailbox: subscription.mailbox.address,
    folder: subscription.folder ?? null,
    changeType: subscription.changeType,
    notificationUrl: subscription.notificationUrl,
    lifecycleNotificationUrl: subscription.lifecycleNotificationUrl,
    clientState: subscription.clientState,
    expirationDateTime: subscriptionDate(subscription.expirationDateTime),
    immutableIds: subscription.immutableIds,
    needsReauthorization: subscription.needsReauthorization,
    dropNext: subscription.dropNext,
    delivery: { ...subscription.stats },
  };
}

export function receiveControlRoutes(env: GraphEnvironment): Route[] {
  const { state } = env.context;
  const { store, subscriptions } = env;

  const mailboxNamed = (address: string): Mailbox => {
    const mailbox = state.data.mailboxes.find((m) => sameText(m.address, address));
    if (!mailbox) throw new ControlError(404, `No mailbox ${address}.`);
    return mailbox;
  };
  const injected = (mailbox: Mailbox, id: string): InjectedMessage => {
    const message = store.find(mailbox, id);
    if (!message) throw new ControlError(404, `No message ${id} in ${mailbox.address}.`);
    return { id: message.id, regularId: store.idOf(message, false), internetMessageId: message.internetMessageId, folder: message.folder, receivedDateTime: graphDate(message.receivedDateTime) };
  };
  const subscription = (id: string): Subscription => {
    const found = subscriptions.get(id);
    if (!found) throw new ControlError(404, `No subscription ${id} (never made, deleted or expired).`);
    return found;
  };

  const inject = async (address: string, body: unknown): Promise<InjectedMessage> => {
    const mailbox = mailboxNamed(address);
    const message = await injectMessage(env.context, store, mailbox, parse(injectMessageInput, body));
    return injected(mailbox, message.id);
  };
  const move = (address: string, id: string, body: unknown): InjectedMessage => {
    const mailbox = mailboxNamed(address);
    const { folder } = parse(moveMessageInput, body);
    injected(mailbox, id);
    const moved = store.move(mailbox, id, folder);
    return injected(mailbox, moved?.id ?? id);
  };
  const remove = (address: string, id: string): void => {
    const mailbox = mailboxNamed(address);
    injected(mailbox, id);
    store.remove(mailbox, id);
  };
  const lifecycle = (id: string, body: unknown): { sent: boolean } => {
    const { lifecycleEvent } = parse(lifecycleEventInput, body);
    return { sent: subscriptions.sendLifecycle(subscription(id), lifecycleEvent) };
  };
  const drop = (body: unknown): { subscriptions: string[] } => {
    const input = parse(dropNotificationsInput, body);
    const targets = input.subscriptionId !== undefined ? [subscription(input.subscriptionId)] : subscriptions.list().filter((s) => sameText(s.mailbox.address, mailboxNamed(input.address ?? '').address));
    for (const target of targets) target.dropNext = input.count;
    return { subscriptions: targets.map((s) => s.id) };
  };
  const configure = (body: unknown): DeliverySettings => {
    return subscriptions.configureDelivery(parse(notificationDeliveryInput, body));
  };

  const route = (method: string, path: string, handler: Route['handler']): Route => ({ method, path: new RegExp(`^${CONTROL_PREFIX}${path}$`), handler });
  const at = (request: Parameters<Route['handler']>[0], index: number) => request.params[index] ?? '';
  return [
    route('POST', '/mailboxes/([^/]+)/messages', answering((r) => inject(at(r, 0), r.json), 201)),
    route('POST', '/mailboxes/([^/]+)/messages/([^/]+)/move', answering((r) => move(at(r, 0), at(r, 1), r.json))),
    route('DELETE', '/mailboxes/([^/]+)/messages/([^/]+)', answering((r) => {
      remove(at(r, 0), at(r, 1));
    })),
    route('POST', '/mailboxes/([^/]+)/expire-delta-tokens', answering((r) => {
      env.deltaTokens.expire(mailboxNamed(at(r, 0)));
    })),
    route('GET', '/graph/subscriptions', answering(() => subscriptions.list().map(subscriptionView))),
    route('POST', '/graph/subscriptions/([^/]+)/lifecycle', answering((r) => lifecycle(at(r, 0), r.json))),
    route('POST', '/graph/notification-drops', answering((r) => drop(r.json))),
    route('GET', '/graph/notification-delivery', answering(() => subscriptions.delivery.current())),
    route('PUT', '/graph/notification-delivery', answering((r) => configure(r.json))),
  ];
}
