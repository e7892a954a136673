import type { ConnectionMode } from '../domain/connection.js';
import type { Html } from './html.js';
import { t, type Locale, type MessageKey } from './i18n.js';

/**
 * Permissions in plain words. The same name means different things by mode: delegated `Mail.Send`
 * sends as the signed-in user, the `Mail.Send` app role as anyone in the organization; so the
 * sentence is looked up by mode and by the permission's name without its resource
 * (`https://graph.microsoft.com/Mail.Send` and `Mail.Send` are the same permission here).
 */

type AccessMessage = Extract<MessageKey, `access.delegated.${string}` | `access.application.${string}`>;

const SIGN_IN_SCOPES = new Set(['openid', 'profile', 'email']);

const DELEGATED: Readonly<Record<string, AccessMessage>> = {
  'User.Read': 'access.delegated.userRead',
  offline_access: 'access.delegated.offlineAccess',
  'Mail.Send': 'access.delegated.mailSend',
  'Mail.ReadWrite': 'access.delegated.mailReadWrite',
  'IMAP.AccessAsUser.All': 'access.delegated.imap',
  'POP.AccessAsUser.All': 'access.delegated.pop',
  'SMTP.Send': 'access.delegated.smtp',
};

const APPLICATION: Readonly<Record<string, AccessMessage>> = {
  'Mail.Send': 'access.application.mailSend',
  'Mail.ReadWrite': 'access.application.mailReadWrite',
  'IMAP.AccessAsApp': 'access.application.imap',
  'POP.AccessAsApp': 'access.application.pop',
  'SMTP.SendAsApp': 'access.application.smtp',
};

/** App roles of Office 365 Exchange Online, which less privileged admin roles may grant than Graph's. */
const EXCHANGE_APP_ROLES = new Set(['IMAP.AccessAsApp', 'POP.AccessAsApp', 'SMTP.SendAsApp']);
const EXCHANGE_PROTOCOL_PERMISSIONS = new Set([...EXCHANGE_APP_ROLES, 'IMAP.AccessAsUser.All', 'POP.AccessAsUser.All', 'SMTP.Send']);

/** `https://outlook.office.com/IMAP.AccessAsUser.All` → `IMAP.AccessAsUser.All`. */
function permissionName(permission: string): string {
  const match = /^https?:\/\/[^/]+\/(.+)$/.exec(permission);
  return match?.[1] ?? permission;
}

/** One sentence per distinct permission, in the order asked; openid, profile and email read as one. */
export function describePermissions(mode: ConnectionMode, permissions: readonly string[], vendor: string, locale: Locale): Html[] {
  const sentences = new Map<string, Html>();
  for (const permission of permissions) {
    const name = permissionName(permission);
    if (SIGN_IN_SCOPES.has(name)) {
      sentences.set('access.signIn', t(locale, 'access.signIn'));
      continue;
    }
    if (name === '.default') {
      sentences.set('access.default', t(locale, 'access.default', { vendor }));
      continue;
    }
    const known = (mode === 'delegated' ? DELEGATED : APPLICATION)[name];
    if (known) sentences.set(known, t(locale, known));
    else sentences.set(`other:${permission}`, t(locale, 'access.other', { permission }));
  }
  return [...sentences.values()];
}

/** Whether the connection reads or sends over IMAP, POP or SMTP, which needs Exchange set-up in application mode. */
export function usesExchangeProtocols(permissions: readonly string[]): boolean {
  return permissions.some((permission) => EXCHANGE_PROTOCOL_PERMISSIONS.has(permissionName(permission)));
}

/**
 * The administrator roles that can grant these permissions for the whole organization. Granting
 * Microsoft Graph app roles (application permissions) takes a Global Administrator or Privileged
 * Role Administrator; delegated permissions and other APIs' app roles (Exchange's IMAP/POP/SMTP)
 * can also be granted by a Cloud Application Administrator or Application Administrator
 * (learn.microsoft.com "Grant tenant-wide admin consent to an application", prerequisites; the
 * admin consent workflow is stricter still: only Global Administrators approve requests for Graph
 * app roles, microsoft.md §1.5). A `.default` scope covers whatever the app registration lists,
 * which may include Graph app roles, so it needs the privileged roles too.
 */
export function approverRoles(mode: ConnectionMode, permissions: readonly string[]): Extract<MessageKey, `roles.${string}`> {
  const needsPrivileged = permissions.some((permission) => {
    const name = permissionName(permission);
    if (name === '.default') return true;
    return mode === 'application' && !EXCHANGE_APP_ROLES.has(name);
  });
  return needsPrivileged ? 'roles.privileged' : 'roles.application';
}
