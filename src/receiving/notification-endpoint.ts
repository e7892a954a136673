import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { z } from 'zod';
import { notificationBatchSchema, type NotificationBatch } from './graph-notifications.js';
import { hashClientState } from './graph-subscriptions.js';

/**
 * The URLs Graph posts to (microsoft.md §5.5). The validation handshake is answered here, with
 * the token as plain text, decoded, within Graph's 10 seconds; a notification is only put on the
 * graph-notification queue, so Graph gets its 202 well within 3 seconds. Checking the clientState
 * and fetching messages happen off the request. A 5xx makes Graph deliver again later.
 */

/** Graph batches notifications; a few hundred fit in far less. */
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_VALIDATION_TOKEN_LENGTH = 4096;
/** A notification is under 1 KB; 40 of them leave room in a 64 KB queue message (base64 included). */
const NOTIFICATIONS_PER_MESSAGE = 40;

/** What Graph posts, as far as the endpoint checks it; the queue's handler checks the rest. */
const receivedSchema = z.array(z.looseObject({ subscriptionId: z.string().min(1).max(200), clientState: z.string().max(256).optional() })).max(1000);

export type EnqueueNotifications = (batch: NotificationBatch) => Promise<void>;

export async function answerGraph(request: HttpRequest, kind: NotificationBatch['kind'], enqueue: () => Promise<EnqueueNotifications>): Promise<HttpResponseInit> {
  const validationToken = request.query.get('validationToken');
  if (validationToken !== null) {
    if (validationToken.length > MAX_VALIDATION_TOKEN_LENGTH) return { status: 400, body: 'validationToken is too long' };
    return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }, body: validationToken };
  }
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY_BYTES) return { status: 413 };
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_BODY_BYTES) return { status: 413 };
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { status: 400, body: 'not JSON' };
  }
  const value = (body as { value?: unknown } | null)?.value;
  const received = receivedSchema.safeParse(value);
  if (!received.success) return { status: 400, body: 'not a Graph notification collection' };
  // The clientState is a secret: only its hash is queued. Chunks keep each queue message well under 64 KB.
  const hashed = notificationBatchSchema.safeParse({
    kind,
    value: received.data.map(({ clientState, ...notification }) => ({ ...notification, ...(clientState !== undefined && { clientStateHash: hashClientState(clientState) }) })),
  });
  if (!hashed.success) return { status: 400, body: 'not a Graph notification collection' };
  try {
    const publish = await enqueue();
    for (let start = 0; start < hashed.data.value.length; start += NOTIFICATIONS_PER_MESSAGE) {
      await publish({ kind, value: hashed.data.value.slice(start, start + NOTIFICATIONS_PER_MESSAGE) });
    }
  } catch {
    // Graph delivers again after a failure: nothing is lost by saying so.
    return { status: 503, headers: { 'retry-after': '5' } };
  }
  return { status: 202 };
}
