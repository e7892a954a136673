import { problemSchema } from './problem.js';
import type { ResponseSpec } from './route.js';

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is not valid (problem+json with field errors).',
  401: 'Missing, invalid or expired credentials.',
  404: 'No such resource, or not one these credentials can see.',
  409: 'The request conflicts with the current state.',
  410: 'It existed, but is no longer kept.',
  413: 'The request body is too large.',
  415: 'The request body is not JSON.',
  500: 'Something went wrong on our side; the problem names the request id.',
  503: 'Storage is not reachable right now; retry after the Retry-After delay.',
};

/** The problem+json responses an operation can give, for its OpenAPI description. */
export function problems(...statuses: number[]): ResponseSpec[] {
  return statuses.map((status) => ({ status, description: PROBLEM_DESCRIPTIONS[status] ?? 'Problem.', schema: problemSchema }));
}
