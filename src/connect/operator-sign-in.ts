import type { Connection, SignInMethod } from '../domain/connection.js';
import type { ConsentLinks } from '../identity/consent-links.js';
import type { MsalClients } from '../identity/msal-clients.js';
import { delegatedScopes, type Resource } from '../identity/scopes.js';
import type { Logger } from '../telemetry/logger.js';
import type { ConnectFlow } from './connect-flow.js';

/**
 * Delegated sign-ins that ops start from the admin CLI instead of a consent link: device code and,
 * where ALLOW_ROPC permits, the user's password. Microsoft's answer goes through the browser
 * flow's own ending (ConnectFlow.finishDelegated), so a reconnect by another user or tenant is
 * refused the same way and nothing is stored unless every check passed. What comes back is a
 * report for a person at a terminal: what happened and what to do next.
 */

export interface OperatorSignInDeps {
  flow: Pick<ConnectFlow, 'finishDelegated'>;
  msal: MsalClients;
  links: Pick<ConsentLinks, 'issue'>;
  logger: Logger;
}

/** Microsoft's codes and request ids, for support to find the sign-in in Entra's logs. */
export interface MicrosoftReference {
  error: string;
  aadsts?: number;
  traceId?: string;
  correlationId?: string;
}

export type SignInReport =
  | {
      kind: 'connected';
      account: string;
      tenantId: string;
      permissions: readonly string[];
      mailboxes: readonly string[];
      /** Connected, but something the connection needs later is missing. */
      warnings: string[];
    }
  | { kind: 'refused'; reason: string; nextStep: string; reference?: MicrosoftReference };

/** The methods' names in sentences. */
export const METHOD_NAMES: Readonly<Record<SignInMethod, string>> = {
  'authorization-code': 'the consent link',
  'device-code': 'device code',
  password: 'password (ROPC)',
};

export function refused(reason: string, nextStep: string, reference?: MicrosoftReference): SignInReport {
  return { kind: 'refused', reason, nextStep, ...(reference && { reference }) };
}

/** Why ops cannot sign in to this connection, or undefined when they can. */
export function refuseConnection(connection: Connection): SignInReport | undefined {
  if (connection.mode !== 'delegated') {
    return refused(
      `Connection ${connection.id} is an application connection: an administrator grants it app-only access, nobody signs in to it.`,
      'Send the customer\'s administrator a consent link (POST …/connections/{id}/consent-link); only delegated connections take a device code or password sign-in.',
    );
  }
  if (connection.state === 'disconnected') {
    return refused(`Connection ${connection.id} is disconnected, and a disconnected connection stays so.`, 'Create a new connection for the customer.');
  }
  return undefined;
}

export interface SignInTarget {
  /** The tenant segment of the authority: the connection's tenant on a reconnect, else `organizations`. */
  tenant: string;
  /** The scopes of the connection's primary resource, as the browser flow asks them. */
  scopes: string[];
  /** The connection's other resource, which these flows cannot ask consent for alongside. */
  other?: { resource: Resource; scopes: string[] };
}

/**
 * Where and what to ask. A reconnect signs in at the connection's tenant, as the browser flow's
 * domain hint does, so Microsoft offers only that tenant's accounts. Neither flow has the browser
 * flow's "consent to the other resource as well" (one resource per token request), so the other
 * resource's permissions must have been granted already; `other` is checked after the sign-in.
 */
export function signInTarget(msal: MsalClients, connection: Connection): SignInTarget {
  const scopes = delegatedScopes(msal.app(connection.appId).cloud, connection.transports);
  const otherResource: Resource = scopes.primary === 'graph' ? 'outlook' : 'graph';
  const other = scopes.byResource[otherResource];
  return {
    tenant: connection.tenantId ?? 'organizations',
    scopes: scopes.byResource[scopes.primary] ?? [],
    ...(other && { other: { resource: otherResource, scopes: other } }),
  };
}
