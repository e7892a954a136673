import { z } from 'zod';
import { inScope } from '../domain/access.js';
import type { Principal } from './auth/principal.js';
import { fieldErrors, notFound, ProblemError } from './problem.js';
import { problems } from './responses.js';

/**
 * One API operation, declared once: its Functions route, its request and response schemas (which
 * also make the OpenAPI document) and its handler. `defineRoute` keeps the handler's input typed
 * from the schemas and does the checks every route shares: validation, and the customer scope of
 * the caller's credentials, where a customer the caller may not see is reported as not found.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ResponseSpec {
  status: number;
  description: string;
  schema?: z.ZodType;
  /** A response that is a file rather than JSON: its media type. */
  file?: string;
  /** Response headers worth documenting, by name: their description. */
  headers?: Record<string, string>;
}

export interface ApiResult {
  status: number;
  body?: unknown;
  /** A file as the answer, instead of JSON; its Content-Type goes in `headers`. */
  bytes?: Buffer;
  headers?: Record<string, string>;
}

export interface RawRequest {
  params: Record<string, string>;
  query: Record<string, string>;
  /** Request headers, names in lower case (only those a route declares are read). */
  headers: Record<string, string>;
  /** Parsed JSON, or undefined when the request had no body. */
  body: unknown;
  /** The body as it came, for routes that take a file (`upload`). */
  bytes?: Buffer;
}

/** A route that takes a file as its body rather than JSON. */
export interface UploadSpec {
  maxBytes: number;
  description: string;
}

interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType, H extends z.ZodType, S> {
  /** The Functions function name; also the OpenAPI operationId. */
  name: string;
  method: HttpMethod;
  /** Route template under the host's /api prefix, e.g. "v1/customers/{customerId}". */
  path: string;
  tag: string;
  summary: string;
  description?: string;
  /** false only for public documents (the OpenAPI document itself). */
  authenticated: boolean;
  params?: P;
  query?: Q;
  body?: B;
  /** Request headers the route reads (lower-case names), validated like the query. */
  headers?: H;
  /** The largest JSON body the route takes; MAX_BODY_BYTES (1 MB) when left out. */
  maxBodyBytes?: number;
  upload?: UploadSpec;
  responses: ResponseSpec[];
  handle(input: {
    params: z.output<P>;
    query: z.output<Q>;
    body: z.output<B>;
    headers: z.output<H>;
    bytes: Buffer | undefined;
    principal: Principal | undefined;
    services: S;
  }): Promise<ApiResult>;
}

export interface ApiRoute<S> {
  name: string;
  method: HttpMethod;
  path: string;
  tag: string;
  summary: string;
  description: string | undefined;
  authenticated: boolean;
  params: z.ZodType | undefined;
  query: z.ZodType | undefined;
  body: z.ZodType | undefined;
  headers: z.ZodType | undefined;
  maxBodyBytes: number | undefined;
  upload: UploadSpec | undefined;
  responses: ResponseSpec[];
  execute(request: RawRequest, principal: Principal | undefined, services: S): Promise<ApiResult>;
}

const empty = z.object({});

export function defineRoute<S>() {
  return <P extends z.ZodType = typeof empty, Q extends z.ZodType = typeof empty, B extends z.ZodType = z.ZodUndefined, H extends z.ZodType = typeof empty>(
    spec: RouteSpec<P, Q, B, H, S>,
  ): ApiRoute<S> => ({
    name: spec.name,
    method: spec.method,
    path: spec.path,
    tag: spec.tag,
    summary: spec.summary,
    description: spec.description,
    authenticated: spec.authenticated,
    params: spec.params,
    query: spec.query,
    body: spec.body,
    headers: spec.headers,
    maxBodyBytes: spec.maxBodyBytes,
    upload: spec.upload,
    // Every operation can meet these; documenting them keeps the contract honest. A status the route
    // documents itself (health's 503) keeps the route's description.
    responses: [
      ...spec.responses,
      ...problems(...[...(spec.body || spec.upload ? [413, 415] : []), 500, 503].filter((status) => !spec.responses.some((r) => r.status === status))),
    ],
    async execute(request, principal, services) {
      // Scope first: a customer outside the caller's scope is "not found", whatever else is wrong.
      const customerId = request.params.customerId;
      if (spec.authenticated && customerId !== undefined && (!principal || !inScope(principal.customerScope, customerId))) {
        throw notFound('The customer');
      }
      const params = parse('params', spec.params ?? empty, request.params) as z.output<P>;
      const query = parse('query', spec.query ?? empty, request.query) as z.output<Q>;
      const headers = parse('headers', spec.headers ?? empty, request.headers) as z.output<H>;
      // A body schema that accepts undefined makes the body optional.
      if (spec.body && request.body === undefined && !spec.body.safeParse(undefined).success) {
        throw new ProblemError('validation-error', 'This operation needs a JSON body.', { errors: [{ pointer: '/body', detail: 'missing' }] });
      }
      if (!spec.body && !spec.upload && request.body !== undefined) {
        throw new ProblemError('validation-error', 'This operation takes no body.', { errors: [{ pointer: '/body', detail: 'not expected' }] });
      }
      const body = (spec.body ? parse('body', spec.body, request.body) : undefined) as z.output<B>;
      return spec.handle({ params, query, body, headers, bytes: request.bytes, principal, services });
    },
  });
}

function parse(part: 'params' | 'query' | 'body' | 'headers', schema: z.ZodType, value: unknown): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // An id that cannot exist is simply not found; the caller learns nothing about others' ids.
  if (part === 'params') throw notFound('The resource');
  const what = { body: 'request body is', query: 'request query string is', headers: 'request headers are' }[part];
  throw new ProblemError('validation-error', `The ${what} not valid; see "errors".`, {
    errors: fieldErrors(part, result.error.issues),
  });
}
