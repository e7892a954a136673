import type { IncomingHttpHeaders, IncomingMessage, RequestListener } from 'node:http';

/**
 * The sandbox's small HTTP layer: routes are regular expressions over the path (Entra's paths are
 * case-insensitive), handlers take a parsed request and return a response value, so flows read as
 * functions and errors are turned into Entra's shapes by the endpoint that knows which shape
 * applies (JSON for the token endpoint, a page or a redirect for the browser).
 */

export interface SandboxRequest {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  /** The form body of a POST (application/x-www-form-urlencoded), else empty. */
  form: URLSearchParams;
  /** The JSON body of a control API call, else undefined. */
  json: unknown;
  /** Path groups of the matched route. */
  params: string[];
  /** The body, unread, for a route that reads it itself (`readsOwnBody`); else undefined. */
  body?: RequestBody;
}

/** A request body a handler reads itself: after it has decided whether to take the request at all. */
export interface RequestBody {
  /** Its bytes, or undefined when there are more than `limitBytes` (the rest is read and dropped, so the connection stays usable). */
  read(limitBytes: number): Promise<Buffer | undefined>;
}

export interface SandboxResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type Handler = (request: SandboxRequest) => Promise<SandboxResponse> | SandboxResponse;

export interface Route {
  method: string;
  path: RegExp;
  handler: Handler;
  /**
   * The handler reads the body (`request.body`) instead of this layer: the sandbox Graph counts a
   * request against its limits while the body is still arriving, and refuses one over its size.
   */
  readsOwnBody?: boolean;
}

const NO_STORE = { 'Cache-Control': 'no-store, no-cache', Pragma: 'no-cache' };

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): SandboxResponse {
  return { status, headers: { 'Content-Type': 'application/json; charset=utf-8', ...NO_STORE, ...headers }, body: JSON.stringify(body) };
}

export function htmlResponse(status: number, body: string): SandboxResponse {
  return { status, headers: { 'Content-Type': 'text/html; charset=utf-8', ...NO_STORE }, body };
}

export function redirectResponse(location: string): SandboxResponse {
  return { status: 302, headers: { Location: location, ...NO_STORE }, body: '' };
}

const BODY_LIMIT_BYTES = 1024 * 1024;

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT_BYTES) throw new Error('request body over 1 MiB');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function unreadBody(request: IncomingMessage): RequestBody {
  let reading: Promise<Buffer | undefined> | undefined;
  return {
    read(limitBytes) {
      reading ??= new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        request.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= limitBytes) chunks.push(chunk);
        });
        request.on('end', () => {
          resolve(size > limitBytes ? undefined : Buffer.concat(chunks));
        });
        request.on('error', reject);
      });
      return reading;
    },
  };
}

/**
 * A request listener over `routes`. An exception that escapes a handler is a bug in the sandbox:
 * it is reported through `onError` and answered with a bare 500.
 */
export function routeRequests(routes: readonly Route[], onError: (error: unknown, request: IncomingMessage) => void): RequestListener {
  return (incoming, outgoing) => {
    void (async () => {
      const url = new URL(incoming.url ?? '/', 'http://sandbox.invalid');
      const method = (incoming.method ?? 'GET').toUpperCase();
      let response: SandboxResponse = jsonResponse(404, { error: 'not_found', error_description: `No sandbox endpoint at ${method} ${url.pathname}.` });
      for (const route of routes) {
        const match = route.path.exec(url.pathname);
        if (!match || route.method !== method) continue;
        const params = match.slice(1).map((group) => decodeURIComponent(group));
        if (route.readsOwnBody) {
          response = await route.handler({ method, url, headers: incoming.headers, form: new URLSearchParams(), json: undefined, params, body: unreadBody(incoming) });
          break;
        }
        const raw = method === 'GET' ? '' : await readBody(incoming);
        const type = (incoming.headers['content-type'] ?? '').toLowerCase();
        let json: unknown;
        if (type.startsWith('application/json') && raw !== '') {
          try {
            json = JSON.parse(raw);
          } catch {
            response = jsonResponse(400, { error: 'invalid_request', message: 'The request body is not valid JSON.' });
            break;
          }
        }
        response = await route.handler({
          method,
          url,
          headers: incoming.headers,
          form: type.startsWith('application/x-www-form-urlencoded') ? new URLSearchParams(raw) : new URLSearchParams(),
          json,
          params,
        });
        break;
      }
      outgoing.writeHead(response.status, response.headers).end(response.body);
    })().catch((error: unknown) => {
      onError(error, incoming);
      if (!outgoing.headersSent) outgoing.writeHead(500);
      outgoing.end();
    });
  };
}
