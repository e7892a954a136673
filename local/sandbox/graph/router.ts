import type { SandboxContext } from '../identity/context.js';
import type { Handler, SandboxRequest } from '../identity/http.js';
import { MICROSOFT_GRAPH } from '../identity/resources.js';
import type { InjectedFault, RequestFaults } from '../identity/request-faults.js';
import { authenticate, type GraphCaller, type TokenVerifier } from './authentication.js';
import { GraphError, errorResponse, graphErrors, graphResponse, requestIds } from './errors.js';

/**
 * The sandbox Graph's router. Each resource module contributes routes over the path after the
 * version (`/me`, `/users/{id}/mailFolders/{id}` …, matched case-insensitively as Graph does); the
 * router does what every Graph request goes through, in this order: injected faults (an outage
 * hits everything), the version, the route, the bearer token, then the resource's handler. A
 * GraphError thrown anywhere becomes Graph's error JSON.
 */

export const GRAPH_PREFIX = '/graph';
export const GRAPH_VERSION = 'v1.0';

export interface GraphEnvironment {
  context: SandboxContext;
  /** `https://127.0.0.1:<port>/graph/v1.0`: where `@odata.context` URLs point. */
  serviceRoot: string;
}

export interface GraphRequest {
  method: string;
  /** The path after the version, percent-decoded. */
  path: string;
  /** The route's groups. */
  params: string[];
  query: URLSearchParams;
  json: unknown;
  caller: GraphCaller;
}

export interface GraphResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface GraphRoute {
  method: string;
  path: RegExp;
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

export function graphHandler(env: GraphEnvironment, routes: readonly GraphRoute[], faults: GraphFaults, verifier: TokenVerifier): Handler {
  const { context } = env;
  return async (request: SandboxRequest) => {
    const ids = requestIds(request.headers, context.now());
    try {
      const fault = faults.take();
      if (fault) throw faultError(fault);
      const [, version = '', rest = ''] = /^\/?([^/]*)(.*)$/.exec(request.url.pathname.slice(GRAPH_PREFIX.length)) ?? [];
      if (version !== GRAPH_VERSION) throw graphErrors.invalidVersion(version);
      const path = decodedPath(rest);
      const { route, params } = findRoute(routes, request.method, path);
      const caller = await authenticate(request.headers.authorization, verifier);
      const result = await route.handle({ method: request.method, path, params, query: request.url.searchParams, json: request.json, caller });
      return graphResponse(result.status, result.body, ids, result.headers);
    } catch (error) {
      if (error instanceof GraphError) return errorResponse(error, ids, error.status === 401 ? challenge(context) : {});
      throw error;
    }
  };
}
