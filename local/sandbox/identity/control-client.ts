import { request as httpsRequest } from 'node:https';
import type {
  AddCertificateInput,
  AddedCertificate,
  AddedSecret,
  AddFederatedCredentialInput,
  AddSecretInput,
  AppView,
  ConsentView,
  CreateAppInput,
  CreateMailboxInput,
  CreateTenantInput,
  CreateUserInput,
  DropNotificationsInput,
  GrantConsentInput,
  GraphFaultInput,
  InjectMessageInput,
  IssuedView,
  LifecycleEventInput,
  MailboxView,
  MoveMessageInput,
  NotificationDeliveryInput,
  RevokeSessionsInput,
  TenantPoliciesInput,
  TokenFaultInput,
  UserView,
} from './control-schemas.js';
import { CONTROL_PREFIX } from './control-api.js';
import type {
  DeliverySettings,
  GraphStats,
  InjectedMessage,
  MailboxLimits,
  MailboxLimitsInput,
  MailRelayOptions,
  MessageView,
  SubscriptionView,
} from '../graph/index.js';
import type { FederatedCredential, Tenant } from './sandbox-state.js';

/**
 * A typed client for the sandbox's control API (control-api.ts). It speaks HTTPS with the
 * sandbox's CA, so it works against a sandbox in this process or in another one (`npm start`).
 * A refused call throws SandboxControlError with the API's message.
 */

export class SandboxControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxControlError';
  }
}

const enc = encodeURIComponent;

export class SandboxControl {
  constructor(
    private readonly httpsBase: string,
    private readonly caPem: string,
  ) {}

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const outgoing = httpsRequest(
        `${this.httpsBase}${CONTROL_PREFIX}${path}`,
        { method, ca: this.caPem, headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = response.statusCode ?? 0;
            if (status >= 400) {
              const message = (JSON.parse(text || '{}') as { message?: string }).message ?? text;
              reject(new SandboxControlError(status, `${method} ${path}: ${message}`));
            } else {
              resolve((text === '' ? undefined : JSON.parse(text)) as T);
            }
          });
          response.on('error', reject);
        },
      );
      outgoing.on('error', reject);
      outgoing.end(payload);
    });
  }

  createTenant(input: CreateTenantInput): Promise<Tenant> {
    return this.call('POST', '/tenants', input);
  }

  listTenants(): Promise<Tenant[]> {
    return this.call('GET', '/tenants');
  }

  /** Block user consent (AADSTS90094) or block token issuance by Conditional Access (AADSTS53003). */
  setTenantPolicies(tenant: string, policies: TenantPoliciesInput): Promise<Tenant> {
    return this.call('PATCH', `/tenants/${enc(tenant)}/policies`, policies);
  }

  /** A user and their mailbox (`mailbox: false`: none); `password` lets them use the password grant (ROPC). */
  createUser(tenant: string, input: CreateUserInput): Promise<UserView> {
    return this.call('POST', `/tenants/${enc(tenant)}/users`, input);
  }

  listUsers(tenant: string): Promise<UserView[]> {
    return this.call('GET', `/tenants/${enc(tenant)}/users`);
  }

  /** Refresh tokens then fail with AADSTS50173 (revoked) or AADSTS700082 (inactive). */
  revokeSessions(tenant: string, user: string, input: RevokeSessionsInput = {}): Promise<void> {
    return this.call('POST', `/tenants/${enc(tenant)}/users/${enc(user)}/revoke-sessions`, input);
  }

  createMailbox(tenant: string, input: CreateMailboxInput): Promise<MailboxView> {
    return this.call('POST', `/tenants/${enc(tenant)}/mailboxes`, input);
  }

  listMailboxes(tenant: string): Promise<MailboxView[]> {
    return this.call('GET', `/tenants/${enc(tenant)}/mailboxes`);
  }

  /** Admin consent without the pages (or one user's consent, with `user`). */
  grantConsent(tenant: string, input: GrantConsentInput): Promise<ConsentView> {
    return this.call('POST', `/tenants/${enc(tenant)}/consents`, input);
  }

  listConsents(tenant: string): Promise<ConsentView[]> {
    return this.call('GET', `/tenants/${enc(tenant)}/consents`);
  }

  /** Deletes the app's service principal and every grant in the tenant (then AADSTS65001 / 7000229). */
  removeAppFromTenant(tenant: string, clientId: string): Promise<void> {
    return this.call('DELETE', `/tenants/${enc(tenant)}/apps/${enc(clientId)}`);
  }

  createApp(input: CreateAppInput): Promise<AppView> {
    return this.call('POST', '/apps', input);
  }

  getApp(clientId: string): Promise<AppView> {
    return this.call('GET', `/apps/${enc(clientId)}`);
  }

  /** A new secret, valid from now until `expiresAt` (180 days by default). */
  addClientSecret(clientId: string, input: AddSecretInput = {}): Promise<AddedSecret> {
    return this.call('POST', `/apps/${enc(clientId)}/secrets`, input);
  }

  /** Makes the secret expired now (then AADSTS7000222). */
  expireClientSecret(clientId: string, keyId: string): Promise<void> {
    return this.call('POST', `/apps/${enc(clientId)}/secrets/${enc(keyId)}/expire`, {});
  }

  /** The credential lasts as the certificate does, or until `expiresAt`. */
  addCertificate(clientId: string, input: AddCertificateInput): Promise<AddedCertificate> {
    return this.call('POST', `/apps/${enc(clientId)}/certificates`, input);
  }

  addFederatedCredential(clientId: string, input: AddFederatedCredentialInput): Promise<FederatedCredential> {
    return this.call('POST', `/apps/${enc(clientId)}/federated-credentials`, input);
  }

  /**
   * Token requests answer 503 or 429 (with Retry-After when given): the next `count` of them, every
   * one for `forSeconds` of the sandbox clock, or both, until either runs out. Count 0 ends a fault.
   */
  failTokenRequests(fault: TokenFaultInput): Promise<void> {
    return this.call('PUT', '/faults/token', fault);
  }

  /** Sandbox Graph requests answer 429, 503 or 500 (with Retry-After when given), counted or timed as failTokenRequests. */
  failGraphRequests(fault: GraphFaultInput): Promise<void> {
    return this.call('PUT', '/faults/graph', fault);
  }

  /** What a mailbox holds, newest first: one folder's messages or all. */
  messages(address: string, folder?: MoveMessageInput['folder']): Promise<MessageView[]> {
    return this.call('GET', `/mailboxes/${enc(address)}/messages${folder === undefined ? '' : `?folder=${folder}`}`);
  }

  /** The sandbox Graph's per-mailbox limits from now on: requests in flight per app and mailbox, sends a minute per mailbox (null: none). */
  setMailboxLimits(limits: MailboxLimitsInput): Promise<MailboxLimits> {
    return this.call('PUT', '/graph/limits', limits);
  }

  /** Mail sent to these domains (not sandbox mailboxes) is delivered over LMTP from now on; null switches it off. */
  setMailRelay(relay: MailRelayOptions | null): Promise<unknown> {
    return relay === null ? this.call('DELETE', '/graph/relay') : this.call('PUT', '/graph/relay', relay);
  }

  /** What the sandbox Graph counted since it started: requests, sends, 429s, per mailbox too. */
  graphStats(): Promise<GraphStats> {
    return this.call('GET', '/graph/stats');
  }

  /**
   * Mail from outside, as if Exchange delivered it to `address` (its Inbox unless `folder` says):
   * unread, received now, a Message-ID made up if none. It shows in delta queries and notifies the
   * subscriptions that watch the folder. Give `mime` (base64 RFC 5322) or the fields.
   */
  injectMessage({ address, ...message }: InjectMessageInput & { address: string }): Promise<InjectedMessage> {
    return this.call('POST', `/mailboxes/${enc(address)}/messages`, message);
  }

  /** Moves a message (by immutable or regular id) to another folder: a deletion where it was, a creation where it goes; a new regular id. */
  moveMessage({ address, messageId, folder }: { address: string; messageId: string } & MoveMessageInput): Promise<InjectedMessage> {
    return this.call('POST', `/mailboxes/${enc(address)}/messages/${enc(messageId)}/move`, { folder });
  }

  /** Deletes a message for good: delta reports it `@removed`, subscriptions with `deleted` hear of it. */
  deleteMessage({ address, messageId }: { address: string; messageId: string }): Promise<void> {
    return this.call('DELETE', `/mailboxes/${enc(address)}/messages/${enc(messageId)}`);
  }

  /** Graph forgets the mailbox's delta sync states: every token issued so far answers 410 Gone (SyncStateNotFound) with a fresh start in Location. */
  expireDeltaTokens({ address }: { address: string }): Promise<void> {
    return this.call('POST', `/mailboxes/${enc(address)}/expire-delta-tokens`, {});
  }

  /** The live change notification subscriptions (expired and deleted ones are gone), with what became of their notifications. */
  subscriptions(): Promise<SubscriptionView[]> {
    return this.call('GET', '/graph/subscriptions');
  }

  /** A lifecycle notification to the subscription's lifecycleNotificationUrl now (`sent: false` without one); subscriptionRemoved also removes it. */
  sendLifecycleEvent({ subscriptionId, lifecycleEvent }: { subscriptionId: string } & LifecycleEventInput): Promise<{ sent: boolean }> {
    return this.call('POST', `/graph/subscriptions/${enc(subscriptionId)}/lifecycle`, { lifecycleEvent });
  }

  /** The next `count` change notifications of a subscription (or of every subscription on a mailbox) are dropped; then a `missed` lifecycle notification goes. */
  dropNotifications(input: DropNotificationsInput): Promise<{ subscriptions: string[] }> {
    return this.call('POST', '/graph/notification-drops', input);
  }

  /** How notifications are delivered from now on: retry schedule, timeouts, batching (real milliseconds, not the sandbox clock). */
  setNotificationDelivery(settings: NotificationDeliveryInput): Promise<DeliverySettings> {
    return this.call('PUT', '/graph/notification-delivery', settings);
  }

  /** Codes, refresh tokens and device codes issued (to one app, or all). */
  issued(clientId?: string): Promise<IssuedView> {
    return this.call('GET', `/issued${clientId === undefined ? '' : `?clientId=${enc(clientId)}`}`);
  }
}
