import type { Mailbox, SandboxState, User } from '../identity/sandbox-state.js';
import { holdsAny, type GraphCaller, type PermissionSet } from './authentication.js';
import { graphErrors } from './errors.js';
import type { GraphRequest, GraphResult, GraphRoute } from './router.js';

/**
 * Which mailbox a mail request is about, and whether the caller may open it: the Outlook side of
 * Graph, shared by every mail resource (folders, messages, sending; delta and subscriptions later).
 * `/me/…` is the signed-in user's own mailbox; `/users/{id | userPrincipalName}/…` names a user or
 * a mailbox address in the caller's tenant (a shared mailbox has no user of its own here). A
 * delegated caller opens their own mailbox and those they have FullAccess to; an app-only caller
 * with the permission opens any mailbox in the tenant.
 */

export interface MailboxTarget {
  mailbox: Mailbox;
  /** How `@odata.context` names the owner: `users('<id or address>')`. */
  entitySet: string;
}

export const sameText = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** A user of the tenant by object id or user principal name. */
export function findUser(state: SandboxState, tenantId: string, idOrUpn: string): User | undefined {
  return state.usersOf(tenantId).find((u) => sameText(u.id, idOrUpn) || sameText(u.userPrincipalName, idOrUpn));
}

const usersEntitySet = (key: string) => `users('${encodeURIComponent(key)}')`;

function mailboxOfUser(state: SandboxState, user: User): Mailbox {
  const mailbox = state.mailboxOf(user);
  if (!mailbox) throw graphErrors.mailboxNotEnabled();
  return mailbox;
}

/** The mailbox `/me` or `/users/{who}` names; `who` is undefined for `/me`. */
function resolveMailbox(state: SandboxState, caller: GraphCaller, who: string | undefined): MailboxTarget {
  if (who === undefined) {
    if (caller.kind !== 'delegated') throw graphErrors.meNeedsUser();
    return { mailbox: mailboxOfUser(state, caller.user), entitySet: usersEntitySet(caller.user.id) };
  }
  const user = findUser(state, caller.tenant.id, who);
  if (user) return { mailbox: mailboxOfUser(state, user), entitySet: usersEntitySet(who) };
  const mailbox = state.mailboxByAddress(caller.tenant.id, who);
  if (!mailbox) throw graphErrors.invalidUser(who);
  return { mailbox, entitySet: usersEntitySet(who) };
}

/**
 * The mailbox a mail request may work on: `/me` needs a user, then the permission (before any
 * look-up, so an app without it learns nothing about addresses), then the mailbox, then access to it.
 */
export function authorizedMailbox(state: SandboxState, caller: GraphCaller, who: string | undefined, permissions: PermissionSet): MailboxTarget {
  if (who === undefined && caller.kind !== 'delegated') throw graphErrors.meNeedsUser();
  if (!holdsAny(caller, permissions)) throw graphErrors.mailAccessDenied();
  const target = resolveMailbox(state, caller, who);
  if (caller.kind === 'delegated') {
    const own = sameText(target.mailbox.address, caller.user.userPrincipalName);
    if (!own && !target.mailbox.fullAccess.includes(caller.user.id)) throw graphErrors.mailAccessDenied();
  }
  return target;
}

/**
 * The address of the mailbox a request names, without checking anything: the per-mailbox limits
 * count a request before its handler decides whether the caller may have it. Undefined when it
 * names none (an app's `/me`, an unknown address), which the handler will refuse anyway.
 */
export function namedMailboxAddress(state: SandboxState, caller: GraphCaller, who: string | undefined): string | undefined {
  if (who === undefined) return caller.kind === 'delegated' ? state.mailboxOf(caller.user)?.address : undefined;
  const user = findUser(state, caller.tenant.id, who);
  return (user ? state.mailboxOf(user) : state.mailboxByAddress(caller.tenant.id, who))?.address;
}

export type MailboxHandler = (request: GraphRequest, who: string | undefined, params: string[]) => GraphResult | Promise<GraphResult>;

/**
 * The two routes of an Outlook resource, `/me<rest>` and `/users/{who}<rest>` (`rest` a regular
 * expression source starting with `/`): the handler gets `who` (undefined for /me) and the groups
 * of `rest`, and the router applies the per-mailbox limits to both.
 */
export function mailboxRoutes(method: string, rest: string, handle: MailboxHandler, body?: GraphRoute['body']): GraphRoute[] {
  const shared = { method, ...(body === undefined ? {} : { body }) };
  return [
    { ...shared, path: new RegExp(`^/me${rest}$`, 'i'), mailbox: () => ({ who: undefined }), handle: (r) => handle(r, undefined, r.params) },
    { ...shared, path: new RegExp(`^/users/([^/()]+)${rest}$`, 'i'), mailbox: (p) => ({ who: p[0] }), handle: (r) => handle(r, r.params[0], r.params.slice(1)) },
  ];
}
