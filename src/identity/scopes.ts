import { transportsSchema, type Transports } from '../domain/connection.js';
import type { Cloud } from './clouds.js';

/**
 * The permissions a connection asks for, from how its mail goes out and comes in. A token belongs
 * to one resource (Graph, or Exchange for IMAP/POP/SMTP), so the scopes are grouped by resource:
 * the sign-in asks for the primary one and lets the user consent to the other at the same time;
 * the other resource's token is then obtained silently with the same refresh token.
 */

export type Resource = 'graph' | 'outlook';

export interface DelegatedScopes {
  primary: Resource;
  byResource: Partial<Record<Resource, string[]>>;
}

export function delegatedScopes(cloud: Cloud, transports: Transports): DelegatedScopes {
  const graph: string[] = [];
  const outlook: string[] = [];
  // Sending through Graph writes drafts for large attachments and reads Sent Items after a crash
  // (Mail.ReadWrite); the Shared variants reach the shared mailboxes the user may send from.
  if (transports.send === 'graph') graph.push('Mail.Send', 'Mail.Send.Shared', 'Mail.ReadWrite', 'Mail.ReadWrite.Shared');
  else outlook.push('SMTP.Send');
  if (transports.receive === 'graph' && transports.send !== 'graph') graph.push('Mail.ReadWrite');
  else if (transports.receive === 'imap') outlook.push('IMAP.AccessAsUser.All');
  else if (transports.receive === 'pop3') outlook.push('POP.AccessAsUser.All');
  // The user's profile names the mailbox the connection starts with.
  graph.push('User.Read');
  const byResource: Partial<Record<Resource, string[]>> = { graph: graph.map((scope) => `${cloud.graphResource}/${scope}`) };
  if (outlook.length > 0) byResource.outlook = outlook.map((scope) => `${cloud.outlookResource}/${scope}`);
  return { primary: outlook.length > 0 ? 'outlook' : 'graph', byResource };
}

/** The `.default` scope of a resource, for client credentials and admin consent. */
export function defaultScope(cloud: Cloud, resource: Resource): string {
  return `${resource === 'graph' ? cloud.graphResource : cloud.outlookAppResource}/.default`;
}

/**
 * What an administrator consents to for a connection: app-only access in application mode, or the
 * delegated permissions on behalf of the organization when user consent is blocked. The Graph
 * `.default` covers every permission configured on the app registration (Graph and Exchange).
 */
export function adminConsentScope(cloud: Cloud): string {
  return defaultScope(cloud, 'graph');
}

/**
 * The app roles an application connection needs, by resource: Graph's for Graph mail, Office 365
 * Exchange Online's for IMAP/POP/SMTP. Admin consent grants whatever the app registration lists;
 * a role missing here means the registration lacks it.
 */
export function requiredAppRoles(transports: Transports): Record<Resource, string[]> {
  const graph: string[] = [];
  const outlook: string[] = [];
  // Drafts for large attachments and the Sent Items check need Mail.ReadWrite besides Mail.Send.
  if (transports.send === 'graph') graph.push('Mail.Send', 'Mail.ReadWrite');
  else outlook.push('SMTP.SendAsApp');
  if (transports.receive === 'graph' && transports.send !== 'graph') graph.push('Mail.ReadWrite');
  else if (transports.receive === 'imap') outlook.push('IMAP.AccessAsApp');
  else if (transports.receive === 'pop3') outlook.push('POP.AccessAsApp');
  return { graph, outlook };
}

/** Every delegated scope of a connection, both resources together, as an admin grants them at once. */
export function allDelegatedScopes(cloud: Cloud, transports: Transports): string[] {
  const { byResource } = delegatedScopes(cloud, transports);
  return [...(byResource.graph ?? []), ...(byResource.outlook ?? []), 'offline_access'];
}

/**
 * Every permission an app registration needs so that any connection, whatever its transports, can
 * be consented: what the README tells a vendor to add in Entra ID, and what `npm start` registers
 * in the sandbox. Derived from the per-connection functions above so the two cannot drift apart.
 */
export function appRegistrationPermissions(cloud: Cloud): { delegated: string[]; appRoles: string[] } {
  const every = transportsSchema.shape;
  const delegated = new Set<string>();
  const appRoles = new Set<string>();
  for (const send of every.send.options) {
    for (const receive of every.receive.options) {
      const { byResource } = delegatedScopes(cloud, { send, receive });
      for (const scope of [...(byResource.graph ?? []), ...(byResource.outlook ?? [])]) delegated.add(scope);
      const roles = requiredAppRoles({ send, receive });
      for (const role of roles.graph) appRoles.add(`${cloud.graphResource}/${role}`);
      for (const role of roles.outlook) appRoles.add(`${cloud.outlookAppResource}/${role}`);
    }
  }
  return { delegated: [...delegated].sort(), appRoles: [...appRoles].sort() };
}
