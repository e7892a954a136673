import { z } from 'zod';
import { customerIdSchema } from '../../domain/customer.js';
import { ID_PATTERN } from '../../domain/ids.js';
import { messageRequestSchema, messageView, messageViewSchema } from '../../domain/outbound-message.js';
import { receivedMessageView, receivedMessageViewSchema, type InboundMessage } from '../../domain/inbound-message.js';
import { MessageRejectedError } from '../../sending/submit-message.js';
import { keys } from '../../store/repositories.js';
import { notFound, ProblemError } from '../problem.js';
import { problems } from '../responses.js';
import { defineRoute } from '../route.js';
import type { ApiServices } from '../services.js';

const route = defineRoute<ApiServices>();
const connectionParams = z.object({ customerId: customerIdSchema, connectionId: z.string().regex(ID_PATTERN.con) });
const receivedParams = connectionParams.extend({ messageId: z.string().regex(ID_PATTERN.rcv) });

/**
 * Inline attachments arrive base64 in the JSON: Exchange's default 35 MB message is about 47 MB
 * of base64, so the JSON body may be that large. Larger files go up on their own (uploads).
 */
export const MAX_MESSAGE_BODY_BYTES = 64 * 1024 * 1024;
/** The Functions host's default request limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT). */
export const MAX_UPLOAD_BYTES = 100 * 1024 * 1024;

const uploadSchema = z
  .object({
    id: z.string().regex(ID_PATTERN.att).meta({ description: 'Use it as "uploadId" in a message\'s attachments.' }),
    size: z.int().nonnegative(),
    contentType: z.string(),
    expiresAt: z.iso.datetime(),
  })
  .meta({ id: 'Upload' });

const idempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
    .optional()
    .meta({
      description:
        'Any unique string (a UUID). The same key with the same request returns the same message and sends it once; with a different request it is refused with 409. Keys are kept per connection.',
    }),
});

function rejected(error: unknown): unknown {
  if (!(error instanceof MessageRejectedError)) return error;
  const errors = error.pointer === undefined ? undefined : [{ pointer: error.pointer, detail: error.message }];
  const type = error.reason === 'too_large' ? 'payload-too-large' : error.reason === 'invalid' ? 'validation-error' : 'conflict';
  return new ProblemError(type, error.message, errors ? { errors } : {});
}

export const messageRoutes = [
  route({
    name: 'messages-send',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/messages',
    tag: 'Messages',
    summary: 'Send a message from one of the connection\'s mailboxes',
    description:
      'The message is checked, kept, and queued; 202 means it will be sent (status "queued"), not that it was. Follow it with GET …/messages/{messageId} ' +
      'or the message.sent / message.deferred / message.failed events. It goes out through the mailbox\'s send transport (Graph or SMTP), ' +
      'within Microsoft\'s per-mailbox limits, and is tried for 24 hours. Sizes: at most 35 MB as sent (MAX_MESSAGE_BYTES; attachments grow by a third in base64), ' +
      '150 MB per attachment, 3 MB of text and HTML for Graph mailboxes. Headers: X- headers, List-Id, List-Unsubscribe, List-Unsubscribe-Post, Auto-Submitted.',
    authenticated: true,
    params: connectionParams,
    headers: idempotencyHeaders,
    body: messageRequestSchema,
    maxBodyBytes: MAX_MESSAGE_BODY_BYTES,
    responses: [
      {
        status: 202,
        description: 'Queued; also the answer to a repeat with the same Idempotency-Key (with Idempotent-Replayed: true).',
        schema: messageViewSchema,
        headers: { location: 'The message\'s URL.', 'idempotent-replayed': '"true" when this repeats an earlier request with the same Idempotency-Key.' },
      },
      ...problems(400, 401, 404, 409, 413),
    ],
    async handle({ params, headers, body, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      try {
        const { message, created } = await services.sending.submit(found.value, body, headers['idempotency-key']);
        return {
          status: 202,
          body: messageView(message),
          headers: {
            location: `/api/v1/customers/${params.customerId}/connections/${params.connectionId}/messages/${message.id}`,
            ...(!created && { 'idempotent-replayed': 'true' }),
          },
        };
      } catch (error) {
        throw rejected(error);
      }
    },
  }),
  route({
    name: 'messages-get',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}/messages/{messageId}',
    tag: 'Messages',
    summary: 'Get a message: one sent (msg_…) with its status and attempts, or one received (rcv_…)',
    description:
      'Sent messages, status: queued → sending → sent (Microsoft accepted it) | deferred (it failed for now; nextAttemptAt says when it is tried again) | failed (lastError says why). ' +
      'Each attempt lists its outcome and error. A deferred message goes back to sending on its next attempt. ' +
      'Received messages: what the message.received event said of it; the whole message is at …/raw until rawExpiresAt.',
    authenticated: true,
    params: connectionParams.extend({ messageId: z.union([z.string().regex(ID_PATTERN.msg), z.string().regex(ID_PATTERN.rcv)]) }),
    responses: [{ status: 200, description: 'The message.', schema: z.union([messageViewSchema, receivedMessageViewSchema]) }, ...problems(401, 404)],
    async handle({ params, services }) {
      if (ID_PATTERN.rcv.test(params.messageId)) {
        return { status: 200, body: receivedMessageView(await receivedMessage(services, params)) };
      }
      const found = await services.repositories.outbox.get(keys.outboundMessage(params.customerId, params.messageId));
      if (found?.value.connectionId !== params.connectionId) throw notFound('The message');
      return { status: 200, body: messageView(found.value) };
    },
  }),
  route({
    name: 'messages-raw',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}/messages/{messageId}/raw',
    tag: 'Messages',
    summary: 'Download a received message as it arrived (message/rfc822)',
    description: 'The whole MIME message, kept for RECEIVE_RETENTION (7 days by default) after it arrived; 410 after that.',
    authenticated: true,
    params: receivedParams,
    responses: [{ status: 200, description: 'The message.', file: 'message/rfc822' }, ...problems(401, 404, 410)],
    async handle({ params, services }) {
      const message = await receivedMessage(services, params);
      const raw = await receivedContent(services, message);
      return { status: 200, bytes: raw, headers: { ...DOWNLOAD_HEADERS, 'content-type': 'message/rfc822', 'content-disposition': `attachment; filename="${message.id}.eml"` } };
    },
  }),
  route({
    name: 'messages-attachment',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}/messages/{messageId}/attachments/{index}',
    tag: 'Messages',
    summary: 'Download one attachment of a received message',
    description: 'By its index in the event\'s attachments list, with its own content type and file name. Available as long as the message is (…/raw).',
    authenticated: true,
    params: receivedParams.extend({ index: z.coerce.number().int().min(0).max(9999) }),
    responses: [{ status: 200, description: 'The attachment.', file: '*/*' }, ...problems(401, 404, 410)],
    async handle({ params, services }) {
      const message = await receivedMessage(services, params);
      if (params.index >= message.attachments.length) throw notFound('The attachment');
      // Loaded on first use, as in ingest-message.ts: mailparser weighs on every instance's start.
      const { simpleParser } = await import('mailparser');
      const parsed = await simpleParser(await receivedContent(services, message), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
      const attachment = parsed.attachments[params.index];
      if (!attachment) throw notFound('The attachment');
      return {
        status: 200,
        bytes: attachment.content,
        headers: { ...DOWNLOAD_HEADERS, 'content-type': mediaType(attachment.contentType), 'content-disposition': contentDisposition(attachment.filename ?? `attachment-${String(params.index)}`) },
      };
    },
  }),
  route({
    name: 'attachments-upload',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/attachments',
    tag: 'Messages',
    summary: 'Upload a file to attach to messages of this connection',
    description:
      'The body is the file itself, with its Content-Type. Refer to it as { "uploadId": …, "filename": … } in a message\'s attachments within 24 hours; ' +
      'it can be attached to several messages. For files too large to send base64 in the message\'s JSON.',
    authenticated: true,
    params: connectionParams,
    upload: { maxBytes: MAX_UPLOAD_BYTES, description: 'The file\'s bytes; Content-Type names its type (application/octet-stream when left out).' },
    headers: z.object({ 'content-type': z.string().max(255).optional() }),
    responses: [{ status: 201, description: 'Kept for 24 hours.', schema: uploadSchema }, ...problems(400, 401, 404, 409)],
    async handle({ params, headers, bytes, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      if (found.value.state === 'disconnected') throw new ProblemError('conflict', 'The connection is disconnected.');
      if (!bytes || bytes.length === 0) throw new ProblemError('validation-error', 'The body is empty: send the file\'s bytes.', { errors: [{ pointer: '/body', detail: 'empty' }] });
      const contentType = mediaType(headers['content-type']);
      return { status: 201, body: await services.sending.upload(found.value, bytes, contentType) };
    },
  }),
];

/** Mail is the customer's: it is not cached on the way, and a browser never renders it in our origin. */
const DOWNLOAD_HEADERS = { 'cache-control': 'private, no-store', 'x-content-type-options': 'nosniff' };

async function receivedMessage(services: ApiServices, params: { customerId: string; connectionId: string; messageId: string }): Promise<InboundMessage> {
  const found = await services.repositories.inbox.get(keys.inboundMessage(params.customerId, params.messageId));
  if (found?.value.connectionId !== params.connectionId) throw notFound('The message');
  return found.value;
}

async function receivedContent(services: ApiServices, message: InboundMessage): Promise<Buffer> {
  // Retention deletes whole days later on; the promise is rawExpiresAt, so that is when it ends.
  const raw = services.now().toISOString() < message.rawExpiresAt ? await services.receivedContent(message) : undefined;
  if (!raw) {
    throw new ProblemError(
      'gone',
      `The message's content was deleted when its retention ended (${message.rawExpiresAt}); its event still describes it. Download messages within RECEIVE_RETENTION of their arrival, or raise it.`,
    );
  }
  return raw;
}

/** RFC 6266: an ASCII fallback name and the UTF-8 one. */
function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  // RFC 5987's attr-char leaves out ' ( ) * and !, which encodeURIComponent keeps.
  const encoded = encodeURIComponent(filename).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** The media type without parameters, or octet-stream for anything that is not one. */
function mediaType(header: string | undefined): string {
  const type = header?.split(';')[0]?.trim().toLowerCase() ?? '';
  return /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : 'application/octet-stream';
}
