import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FunctionRegistry, type RegisteredFunction } from './core-api.js';
import type { RpcHttpCookie, RpcHttpData, RpcInvocationResponse } from './core-types.js';
import type { HostLog } from './host-log.js';
import { compareRoutes, compileRoute, type CompiledRoute } from './route-template.js';

/**
 * HTTP triggers: the routes of every httpTrigger function under the host.json route prefix.
 * authLevel is not enforced, exactly as Core Tools does locally (function keys exist only in
 * Azure); request and response conversion follows the host's RPC contract.
 */

/** The Functions host's default request body limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT). */
export const DEFAULT_BODY_LIMIT_BYTES = 100 * 1024 * 1024;

export interface HttpRoute {
  fn: RegisteredFunction;
  triggerName: string;
  methods: Set<string>;
  route: CompiledRoute;
}

export type HttpInvoke = (
  fn: RegisteredFunction,
  triggerName: string,
  http: RpcHttpData,
) => Promise<RpcInvocationResponse>;

export function httpRoutes(functions: Iterable<RegisteredFunction>): HttpRoute[] {
  const routes: HttpRoute[] = [];
  for (const fn of functions) {
    const { name, binding } = FunctionRegistry.triggerOf(fn.metadata);
    if (binding.type?.toLowerCase() !== 'httptrigger') continue;
    const template = typeof binding.route === 'string' && binding.route !== '' ? binding.route : fn.metadata.name;
    const methods = Array.isArray(binding.methods) ? (binding.methods as unknown[]).map((m) => String(m).toUpperCase()) : [];
    routes.push({ fn, triggerName: name, methods: new Set(methods), route: compileRoute(template) });
  }
  return routes.sort((a, b) => compareRoutes(a.route, b.route));
}

export interface HttpListenerOptions {
  routes: HttpRoute[];
  routePrefix: string;
  invoke: HttpInvoke;
  port: number;
  /** FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, as the host reads it. */
  bodyLimitBytes: number;
  log: HostLog;
}

export async function startHttpListener(options: HttpListenerOptions): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const limit = options.bodyLimitBytes;
  const prefix = options.routePrefix === '' ? '' : `/${options.routePrefix}`;

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.log('error', `The local host could not serve HTTP request ${req.method ?? ''} ${req.url ?? ''}`, error);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    const lowerPath = path.toLowerCase();
    if (prefix !== '' && lowerPath !== prefix && !lowerPath.startsWith(`${prefix}/`)) {
      res.writeHead(404).end();
      return;
    }
    const rest = path.slice(prefix.length);
    let matched: { route: HttpRoute; params: Record<string, string> } | undefined;
    for (const route of options.routes) {
      if (route.methods.size > 0 && !route.methods.has(method)) continue;
      const params = route.route.match(rest);
      if (params) {
        matched = { route, params };
        break;
      }
    }
    if (!matched) {
      res.writeHead(404).end();
      return;
    }

    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      res.writeHead(413).end();
      req.resume();
      return;
    }
    const body = await readBody(req, limit);
    if (body === 'too-large') {
      res.writeHead(413).end();
      return;
    }

    const http: RpcHttpData = {
      method,
      url: url.toString(),
      headers: flattenHeaders(req),
      // The host hands query values over as one string per name (repeated names comma-joined).
      query: flattenQuery(url.searchParams),
      params: matched.params,
      ...(body.length > 0 && { body: { bytes: body } }),
    };
    let response: RpcInvocationResponse;
    try {
      response = await options.invoke(matched.route.fn, matched.route.triggerName, http);
    } catch {
      // The invocation's own log line says why; the caller learns nothing more, as from the host.
      res.writeHead(500).end();
      return;
    }
    writeResponse(res, response);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => { resolve(); });
        server.closeIdleConnections();
      }),
  };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => { resolve(tooLarge ? 'too-large' : Buffer.concat(chunks)); });
    req.on('error', reject);
  });
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

function flattenQuery(params: URLSearchParams): Record<string, string> {
  const query: Record<string, string> = {};
  for (const name of new Set(params.keys())) query[name] = params.getAll(name).join(',');
  return query;
}

function writeResponse(res: ServerResponse, response: RpcInvocationResponse): void {
  const http = response.returnValue?.http;
  if (!http) {
    // A handler that returned nothing: the host answers with an empty success.
    res.writeHead(204).end();
    return;
  }
  const status = Number(http.statusCode ?? '200');
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  const cookies = (http.cookies ?? []).map(serializeCookie);
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const body = http.body?.bytes ? Buffer.from(http.body.bytes) : http.body?.string ? Buffer.from(http.body.string) : undefined;
  if (body && status !== 204 && status !== 304) headers['content-length'] = String(body.length);
  res.writeHead(Number.isInteger(status) && status >= 100 && status <= 999 ? status : 500, headers);
  res.end(status === 204 || status === 304 ? undefined : body);
}

function serializeCookie(cookie: RpcHttpCookie): string {
  const parts = [`${cookie.name ?? ''}=${cookie.value ?? ''}`];
  if (cookie.domain?.value) parts.push(`Domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`Path=${cookie.path.value}`);
  const seconds = cookie.expires?.value?.seconds;
  if (typeof seconds === 'number') parts.push(`Expires=${new Date(seconds * 1000).toUTCString()}`);
  if (typeof cookie.maxAge?.value === 'number') parts.push(`Max-Age=${Math.trunc(cookie.maxAge.value)}`);
  if (cookie.secure?.value) parts.push('Secure');
  if (cookie.httpOnly?.value) parts.push('HttpOnly');
  const sameSite = { lax: 'Lax', strict: 'Strict', explicitNone: 'None', none: undefined }[cookie.sameSite ?? 'none'];
  if (sameSite) parts.push(`SameSite=${sameSite}`);
  return parts.join('; ');
}
