import { z } from 'zod';
import { ProblemError } from './problem.js';

/**
 * Paging for list operations: `limit` items at most, and an opaque `cursor` for the next page.
 * The cursor wraps Table Storage's continuation token with the list it belongs to, so a cursor
 * from one list handed to another is refused instead of returning the wrong rows.
 */

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(100).default(50).meta({ description: 'Items per page, 1-100.' }),
  cursor: z.string().max(4096).optional().meta({ description: 'nextCursor of the previous page.' }),
};

export function pageSchema<T extends z.ZodType>(item: T, id: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z.string().optional().meta({ description: 'Present when there are more items; pass it as cursor.' }),
    })
    .meta({ id });
}

export function encodeCursor(list: string, token: string | undefined): string | undefined {
  return token === undefined ? undefined : Buffer.from(JSON.stringify({ l: list, t: token }), 'utf8').toString('base64url');
}

export function decodeCursor(list: string, cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { l?: unknown; t?: unknown };
    if (parsed.l === list && typeof parsed.t === 'string') return parsed.t;
  } catch {
    // fall through to the problem below
  }
  throw new ProblemError('validation-error', 'The cursor is not one this list handed out; start again without it.', {
    errors: [{ pointer: '/query/cursor', detail: 'unknown cursor' }],
  });
}
