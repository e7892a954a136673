import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { InvalidTransitionError } from '../domain/connection.js';
import { ConcurrencyError, InvalidContinuationTokenError } from '../store/table-repository.js';
import type { Logger } from '../telemetry/logger.js';
import type { Authenticate } from './auth/authenticate.js';
import { ProblemError } from './problem.js';
import type { ApiRoute, RawRequest } from './route.js';

/**
 * Runs an API route as an Azure Functions HTTP handler: reads and checks the body, authenticates,
 * executes, and writes JSON or problem+json. Unexpected failures become a 500 that names the
 * request id and nothing else; their details go to the log.
 */

export const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiRuntime<S> {
  services: S;
  authenticate: Authenticate;
  logFor: (context: InvocationContext) => Logger;
}

export function apiHttpHandler<S>(route: ApiRoute<S>, runtime: () => Promise<ApiRuntime<S>>) {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const requestId = context.invocationId;
    const instance = `urn:uuid:${requestId}`;
    let logger: Logger | undefined;
    try {
      const { services, authenticate, logFor } = await runtime();
      logger = logFor(context);
      // Who is calling comes first: a caller without valid credentials learns nothing about bodies.
      const principal = route.authenticated ? await authenticate(request.headers) : undefined;
      if (principal) logger = logger.child({ caller: principal.credential });
      const declaredHeaders = route.headers ? Object.keys((route.headers as { shape?: Record<string, unknown> }).shape ?? {}) : [];
      const raw: RawRequest = {
        params: { ...request.params },
        query: Object.fromEntries([...new Set(request.query.keys())].map((key) => [key, request.query.get(key) ?? ''])),
        headers: Object.fromEntries(declaredHeaders.flatMap((name) => {
          const value = request.headers.get(name);
          return value === null ? [] : [[name, value]];
        })),
        body: undefined,
      };
      if (route.upload) raw.bytes = await readBody(request, route.upload.maxBytes);
      else raw.body = await readJsonBody(request, route.maxBodyBytes ?? MAX_BODY_BYTES);
      const result = await route.execute(raw, principal, services);
      if (result.bytes) return { status: result.status, headers: { 'x-request-id': requestId, ...result.headers }, body: result.bytes };
      return {
        status: result.status,
        headers: {
          'x-request-id': requestId,
          ...(result.body !== undefined && { 'content-type': 'application/json' }),
          ...result.headers,
        },
        ...(result.body !== undefined && { body: JSON.stringify(result.body) }),
      };
    } catch (error) {
      const problem = toProblem(error, requestId);
      if (problem.status >= 500) logger?.error(`${route.name} failed`, { error, requestId });
      const response = problem.toResponse(instance);
      return { ...response, headers: { ...(response.headers as Record<string, string>), 'x-request-id': requestId } };
    }
  };
}

async function readBody(request: HttpRequest, limit: number): Promise<Buffer> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > limit) throw tooLarge(limit);
  return bytes;
}

async function readJsonBody(request: HttpRequest, limit: number): Promise<unknown> {
  const bytes = await readBody(request, limit);
  if (bytes.length === 0) return undefined;
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/([a-z.+-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new ProblemError('unsupported-media-type', 'Send the body as JSON with "Content-Type: application/json".');
  }
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new ProblemError('validation-error', 'The body is not valid JSON.', { errors: [{ pointer: '/body', detail: 'not valid JSON' }] });
  }
}

function tooLarge(limit: number): ProblemError {
  return new ProblemError('payload-too-large', `The body is larger than ${String(limit)} bytes.`);
}

function toProblem(error: unknown, requestId: string): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof InvalidTransitionError) return new ProblemError('conflict', error.message);
  if (error instanceof InvalidContinuationTokenError) {
    return new ProblemError('validation-error', 'The cursor is not one this list handed out; start again without it.', {
      errors: [{ pointer: '/query/cursor', detail: 'unknown cursor' }],
    });
  }
  if (error instanceof ConcurrencyError) {
    return new ProblemError('conflict', 'The resource was changed by another request at the same time; repeat the request.');
  }
  if (isStorageOutage(error)) {
    return new ProblemError('service-unavailable', `Storage is not reachable right now; retry later (request ${requestId}).`, {
      headers: { 'retry-after': '5' },
    });
  }
  return new ProblemError('internal-error', `Something went wrong on our side; mention request ${requestId} when you report it.`);
}

function isStorageOutage(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { statusCode, code } = error as Error & { statusCode?: unknown; code?: unknown };
  return (typeof statusCode === 'number' && statusCode >= 500) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND'].includes(String(code));
}
