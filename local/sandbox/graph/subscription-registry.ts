import { createHash } from 'node:crypto';
import type { SandboxState } from '../identity/sandbox-state.js';
import type { MailChange, MailboxRef, StoredMessage } from './mail-store.js';
import { sameText } from './mailboxes.js';
import { NotificationDelivery, type DeliverySettings, type Outgoing, type ValidationOutcome } from './notifications.js';

/**
 * The change notification subscriptions the sandbox Graph holds (in memory, like its mail), what
 * each one is told, and what became of it. A subscription watches one mailbox, or one folder of
 * it; when a message is created there (delivered, injected, drafted, moved in) or leaves it
 * (deleted, moved out), each subscription whose changeType names that change gets a notification
 * shaped as Outlook's (change-notifications-delivery-webhooks.md):
 *
 *   { subscriptionId, subscriptionExpirationDateTime, changeType, resource: 'Users/{owner id}/Messages/{id}',
 *     resourceData: { '@odata.type': '#Microsoft.Graph.Message', '@odata.id': same as resource, '@odata.etag', id },
 *     clientState, tenantId }
 *
 * The owner id is the mailbox's user's object id (a shared mailbox gets a stable made-up one);
 * message ids are immutable ones when the subscription was created with
 * `Prefer: IdType="ImmutableId"`. Lifecycle notifications go to the lifecycleNotificationUrl:
 * `{ subscriptionId, subscriptionExpirationDateTime, tenantId, clientState, lifecycleEvent }`.
 * A subscription past its expirationDateTime (sandbox clock) is gone, as Graph deletes it.
 */

export type ChangeType = 'created' | 'updated' | 'deleted';
export type LifecycleEvent = 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed';

export interface DeliveryStats {
  /** Change notifications an endpoint took (2xx in time). */
  delivered: number;
  /** Attempts that failed, one per notification in the failed POST. */
  failedAttempts: number;
  /** Change notifications given up after the last retry. */
  dropped: number;
  /** Change notifications not sent on purpose (dropNotifications). */
  missed: number;
  lifecycleDelivered: number;
  lifecycleFailedAttempts: number;
}

/** What graphStats counts of notifications, all subscriptions together (removed ones too). */
export interface NotificationStats extends DeliveryStats {
  /** Validation handshakes made, and those that failed. */
  validations: number;
  validationFailures: number;
}

export interface Subscription {
  id: string;
  tenantId: string;
  applicationId: string;
  /** The signed-in user (delegated) or the app's service principal (app-only) that created it. */
  creatorId: string;
  /** As the client wrote it. */
  resource: string;
  mailbox: MailboxRef;
  /** The well-known folder it watches; undefined: the whole mailbox. */
  folder: string | undefined;
  /** As the client wrote it (`created,updated`). */
  changeType: string;
  changeTypes: ChangeType[];
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  clientState: string | null;
  latestSupportedTlsVersion: string;
  /** Milliseconds since the epoch, sandbox clock. */
  expirationDateTime: number;
  /** Message ids in its notifications are immutable ones. */
  immutableIds: boolean;
  /** Set by a reauthorizationRequired lifecycle event until the app reauthorizes or renews it. */
  needsReauthorization: boolean;
  /** Change notifications still to be dropped (dropNotifications), after which a `missed` event goes. */
  dropNext: number;
  stats: DeliveryStats;
}

/** Graph's `2016-11-20T18:23:45.9356913Z`: seven decimals. */
export const subscriptionDate = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '0000Z');
/** As Outlook's notifications write it: `2019-08-02T07:58:15+00:00`. */
const notificationDate = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}+00:00`;

export const emptyStats = (): DeliveryStats => ({ delivered: 0, failedAttempts: 0, dropped: 0, missed: 0, lifecycleDelivered: 0, lifecycleFailedAttempts: 0 });

/** The object id behind `Users/{id}`: the mailbox's user, or for a shared mailbox (which has no user here) one derived from its address. */
function ownerId(state: SandboxState, mailbox: MailboxRef): string {
  const user = state.userByIdOrUpn(mailbox.tenantId, mailbox.address);
  if (user) return user.id;
  const hex = createHash('sha256').update(`${mailbox.tenantId}\n${mailbox.address.toLowerCase()}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export class SubscriptionRegistry {
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly totals: NotificationStats = { ...emptyStats(), validations: 0, validationFailures: 0 };
  readonly delivery: NotificationDelivery;

  constructor(
    private readonly state: SandboxState,
    private readonly now: () => number,
  ) {
    this.delivery = new NotificationDelivery({
      stillWanted: (item) => this.get(item.subscriptionId) !== undefined,
      delivered: (items) => {
        this.count(items, (stats, kind) => (kind === 'change' ? (stats.delivered += 1) : (stats.lifecycleDelivered += 1)));
      },
      attemptFailed: (items) => {
        this.count(items, (stats, kind) => (kind === 'change' ? (stats.failedAttempts += 1) : (stats.lifecycleFailedAttempts += 1)));
      },
      dropped: (items) => {
        this.count(items, (stats, kind) => (kind === 'change' ? (stats.dropped += 1) : 0));
      },
    });
  }

  add(subscription: Subscription): void {
    this.subscriptions.set(subscription.id, subscription);
  }

  /** The subscription, unless it never was, was removed or has expired (an expired one is removed now). */
  get(id: string): Subscription | undefined {
    const subscription = this.subscriptions.get(id.toLowerCase());
    if (subscription && subscription.expirationDateTime <= this.now()) {
      this.subscriptions.delete(subscription.id);
      return undefined;
    }
    return subscription;
  }

  /** Every live subscription. */
  list(): Subscription[] {
    return [...this.subscriptions.keys()].map((id) => this.get(id)).filter((s) => s !== undefined);
  }

  remove(id: string): void {
    this.subscriptions.delete(id.toLowerCase());
  }

  configureDelivery(settings: Partial<DeliverySettings>): DeliverySettings {
    return this.delivery.configure(settings);
  }

  /** The validation handshake with a URL a subscription names (notifications.ts), counted. */
  async validate(url: string): Promise<ValidationOutcome> {
    const outcome = await this.delivery.validate(url);
    this.totals.validations += 1;
    if (outcome !== 'validated') this.totals.validationFailures += 1;
    return outcome;
  }

  stats(): NotificationStats {
    return { ...this.totals };
  }

  /** A change in a mailbox: a notification for each subscription that watches it for this kind of change. */
  notify(change: MailChange): void {
    for (const subscription of this.list()) {
      if (subscription.mailbox.tenantId !== change.mailbox.tenantId || !sameText(subscription.mailbox.address, change.mailbox.address)) continue;
      if (subscription.folder !== undefined && subscription.folder !== change.folder) continue;
      if (!subscription.changeTypes.includes(change.kind)) continue;
      const id = subscription.immutableIds ? change.message.id : change.regularId;
      if (subscription.dropNext > 0) {
        subscription.dropNext -= 1;
        subscription.stats.missed += 1;
        this.totals.missed += 1;
        if (subscription.dropNext === 0) this.sendLifecycle(subscription, 'missed');
        continue;
      }
      this.delivery.enqueue(subscription.notificationUrl, { kind: 'change', subscriptionId: subscription.id, payload: this.changePayload(subscription, change.kind, change.message, id) });
    }
  }

  /** Sends a lifecycle notification to the subscription's lifecycle URL (false: it has none); subscriptionRemoved also removes it. */
  sendLifecycle(subscription: Subscription, lifecycleEvent: LifecycleEvent): boolean {
    if (lifecycleEvent === 'reauthorizationRequired') subscription.needsReauthorization = true;
    if (lifecycleEvent === 'subscriptionRemoved') this.remove(subscription.id);
    if (subscription.lifecycleNotificationUrl === null) return false;
    this.delivery.enqueue(subscription.lifecycleNotificationUrl, {
      kind: 'lifecycle',
      subscriptionId: subscription.id,
      payload: {
        subscriptionId: subscription.id,
        subscriptionExpirationDateTime: notificationDate(subscription.expirationDateTime),
        tenantId: subscription.tenantId,
        clientState: subscription.clientState,
        lifecycleEvent,
      },
    });
    return true;
  }

  private changePayload(subscription: Subscription, changeType: ChangeType, message: StoredMessage, id: string): Record<string, unknown> {
    const path = `Users/${ownerId(this.state, subscription.mailbox)}/Messages/${id}`;
    return {
      subscriptionId: subscription.id,
      subscriptionExpirationDateTime: notificationDate(subscription.expirationDateTime),
      changeType,
      resource: path,
      resourceData: {
        '@odata.type': '#Microsoft.Graph.Message',
        '@odata.id': path,
        ...(changeType === 'deleted' ? {} : { '@odata.etag': `W/"${message.changeKey}"` }),
        id,
      },
      clientState: subscription.clientState,
      tenantId: subscription.tenantId,
    };
  }

  /** Counts what happened to each notification against its subscription (a removed one's counts go with it). */
  private count(items: readonly Outgoing[], add: (stats: DeliveryStats, kind: Outgoing['kind']) => unknown): void {
    for (const item of items) {
      add(this.totals, item.kind);
      const subscription = this.subscriptions.get(item.subscriptionId);
      if (subscription) add(subscription.stats, item.kind);
    }
  }
}
