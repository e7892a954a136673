import { createHash } from 'node:crypto';
import type { AppRegistration } from '../identity/sandbox-state.js';
import { holdsAny, type GraphCaller, type PermissionSet } from './authentication.js';
import { graphErrors } from './errors.js';
import { odataContext, project, selectedProperties } from './odata.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';

/**
 * App registrations as Graph shows them to their own tenant: `GET /applications(appId='{appId}')`,
 * `GET /applications/{id}` and `GET /applications?$filter=appId eq '{appId}'`. What a vendor reads
 * here is when its credentials run out: secrets (`passwordCredentials`, never their values) and
 * certificates (`keyCredentials`, by SHA-1 thumbprint), each with its start and end. Reading takes
 * Application.Read.All; another tenant's registration is not there at all (404, or an empty list).
 */

const READ_APPLICATIONS: PermissionSet = { delegated: ['Application.Read.All'], application: ['Application.Read.All'] };
const APPLICATION_PROPERTIES = ['id', 'appId', 'displayName', 'signInAudience', 'keyCredentials', 'passwordCredentials'] as const;

/** The registration's object id, which Graph keeps apart from its appId (the client id). */
export function applicationObjectId(clientId: string): string {
  const hex = createHash('sha256').update(`application\n${clientId.toLowerCase()}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function applicationEntity(app: AppRegistration): Record<string, unknown> {
  return {
    id: applicationObjectId(app.clientId),
    appId: app.clientId,
    displayName: app.displayName,
    signInAudience: 'AzureADMultipleOrgs',
    keyCredentials: app.certificates.map((c) => ({
      customKeyIdentifier: c.thumbprintSha1,
      displayName: c.displayName,
      endDateTime: iso(c.endDateTime),
      key: null,
      keyId: c.keyId,
      startDateTime: iso(c.startDateTime),
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
    })),
    passwordCredentials: app.secrets.map((s) => ({
      customKeyIdentifier: null,
      displayName: s.displayName,
      endDateTime: iso(s.endDateTime),
      hint: s.hint,
      keyId: s.keyId,
      secretText: null,
      startDateTime: iso(s.startDateTime),
    })),
  };
}

/** `appId eq '…'`, the one filter the sandbox answers; anything else is refused as Graph refuses a filter it cannot run. */
function appIdFilter(filter: string): string {
  const match = /^\s*appId\s+eq\s+'([^']*)'\s*$/i.exec(filter);
  if (!match) throw graphErrors.unsupportedFilter(/^\s*([A-Za-z]+)/.exec(filter)?.[1] ?? filter, 'Application');
  return match[1] ?? '';
}

export function applicationRoutes(env: GraphEnvironment): GraphRoute[] {
  const { state } = env.context;
  const visible = (caller: GraphCaller): AppRegistration[] => {
    if (!holdsAny(caller, READ_APPLICATIONS)) throw graphErrors.insufficientPrivileges();
    return state.data.apps.filter((app) => app.homeTenantId === caller.tenant.id);
  };
  const selection = (query: URLSearchParams) => selectedProperties(query, APPLICATION_PROPERTIES, (name) => graphErrors.directoryPropertyUnknown(name, 'application'));
  const one = (request: GraphRequest, matches: (app: AppRegistration) => boolean): GraphResult => {
    const app = visible(request.caller).find(matches);
    if (!app) throw graphErrors.resourceNotFound(request.params[0] ?? '');
    const selected = selection(request.query);
    return { status: 200, body: { '@odata.context': odataContext(env.serviceRoot, 'applications', selected, 'entity'), ...project(applicationEntity(app), selected) } };
  };
  const list = ({ caller, query }: GraphRequest): GraphResult => {
    const filter = query.get('$filter');
    const appId = filter === null ? undefined : appIdFilter(filter);
    const apps = visible(caller).filter((app) => appId === undefined || app.clientId.toLowerCase() === appId.toLowerCase());
    const selected = selection(query);
    return { status: 200, body: { '@odata.context': odataContext(env.serviceRoot, 'applications', selected, 'collection'), value: apps.map((app) => project(applicationEntity(app), selected)) } };
  };
  return [
    { method: 'GET', path: /^\/applications$/i, handle: list },
    { method: 'GET', path: /^\/applications\(appId='([^']*)'\)$/i, handle: (r) => one(r, (app) => app.clientId.toLowerCase() === (r.params[0] ?? '').toLowerCase()) },
    { method: 'GET', path: /^\/applications\/([^/()]+)$/i, handle: (r) => one(r, (app) => applicationObjectId(app.clientId) === (r.params[0] ?? '').toLowerCase()) },
  ];
}
