import type { IncomingHttpHeaders } from 'node:http';
import type { SandboxContext } from '../identity/context.js';
import type { Handler, SandboxRequest } from '../identity/http.js';
import { MICROSOFT_GRAPH } from '../identity/resources.js';
import type { InjectedFault, RequestFaults } from '../identity/request-faults.js';
import { authenticate, type GraphCaller, type TokenVerifier } from './authentication.js';
import { GraphError, errorResponse, graphErrors, graphResponse, requestIds } from './errors.js';
import type { MailboxThrottle } from './mailbox-limits.js';
import type { MailRelay } from './mail-relay.js';
import { namedMailboxAddress } from './mailboxes.js';
import type { MailStore } from './mail-store.js';
import type { DeltaTokens } from './delta-tokens.js';
import { IMMUTABLE_ID_APPLIED, prefersImmutableIds } from './prefer.js';
import type { SubscriptionRegistry } from './subscription-registry.js';

/**
 * The sandbox Graph's router. Each resource module contributes routes over the path after the
 * version (`/me`, `/users/{id}/mailFolders/{id}` …, matched case-insensitively as Graph does); the
 * router does what every Graph request goes through, in this order: injected faults (an outage
 * hits everything), the version, the route, the bearer token, the per-mailbox limits (Outlook
 * resources), the body (at most 4 MB, JSON or base64 MIME where the route wants it), then the
 * resource's handler. The limits count a request from before its body arrives until it is
 * answered, as Graph's concurrency limit does. A GraphError thrown anywhere becomes Graph's error
 * JSON.
 */

export const GRAPH_PREFIX = '/graph';
export const GRAPH_VERSION = 'v1.0';

export interface GraphEnvironment {
  context: SandboxContext;
  /** `https://127.0.0.1:<port>/graph/v1.0`: where `@odata.context` URLs point. */
  serviceRoot: string;
  store: MailStore;
  throttle: MailboxThrottle;
  relay: MailRelay;
  /** What makes delta tokens stale (delta-tokens.ts). */
  deltaTokens: DeltaTokens;
  /** Change notification subscriptions and their delivery (subscription-registry.ts). */
  subscriptions: SubscriptionRegistry;
}

/** Graph's cap on a request body ("4 MB": 4,194,304 bytes pass, one more does not). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export interface GraphRequest {
  method: string;
  /** The path after the version, percent-decoded. */
  path: string;
  /** The route's groups. */
  params: string[];
  query: URLSearchParams;
  /** The request's headers (`Prefer`, …). */
  headers: IncomingHttpHeaders;
  /** The parsed body of a route that takes JSON, else undefined. */
  json: unknown;
  /** The body of a `json-or-mime` route sent as text/plain: a MIME message in base64 (mime-input.ts reads it). */
  mime?: string;
  caller: GraphCaller;
}

export interface GraphResult {
  status: number;
  /** An OData JSON answer. */
  body?: unknown;
  /** Or a text answer (MIME), with its Content-Type in `headers`. */
  text?: string;
  headers?: Record<string, string>;
}

export interface GraphRoute {
  method: string;
  path: RegExp;
  /** An Outlook resource: the mailbox it works on (`who` from the path, undefined for /me), for the per-mailbox limits. */
  mailbox?: (params: string[]) => { who: string | undefined };
  /**
   * `json`: the request must carry a JSON body (Graph refuses an empty or unreadable one);
   * `json-or-mime`: or, as text/plain, a MIME message in base64 (Graph's "MIME format"), handed over as `mime`.
   * Otherwise a body is read only to hold it to the size cap.
   */
  body?: 'json' | 'json-or-mime';
  handle(request: GraphRequest): GraphResult | Promise<GraphResult>;
}

type GraphFaultStatus = 429 | 500 | 503;
export type GraphFaults = RequestFaults<GraphFaultStatus>;

function faultError(fault: InjectedFault<GraphFaultStatus>): GraphError {
  const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) };
  if (fault.status === 429) return graphErrors.throttled(headers);
  if (fault.status === 503) return graphErrors.unavailable(headers);
  return graphErrors.internal(headers);
}

function decodedPath(path: string): string {
  try {
    return decodeURIComponent(path).replace(/(.)\/$/, '$1');
  } catch {
    throw graphErrors.badUri();
  }
}

/** The route for this path and method; Graph names the segment it could not place, or refuses the method. */
function findRoute(routes: readonly GraphRoute[], method: string, path: string): { route: GraphRoute; params: string[] } {
  let pathKnown = false;
  for (const route of routes) {
    const match = route.path.exec(path);
    if (!match) continue;
    pathKnown = true;
    if (route.method === method) return { route, params: match.slice(1) };
  }
  if (pathKnown) throw graphErrors.methodNotAllowed(method);
  throw graphErrors.segmentNotFound(path.split('/').filter((s) => s !== '').at(-1) ?? '');
}

/**
 * Graph's challenge: where to get a token, and for which resource. The sandbox points at its own
 * authority host instead of login.microsoftonline.com.
 */
function challenge(context: SandboxContext): Record<string, string> {
  return { 'WWW-Authenticate': `Bearer realm="", authorization_uri="${context.httpsBase}/common/oauth2/authorize", client_id="${MICROSOFT_GRAPH.appId}"` };
}

const contentType = (headers: IncomingHttpHeaders) => (headers['content-type'] ?? '').toLowerCase();

/** The body the route takes: held to Graph's size cap whatever the route, parsed when it wants JSON, as text when it is MIME. */
async function requestBody(route: GraphRoute, request: SandboxRequest): Promise<Pick<GraphRequest, 'json' | 'mime'>> {
  const bytes = request.body === undefined ? Buffer.alloc(0) : await request.body.read(MAX_REQUEST_BYTES);
  if (bytes === undefined) throw graphErrors.requestTooLarge();
  if (route.body === undefined) return { json: undefined };
  const type = contentType(request.headers);
  if (route.body === 'json-or-mime' && type.startsWith('text/plain')) return { json: undefined, mime: bytes.toString('utf8') };
  if (bytes.length === 0) throw graphErrors.emptyPayload();
  if (!type.startsWith('application/json')) throw graphErrors.unreadableJson();
  try {
    return { json: JSON.parse(bytes.toString('utf8')) };
  } catch {
    throw graphErrors.unreadableJson();
  }
}

export function graphHandler(env: GraphEnvironment, routes: readonly GraphRoute[], faults: GraphFaults, verifier: TokenVerifier): Handler {
  const { context, throttle } = env;
  return async (request: SandboxRequest) => {
    const ids = requestIds(request.headers, context.now());
    let release: (() => void) | undefined;
    try {
      throttle.countRequest();
      const fault = faults.take();
      if (fault) {
        if (fault.status === 429) throttle.countInjectedThrottle();
        throw faultError(fault);
      }
      const [, version = '', rest = ''] = /^\/?([^/]*)(.*)$/.exec(request.url.pathname.slice(GRAPH_PREFIX.length)) ?? [];
      if (version !== GRAPH_VERSION) throw graphErrors.invalidVersion(version);
      const path = decodedPath(rest);
      const { route, params } = findRoute(routes, request.method, path);
      const caller = await authenticate(request.headers.authorization, verifier);
      const address = route.mailbox === undefined ? undefined : namedMailboxAddress(context.state, caller, route.mailbox(params).who);
      if (address !== undefined) release = throttle.admit(caller.clientId, address);
      const body = await requestBody(route, request);
      const result = await route.handle({ method: request.method, path, params, query: request.url.searchParams, headers: request.headers, ...body, caller });
      // Every Outlook resource answers in the id format asked for (the handler picks the ids), and says so.
      const headers = { ...(route.mailbox !== undefined && prefersImmutableIds(request.headers) ? IMMUTABLE_ID_APPLIED : {}), ...result.headers };
      if (result.text !== undefined) return { status: result.status, headers: { ...graphResponse(result.status, undefined, ids).headers, ...headers }, body: result.text };
      return graphResponse(result.status, result.body, ids, headers);
    } catch (error) {
      if (error instanceof GraphError) return errorResponse(error, ids, error.status === 401 ? challenge(context) : {});
      throw error;
    } finally {
      release?.();
    }
  };
}
