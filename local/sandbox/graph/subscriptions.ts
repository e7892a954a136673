import { randomUUID } from 'node:crypto';
import type { Mailbox } from '../identity/sandbox-state.js';
import type { GraphCaller, PermissionSet } from './authentication.js';
import { GraphError, graphErrors } from './errors.js';
import { findFolder } from './mail-folders.js';
import { authorizedMailbox, sameText } from './mailboxes.js';
import type { ValidationOutcome } from './notifications.js';
import { prefersImmutableIds } from './prefer.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';
import { emptyStats, subscriptionDate, type ChangeType, type Subscription } from './subscription-registry.js';

/**
 * Change notification subscriptions for Outlook messages (`/subscriptions`), as Graph handles
 * them (subscription-post-subscriptions.md, subscription-update.md, subscription-reauthorize.md,
 * change-notifications-delivery-webhooks.md):
 * - `POST /subscriptions` → 201, the subscription: `resource` is a mailbox's messages
 *   (`/me/messages`, `users/{who}/messages`) or one folder's (`…/mailFolders('inbox')/messages`,
 *   `…/mailFolders/{id}/messages`); changeType a list of created, updated, deleted; the
 *   expirationDateTime at most 10,080 minutes ahead (Outlook's limit); clientState at most 128
 *   characters. The caller must be able to read the mailbox's messages: a delegated caller only
 *   their own mailbox (Outlook's subscriptions do not take the .Shared permissions), an app any
 *   mailbox of its tenant. notificationUrl (and lifecycleNotificationUrl) must pass the validation
 *   handshake (notifications.ts) before the subscription exists.
 * - `GET /subscriptions` (the calling app's; for a delegated caller, those it made for the user),
 *   `GET`, `PATCH` (expirationDateTime, notificationUrl: renewal, 200), `DELETE` (204) and
 *   `POST …/reauthorize` (204) of `/subscriptions/{id}`; another app's subscription, or a gone
 *   one, is 404.
 * https is required, except that http to a loopback host (127.0.0.1, localhost, ::1) is taken, so
 * `npm start` receives notifications without a tunnel: a documented sandbox deviation.
 * Refusals from Outlook itself (no access to the mailbox, an unknown one) come wrapped as Graph's
 * change notification service words them: `ExtensionError` "Operation: Create; Exception: […]".
 */

/** Outlook message subscriptions (change-notifications-subscription-lifetime include, 2024). */
const MAX_MINUTES = 10_080;
const MAX_CLIENT_STATE = 128;
const TLS_VERSIONS = ['v1_0', 'v1_1', 'v1_2'];
const CHANGE_TYPES: readonly ChangeType[] = ['created', 'updated', 'deleted'];
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Reading messages, without the .Shared variants (Outlook's subscriptions do not support them). */
const SUBSCRIBE_TO_MAIL: PermissionSet = { delegated: ['Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite'], application: ['Mail.ReadBasic.All', 'Mail.Read', 'Mail.ReadWrite'] };

const CREATE_PROPERTIES = [
  '@odata.type',
  'changeType',
  'notificationUrl',
  'lifecycleNotificationUrl',
  'resource',
  'expirationDateTime',
  'clientState',
  'latestSupportedTlsVersion',
  'includeResourceData',
  'encryptionCertificate',
  'encryptionCertificateId',
  'notificationQueryOptions',
  'notificationUrlAppId',
];
const UPDATE_PROPERTIES = ['@odata.type', 'expirationDateTime', 'notificationUrl'];

/** `me/…` or `users/{who}/…`, then `messages` or a folder's: the message resources the sandbox watches. */
const MESSAGE_RESOURCE = /^\/?(?:me|users\/([^/()?]+)|users\('([^']+)'\))\/(?:mailFolders(?:\/([^/()?]+)|\('([^']*)'\))\/)?messages\/?$/i;

type Body = Record<string, unknown>;

/** The JSON object a subscription call sends, with only the properties it may have. */
function bodyOf(json: unknown, allowed: readonly string[]): Body {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw graphErrors.subscriptionPayloadInvalid();
  const body = json as Body;
  if (Object.keys(body).some((name) => !allowed.includes(name))) throw graphErrors.subscriptionPayloadInvalid();
  return body;
}

function optionalString(body: Body, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw graphErrors.subscriptionPayloadInvalid();
  return value;
}

function requiredString(body: Body, name: string): string {
  const value = optionalString(body, name);
  if (value === undefined || value.trim() === '') throw graphErrors.subscriptionPropertyRequired(name);
  return value;
}

/** A path segment of the resource, percent-decoded where it can be (`users/megan%40contoso.com`). */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const pascal = (name: string) => `${name.charAt(0).toUpperCase()}${name.slice(1)}`;

/** An https URL, or http to this machine (the sandbox's deviation for local receivers). */
function checkNotificationUrl(value: string, property: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw graphErrors.notificationUrlInvalid(value);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme === 'https' || (scheme === 'http' && LOOPBACK_HOSTS.has(url.hostname.toLowerCase()))) return value;
  if (scheme === 'http' || scheme === 'https') throw graphErrors.notificationUrlScheme(pascal(property), scheme);
  throw graphErrors.notificationUrlInvalid(value);
}

function checkExpiration(value: string, now: number): number {
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw graphErrors.subscriptionPayloadInvalid();
  if (at <= now) throw graphErrors.subscriptionExpirationPast();
  if (at > now + MAX_MINUTES * 60_000) throw graphErrors.subscriptionExpirationTooFar(MAX_MINUTES);
  return at;
}

function changeTypesOf(value: string): ChangeType[] {
  const types = value.split(',').map((t) => t.trim().toLowerCase());
  if (types.some((t) => !(CHANGE_TYPES as readonly string[]).includes(t))) throw graphErrors.subscriptionPropertyInvalid('ChangeType');
  return [...new Set(types as ChangeType[])];
}

function validationError(outcome: Exclude<ValidationOutcome, 'validated'>): GraphError {
  if (outcome === 'mismatch') return graphErrors.subscriptionValidationMismatch();
  if (outcome === 'timed-out') return graphErrors.subscriptionValidationTimedOut();
  return graphErrors.subscriptionValidationFailed();
}

export function subscriptionRoutes(env: GraphEnvironment): GraphRoute[] {
  const { state } = env.context;
  const { subscriptions } = env;

  /** The mailbox and folder a resource names, if the caller may subscribe to them; Outlook's refusals come wrapped. */
  const watched = (caller: GraphCaller, resource: string, operation: 'Create' | 'Update' | 'Reauthorize'): { mailbox: Mailbox; folder: string | undefined } => {
    const match = MESSAGE_RESOURCE.exec(resource.trim());
    if (!match) throw graphErrors.notModelled(`subscriptions to ${resource} (only Outlook messages: me/messages, users/{id}/mailFolders('{id}')/messages …)`);
    const [, byPath, byKey, folderByPath, folderByKey] = match;
    const who = byPath ?? byKey;
    try {
      const { mailbox } = authorizedMailbox(state, caller, who === undefined ? undefined : decoded(who), SUBSCRIBE_TO_MAIL);
      if (caller.kind === 'delegated' && !sameText(mailbox.address, caller.user.userPrincipalName)) throw graphErrors.mailAccessDenied();
      const folderKey = folderByPath ?? folderByKey;
      return { mailbox, folder: folderKey === undefined ? undefined : findFolder(mailbox, decoded(folderKey)).name };
    } catch (error) {
      if (error instanceof GraphError && error.status !== 400) throw graphErrors.subscriptionExtension(error.status, operation, error.message);
      throw error;
    }
  };

  const validated = async (url: string): Promise<void> => {
    const outcome = await subscriptions.validate(url);
    if (outcome !== 'validated') throw validationError(outcome);
  };

  const entity = (subscription: Subscription): Record<string, unknown> => ({
    id: subscription.id,
    resource: subscription.resource,
    applicationId: subscription.applicationId,
    changeType: subscription.changeType,
    clientState: subscription.clientState,
    notificationUrl: subscription.notificationUrl,
    notificationQueryOptions: null,
    lifecycleNotificationUrl: subscription.lifecycleNotificationUrl,
    expirationDateTime: subscriptionDate(subscription.expirationDateTime),
    creatorId: subscription.creatorId,
    includeResourceData: false,
    latestSupportedTlsVersion: subscription.latestSupportedTlsVersion,
    encryptionCertificate: null,
    encryptionCertificateId: null,
    notificationUrlAppId: null,
  });
  const single = (subscription: Subscription, status = 200): GraphResult => ({
    status,
    body: { '@odata.context': `${env.serviceRoot}/$metadata#subscriptions/$entity`, ...entity(subscription) },
  });

  /** The caller's own subscription: another app's (or another user's, for a delegated caller) is as unknown as a gone one. */
  const own = (caller: GraphCaller, id: string): Subscription => {
    const subscription = subscriptions.get(id);
    const mine =
      subscription !== undefined &&
      subscription.tenantId === caller.tenant.id &&
      sameText(subscription.applicationId, caller.clientId) &&
      (caller.kind === 'application' || subscription.creatorId === caller.user.id);
    if (!mine) throw graphErrors.subscriptionNotFound();
    return subscription;
  };

  const create = async ({ caller, json, headers }: GraphRequest): Promise<GraphResult> => {
    const body = bodyOf(json, CREATE_PROPERTIES);
    const changeType = requiredString(body, 'changeType');
    const notificationUrl = requiredString(body, 'notificationUrl');
    const resource = requiredString(body, 'resource');
    const expirationDateTime = requiredString(body, 'expirationDateTime');
    if (body.includeResourceData === true) throw graphErrors.notModelled('change notifications with resource data (includeResourceData)');
    const clientState = optionalString(body, 'clientState') ?? null;
    if (clientState !== null && clientState.length > MAX_CLIENT_STATE) throw graphErrors.subscriptionPropertyInvalid('ClientState');
    const tls = optionalString(body, 'latestSupportedTlsVersion') ?? 'v1_2';
    if (!TLS_VERSIONS.includes(tls)) throw graphErrors.subscriptionPropertyInvalid('LatestSupportedTlsVersion');
    const lifecycle = optionalString(body, 'lifecycleNotificationUrl');
    const changeTypes = changeTypesOf(changeType);
    checkNotificationUrl(notificationUrl, 'notificationUrl');
    if (lifecycle !== undefined) checkNotificationUrl(lifecycle, 'lifecycleNotificationUrl');
    const expiration = checkExpiration(expirationDateTime, env.context.now());
    const { mailbox, folder } = watched(caller, resource, 'Create');
    await validated(notificationUrl);
    if (lifecycle !== undefined) await validated(lifecycle);
    const subscription: Subscription = {
      id: randomUUID(),
      tenantId: caller.tenant.id,
      applicationId: caller.clientId,
      creatorId: caller.kind === 'delegated' ? caller.user.id : (state.servicePrincipal(caller.tenant.id, caller.clientId)?.id ?? caller.clientId),
      resource,
      mailbox: { tenantId: mailbox.tenantId, address: mailbox.address },
      folder,
      changeType,
      changeTypes,
      notificationUrl,
      lifecycleNotificationUrl: lifecycle ?? null,
      clientState,
      latestSupportedTlsVersion: tls,
      expirationDateTime: expiration,
      immutableIds: prefersImmutableIds(headers),
      needsReauthorization: false,
      dropNext: 0,
      stats: emptyStats(),
    };
    subscriptions.add(subscription);
    return single(subscription, 201);
  };

  const list = ({ caller }: GraphRequest): GraphResult => {
    const mine = subscriptions
      .list()
      .filter((s) => s.tenantId === caller.tenant.id && sameText(s.applicationId, caller.clientId) && (caller.kind === 'application' || s.creatorId === caller.user.id));
    return { status: 200, body: { '@odata.context': `${env.serviceRoot}/$metadata#subscriptions`, value: mine.map(entity) } };
  };

  const get = ({ caller, params: [id = ''] }: GraphRequest): GraphResult => single(own(caller, id));

  const update = async ({ caller, json, params: [id = ''] }: GraphRequest): Promise<GraphResult> => {
    const subscription = own(caller, id);
    const body = bodyOf(json, UPDATE_PROPERTIES);
    const expirationDateTime = optionalString(body, 'expirationDateTime');
    const notificationUrl = optionalString(body, 'notificationUrl');
    if (expirationDateTime === undefined && notificationUrl === undefined) throw graphErrors.subscriptionUpdateEmpty();
    const expiration = expirationDateTime === undefined ? undefined : checkExpiration(expirationDateTime, env.context.now());
    if (notificationUrl !== undefined) checkNotificationUrl(notificationUrl, 'notificationUrl');
    // Renewing also reauthorizes: the caller must still be able to read the mailbox.
    watched(caller, subscription.resource, 'Update');
    if (notificationUrl !== undefined && notificationUrl !== subscription.notificationUrl) await validated(notificationUrl);
    if (expiration !== undefined) subscription.expirationDateTime = expiration;
    if (notificationUrl !== undefined) subscription.notificationUrl = notificationUrl;
    subscription.needsReauthorization = false;
    return single(subscription);
  };

  const remove = ({ caller, params: [id = ''] }: GraphRequest): GraphResult => {
    subscriptions.remove(own(caller, id).id);
    return { status: 204 };
  };

  const reauthorize = ({ caller, params: [id = ''] }: GraphRequest): GraphResult => {
    const subscription = own(caller, id);
    watched(caller, subscription.resource, 'Reauthorize');
    subscription.needsReauthorization = false;
    return { status: 204 };
  };

  const one = /^\/subscriptions\/([^/()]+)$/i;
  return [
    { method: 'POST', path: /^\/subscriptions$/i, body: 'json', handle: create },
    { method: 'GET', path: /^\/subscriptions$/i, handle: list },
    { method: 'GET', path: one, handle: get },
    { method: 'PATCH', path: one, body: 'json', handle: update },
    { method: 'DELETE', path: one, handle: remove },
    { method: 'POST', path: /^\/subscriptions\/([^/()]+)\/(?:microsoft\.graph\.)?reauthorize$/i, handle: reauthorize },
  ];
}
