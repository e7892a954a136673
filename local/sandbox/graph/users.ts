import type { SandboxState, User } from '../identity/sandbox-state.js';
import { holdsAny, type PermissionSet } from './authentication.js';
import { graphErrors } from './errors.js';
import { findUser } from './mailboxes.js';
import { odataContext, project, selectedProperties } from './odata.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';

/**
 * `GET /me` and `GET /users/{id | userPrincipalName}`: a user's profile with Graph's default
 * properties (`mail` is their mailbox's address, null without one). Reading one's own profile
 * takes User.Read; anyone else's takes User.Read.All, delegated or as an app role.
 */

const DEFAULT_PROPERTIES = ['businessPhones', 'displayName', 'givenName', 'jobTitle', 'mail', 'mobilePhone', 'officeLocation', 'preferredLanguage', 'surname', 'userPrincipalName', 'id'] as const;
/** Selectable, not returned unless asked for (as in Graph). */
const OTHER_PROPERTIES = ['accountEnabled', 'userType'] as const;

const READ_OWN_PROFILE: PermissionSet = { delegated: ['User.Read', 'User.Read.All'], application: [] };
const READ_ANY_PROFILE: PermissionSet = { delegated: ['User.Read.All'], application: ['User.Read.All'] };

function userEntity(state: SandboxState, user: User): Record<string, unknown> {
  return {
    businessPhones: [],
    displayName: user.displayName,
    givenName: null,
    jobTitle: null,
    mail: state.mailboxOf(user)?.address ?? null,
    mobilePhone: null,
    officeLocation: null,
    preferredLanguage: null,
    surname: null,
    userPrincipalName: user.userPrincipalName,
    id: user.id,
    accountEnabled: true,
    userType: 'Member',
  };
}

const isNamed = (user: User, idOrUpn: string) => [user.id, user.userPrincipalName].some((key) => key.toLowerCase() === idOrUpn.toLowerCase());

export function userRoutes(env: GraphEnvironment): GraphRoute[] {
  const { state } = env.context;
  const answer = (user: User, query: URLSearchParams): GraphResult => {
    const selected = selectedProperties(query, [...DEFAULT_PROPERTIES, ...OTHER_PROPERTIES], (name) => graphErrors.directoryPropertyUnknown(name, 'user'));
    const entity = project(userEntity(state, user), selected ?? DEFAULT_PROPERTIES);
    return { status: 200, body: { '@odata.context': odataContext(env.serviceRoot, 'users', selected, 'entity'), ...entity } };
  };
  const me = ({ caller, query }: GraphRequest): GraphResult => {
    if (caller.kind !== 'delegated') throw graphErrors.meNeedsUser();
    if (!holdsAny(caller, READ_OWN_PROFILE)) throw graphErrors.insufficientPrivileges();
    return answer(caller.user, query);
  };
  const user = ({ caller, query, params }: GraphRequest): GraphResult => {
    const idOrUpn = params[0] ?? '';
    if (caller.kind === 'delegated' && isNamed(caller.user, idOrUpn) && holdsAny(caller, READ_OWN_PROFILE)) return answer(caller.user, query);
    if (!holdsAny(caller, READ_ANY_PROFILE)) throw graphErrors.insufficientPrivileges();
    const found = findUser(state, caller.tenant.id, idOrUpn);
    if (!found) throw graphErrors.resourceNotFound(idOrUpn);
    return answer(found, query);
  };
  return [
    { method: 'GET', path: /^\/me$/i, handle: me },
    { method: 'GET', path: /^\/users\/([^/()]+)$/i, handle: user },
  ];
}
