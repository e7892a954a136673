import type { HttpResponseInit } from '@azure/functions';
import { z } from 'zod';

/**
 * Errors as RFC 9457 problem details (application/problem+json). Every problem the API returns is
 * one of the types below, each documented in README; `detail` says what happened and what to do,
 * and never repeats a credential or anything else the caller sent that could be secret.
 */

export const PROBLEM_TYPES = {
  'validation-error': { status: 400, title: 'The request is not valid' },
  unauthorized: { status: 401, title: 'Authentication required' },
  'not-found': { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'Conflict' },
  gone: { status: 410, title: 'Gone' },
  'payload-too-large': { status: 413, title: 'Request body too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'internal-error': { status: 500, title: 'Internal error' },
  'service-unavailable': { status: 503, title: 'Service unavailable' },
} as const;
export type ProblemType = keyof typeof PROBLEM_TYPES;

export const problemTypeUri = (type: ProblemType): string => `urn:m365-connector:problem:${type}`;

export interface FieldError {
  /** JSON Pointer into the request: /body/tags/plan, /query/limit, /params/connectionId. */
  pointer: string;
  detail: string;
}

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    instance: z.string().optional(),
    errors: z.array(z.object({ pointer: z.string(), detail: z.string() })).optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details.' });
export type Problem = z.infer<typeof problemSchema>;

export class ProblemError extends Error {
  constructor(
    readonly type: ProblemType,
    readonly detail: string,
    readonly options: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
  }

  get status(): number {
    return PROBLEM_TYPES[this.type].status;
  }

  toResponse(instance?: string): HttpResponseInit {
    const body: Problem = {
      type: problemTypeUri(this.type),
      title: PROBLEM_TYPES[this.type].title,
      status: this.status,
      detail: this.detail,
      ...(instance !== undefined && { instance }),
      ...(this.options.errors && { errors: this.options.errors }),
    };
    return {
      status: this.status,
      headers: { 'content-type': 'application/problem+json', ...this.options.headers },
      body: JSON.stringify(body),
    };
  }
}

/** The one answer for a resource that does not exist and for one the caller may not see. */
export function notFound(what: string): ProblemError {
  return new ProblemError('not-found', `${what} does not exist, or your credentials do not give access to it.`);
}

/** Tags that would not be valid once merged with what is stored or what the token adds. */
export function invalidTags(detail: string, issues: readonly z.core.$ZodIssue[]): ProblemError {
  return new ProblemError('validation-error', detail, {
    errors: fieldErrors('body', issues.map((issue) => ({ ...issue, path: ['tags', ...issue.path] }))),
  });
}

/** Field errors from zod issues, under a part of the request (body, query, params). */
/** At most this many field errors, each this long: a hostile body must not make a huge answer. */
const MAX_FIELD_ERRORS = 20;
const MAX_DETAIL = 300;

export function fieldErrors(part: 'body' | 'query' | 'params' | 'headers', issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.slice(0, MAX_FIELD_ERRORS).map((issue) => ({
    pointer: `/${[part, ...issue.path.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1'))].join('/')}`,
    detail: issue.message.length > MAX_DETAIL ? `${issue.message.slice(0, MAX_DETAIL)}…` : issue.message,
  }));
}
