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
  /** Response headers worth documenting, by name: their description. */
  headers?: Record<string, string>;
}

export interface ApiResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RawRequest {
  params: Record<string, string>;
  query: Record<string, string>;
  /** Parsed JSON, or undefined when the request had no body. */
  body: unknown;
}

interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType, S> {
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
  responses: ResponseSpec[];
  handle(input: { params: z.output<P>; query: z.output<Q>; body: z.output<B>; principal: Principal | undefined; services: S }): Promise<ApiResult>;
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
  responses: ResponseSpec[];
  execute(request: RawRequest, principal: Principal | undefined, services: S): Promise<ApiResult>;
}

const empty = z.object({});

export function defineRoute<S>() {
  return <P extends z.ZodType = typeof empty, Q extends z.ZodType = typeof empty, B extends z.ZodType = z.ZodUndefined>(
    spec: RouteSpec<P, Q, B, S>,
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
    // Every operation can meet these; documenting them keeps the contract honest. A status the route
    // documents itself (health's 503) keeps the route's description.
    responses: [
      ...spec.responses,
      ...problems(...[...(spec.body ? [413, 415] : []), 500, 503].filter((status) => !spec.responses.some((r) => r.status === status))),
    ],
    async execute(request, principal, services) {
      // Scope first: a customer outside the caller's scope is "not found", whatever else is wrong.
      const customerId = request.params.customerId;
      if (spec.authenticated && customerId !== undefined && (!principal || !inScope(principal.customerScope, customerId))) {
        throw notFound('The customer');
      }
      const params = parse('params', spec.params ?? empty, request.params) as z.output<P>;
      const query = parse('query', spec.query ?? empty, request.query) as z.output<Q>;
      // A body schema that accepts undefined makes the body optional.
      if (spec.body && request.body === undefined && !spec.body.safeParse(undefined).success) {
        throw new ProblemError('validation-error', 'This operation needs a JSON body.', { errors: [{ pointer: '/body', detail: 'missing' }] });
      }
      if (!spec.body && request.body !== undefined) {
        throw new ProblemError('validation-error', 'This operation takes no body.', { errors: [{ pointer: '/body', detail: 'not expected' }] });
      }
      const body = (spec.body ? parse('body', spec.body, request.body) : undefined) as z.output<B>;
      return spec.handle({ params, query, body, principal, services });
    },
  });
}

function parse(part: 'params' | 'query' | 'body', schema: z.ZodType, value: unknown): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // An id that cannot exist is simply not found; the caller learns nothing about others' ids.
  if (part === 'params') throw notFound('The resource');
  throw new ProblemError('validation-error', `The request ${part === 'body' ? 'body' : 'query string'} is not valid; see "errors".`, {
    errors: fieldErrors(part, result.error.issues),
  });
}
