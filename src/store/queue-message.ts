import type { z } from 'zod';

/**
 * A queue message as its queue's schema reads it. A malformed one throws, so the host retries it
 * and then moves it to the poison queue, where ops see it; the error names the fields, not values.
 */
export function parseQueueMessage<T>(queue: string, schema: z.ZodType<T>, message: unknown): T {
  const parsed = schema.safeParse(message);
  if (!parsed.success) throw new Error(`${queue} message is malformed: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  return parsed.data;
}
