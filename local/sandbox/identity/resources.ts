import { aadsts } from './aadsts.js';

/**
 * The resource APIs the sandbox issues tokens for (Microsoft Graph and Office 365 Exchange Online),
 * with their delegated permissions and app roles, and the parsing of a `scope` parameter into them.
 * Entra's rules, mirrored here:
 * - a scope is `<resource identifier>/<name>`; a bare name means Microsoft Graph;
 * - `openid`, `profile`, `email` and `offline_access` belong to no resource;
 * - `<resource>/.default` stands for the permissions configured on the app registration;
 * - an access token's `aud` is the identifier the request used (Exchange answers to several, so a
 *   token for `https://outlook.office365.com/.default` has that audience, and one for
 *   `https://outlook.office.com/IMAP.AccessAsUser.All` has `https://outlook.office.com`); bare Graph
 *   names give Graph's application id as the audience.
 */

export interface Permission {
  name: string;
  /** What the consent page says, in the words Entra's consent screens use. */
  words: string;
  /** Delegated permissions only an administrator may consent to. */
  adminOnly?: boolean;
}

export interface ResourceApi {
  appId: string;
  displayName: string;
  identifierUris: readonly string[];
  delegated: readonly Permission[];
  appRoles: readonly Permission[];
}

export const MICROSOFT_GRAPH: ResourceApi = {
  appId: '00000003-0000-0000-c000-000000000000',
  displayName: 'Microsoft Graph',
  identifierUris: ['https://graph.microsoft.com'],
  delegated: [
    { name: 'User.Read', words: 'Sign you in and read your profile' },
    { name: 'User.Read.All', words: "Read all users' full profiles", adminOnly: true },
    { name: 'Mail.Read', words: 'Read your mail' },
    { name: 'Mail.ReadBasic', words: 'Read user basic mail' },
    { name: 'Mail.ReadWrite', words: 'Read and write access to your mail' },
    { name: 'Mail.Send', words: 'Send mail as you' },
    { name: 'Mail.Read.Shared', words: 'Read user and shared mail' },
    { name: 'Mail.ReadWrite.Shared', words: 'Read and write user and shared mail' },
    { name: 'Mail.Send.Shared', words: 'Send mail on behalf of others' },
    { name: 'MailboxSettings.Read', words: 'Read your mailbox settings' },
    { name: 'Application.Read.All', words: 'Read applications', adminOnly: true },
  ],
  appRoles: [
    { name: 'Mail.Read', words: 'Read mail in all mailboxes' },
    { name: 'Mail.ReadBasic.All', words: 'Read basic mail in all mailboxes' },
    { name: 'Mail.ReadWrite', words: 'Read and write mail in all mailboxes' },
    { name: 'Mail.Send', words: 'Send mail as any user' },
    { name: 'MailboxSettings.Read', words: 'Read all user mailbox settings' },
    { name: 'User.Read.All', words: "Read all users' full profiles" },
    { name: 'Application.Read.All', words: 'Read all applications' },
  ],
};

export const EXCHANGE_ONLINE: ResourceApi = {
  appId: '00000002-0000-0ff1-ce00-000000000000',
  displayName: 'Office 365 Exchange Online',
  identifierUris: ['https://outlook.office.com', 'https://outlook.office365.com', 'https://ps.outlook.com'],
  delegated: [
    { name: 'IMAP.AccessAsUser.All', words: 'Read and write access to mailboxes via IMAP' },
    { name: 'POP.AccessAsUser.All', words: 'Read and write access to mailboxes via POP' },
    { name: 'SMTP.Send', words: 'Send emails from mailboxes using SMTP AUTH' },
    { name: 'EWS.AccessAsUser.All', words: 'Access mailboxes as the signed-in user via Exchange Web Services' },
  ],
  appRoles: [
    { name: 'IMAP.AccessAsApp', words: 'Access all mailboxes via IMAP' },
    { name: 'POP.AccessAsApp', words: 'Access all mailboxes via POP' },
    { name: 'SMTP.SendAsApp', words: 'Send emails from all mailboxes using SMTP AUTH' },
    { name: 'full_access_as_app', words: 'Use Exchange Web Services with full access to all mailboxes' },
  ],
};

export const RESOURCE_APIS: readonly ResourceApi[] = [MICROSOFT_GRAPH, EXCHANGE_ONLINE];

export const OIDC_SCOPES: Readonly<Record<string, string>> = {
  openid: 'Sign you in',
  profile: 'View your basic profile',
  email: 'View your email address',
  offline_access: 'Maintain access to data you have given it access to',
};

export function resourceByAppId(appId: string): ResourceApi | undefined {
  return RESOURCE_APIS.find((resource) => resource.appId === appId);
}

/** The scopes of one request that belong to one resource. */
export interface ResourceScopes {
  resource: ResourceApi;
  /** The identifier the request used: becomes the access token's `aud`. */
  audience: string;
  /** Canonical permission names (without `.default`). */
  names: string[];
  /** `<resource>/.default` was asked for. */
  isDefault: boolean;
}

export interface ParsedScopes {
  /** openid, profile, email, offline_access as asked for, lower-case. */
  oidc: Set<string>;
  resources: ResourceScopes[];
}

function splitScope(scope: string): { identifier: string; name: string } {
  const slash = scope.lastIndexOf('/');
  if (slash < 0) return { identifier: MICROSOFT_GRAPH.appId, name: scope };
  return { identifier: scope.slice(0, slash).replace(/\/+$/, ''), name: scope.slice(slash + 1) };
}

function findResource(identifier: string): { resource: ResourceApi; audience: string } | undefined {
  const wanted = identifier.toLowerCase();
  for (const resource of RESOURCE_APIS) {
    if (resource.appId === wanted) return { resource, audience: resource.appId };
    const uri = resource.identifierUris.find((candidate) => candidate.toLowerCase() === wanted);
    if (uri) return { resource, audience: uri };
  }
  return undefined;
}

/**
 * Splits a `scope` parameter by resource. Names are matched case-insensitively, as Entra does,
 * and come back in the catalog's spelling. An unknown resource or delegated permission is an
 * error; app-only flows check their own rule (only `.default`).
 */
export function parseScopes(scopeParameter: string, tenantName: string): ParsedScopes {
  const oidc = new Set<string>();
  const resources: ResourceScopes[] = [];
  for (const scope of scopeParameter.split(/\s+/).filter((s) => s !== '')) {
    if (scope.toLowerCase() in OIDC_SCOPES) {
      oidc.add(scope.toLowerCase());
      continue;
    }
    const { identifier, name } = splitScope(scope);
    const found = findResource(identifier);
    if (!found) throw aadsts.resourceNotFound(identifier, tenantName);
    let entry = resources.find((r) => r.resource === found.resource);
    if (!entry) {
      entry = { resource: found.resource, audience: found.audience, names: [], isDefault: false };
      resources.push(entry);
    }
    if (name.toLowerCase() === '.default') {
      entry.isDefault = true;
      continue;
    }
    const permission = found.resource.delegated.find((p) => p.name.toLowerCase() === name.toLowerCase());
    if (!permission) throw aadsts.invalidScope(scope);
    if (!entry.names.includes(permission.name)) entry.names.push(permission.name);
  }
  return { oidc, resources };
}

/**
 * How a token response's `scope` names a permission: in the form the request used, so a client
 * that asked for `https://graph.microsoft.com/Mail.Send` finds its token under that name, and
 * bare Graph names (audience = Graph's application id) stay bare, as in Entra's documented responses.
 */
export function qualifiedScope(resource: ResourceApi, audience: string, name: string): string {
  return audience === resource.appId ? name : `${audience}/${name}`;
}

/** `https://graph.microsoft.com/Mail.Send` → the resource and the permission name, for app registrations. */
export function parsePermissionReference(reference: string, kind: 'delegated' | 'appRole'): { resource: ResourceApi; name: string } {
  const { identifier, name } = splitScope(reference);
  const found = findResource(identifier);
  const list = kind === 'delegated' ? found?.resource.delegated : found?.resource.appRoles;
  const permission = list?.find((p) => p.name.toLowerCase() === name.toLowerCase());
  if (!found || !permission) {
    const known = RESOURCE_APIS.flatMap((r) => (kind === 'delegated' ? r.delegated : r.appRoles).map((p) => `${r.identifierUris[0] ?? r.appId}/${p.name}`));
    throw new Error(`"${reference}" is not a ${kind === 'delegated' ? 'delegated permission' : 'app role'} the sandbox knows. Known: ${known.join(', ')}`);
  }
  return { resource: found.resource, name: permission.name };
}

export function permissionWords(resource: ResourceApi, name: string, kind: 'delegated' | 'appRole'): string {
  const list = kind === 'delegated' ? resource.delegated : resource.appRoles;
  return list.find((p) => p.name === name)?.words ?? name;
}
