import { createPublicKey } from 'node:crypto';
import type { SandboxContext } from '../identity/context.js';
import type { Route } from '../identity/http.js';
import { applicationRoutes } from './applications.js';
import { deltaRoutes } from './delta.js';
import { DeltaTokens } from './delta-tokens.js';
import { mailControlRoutes } from './mail-control.js';
import { mailFolderRoutes } from './mail-folders.js';
import { MailRelay, type MailRelayOptions, type RelayLog } from './mail-relay.js';
import { MailStore } from './mail-store.js';
import { MailboxThrottle, type MailboxLimits } from './mailbox-limits.js';
import { messageRoutes } from './messages.js';
import { receiveControlRoutes } from './receive-control.js';
import { GRAPH_PREFIX, GRAPH_VERSION, graphHandler, type GraphEnvironment, type GraphFaults } from './router.js';
import { sendMailRoutes } from './send-mail.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { subscriptionRoutes } from './subscriptions.js';
import { uploadSessionRoutes } from './upload-sessions.js';
import { userRoutes } from './users.js';

/**
 * A minimal Microsoft Graph (v1.0) on the sandbox's HTTPS listener under /graph, for the tokens
 * the sandbox issues; see README.md. One module per resource; the router does the rest. Beside
 * it: the upload URLs of large attachments (Outlook's host, here /outlook), the control API's
 * mail calls, the relay of sent mail to a real mail server, and the change notifications every
 * new message in a watched folder sends to its subscriptions' URLs.
 */

export interface GraphOptions {
  context: SandboxContext;
  faults: GraphFaults;
  /** The sandbox's token signing key: Graph accepts only tokens it signed. */
  signingKey: { kid: string; publicKeyPem: string };
  /** Outlook's per-mailbox limits; Graph's own (4 concurrent, 30 sends a minute) when omitted. */
  mailboxLimits?: Partial<MailboxLimits>;
  /** Sent mail to these domains goes to this LMTP server (mail-relay.ts); none when omitted. */
  mailRelay?: MailRelayOptions;
  /** Where relay failures are reported (they never reach the client). */
  log: RelayLog;
}

const METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'];

/** The base the connector is configured with (ENTRA_GRAPH_URL). */
export const graphBase = (httpsBase: string) => `${httpsBase}${GRAPH_PREFIX}`;

export function graphRoutes({ context, faults, signingKey, mailboxLimits, mailRelay, log }: GraphOptions): Route[] {
  const env: GraphEnvironment = {
    context,
    serviceRoot: `${graphBase(context.httpsBase)}/${GRAPH_VERSION}`,
    store: new MailStore(),
    throttle: new MailboxThrottle(mailboxLimits ?? {}, () => context.now()),
    relay: new MailRelay(mailRelay ?? null, log),
    deltaTokens: new DeltaTokens(),
    subscriptions: new SubscriptionRegistry(context.state, () => context.now()),
  };
  env.store.onChange((change) => {
    env.subscriptions.notify(change);
  });
  const uploads = uploadSessionRoutes(env);
  // Delta before messages: `/messages/delta` is no message id.
  const routes = [
    ...userRoutes(env),
    ...mailFolderRoutes(env),
    ...deltaRoutes(env),
    ...messageRoutes(env),
    ...sendMailRoutes(env),
    ...uploads.graph,
    ...subscriptionRoutes(env),
    ...applicationRoutes(env),
  ];
  const handler = graphHandler(env, routes, faults, { state: context.state, kid: signingKey.kid, publicKey: createPublicKey(signingKey.publicKeyPem), now: () => context.now() });
  const path = new RegExp(`^${GRAPH_PREFIX}(?:/.*)?$`);
  return [...METHODS.map((method) => ({ method, path, handler, readsOwnBody: true })), ...uploads.uploads, ...mailControlRoutes(env), ...receiveControlRoutes(env)];
}

export type { MailboxLimits, MailboxStats } from './mailbox-limits.js';
export type { MailRelayOptions } from './mail-relay.js';
export type { MessageView, AttachmentView, MailboxLimitsInput, GraphStats } from './mail-control.js';
export type { InjectedMessage, SubscriptionView } from './receive-control.js';
export type { DeliverySettings } from './notifications.js';
export type { DeliveryStats, NotificationStats } from './subscription-registry.js';
