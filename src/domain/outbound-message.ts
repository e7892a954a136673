import { z } from 'zod';
import { hasLineBreakOrControl, isMailboxAddress, isMessageIdentifier } from './email-address.js';
import { EVENT_TYPES } from './events.js';
import { ID_PATTERN } from './ids.js';
import { tagsSchema } from './tags.js';

/**
 * A message the vendor asks the connector to send: the request as the API takes it, the content
 * as it is kept until it is sent, and the outbox row that follows it from `queued` to `sent` or
 * `failed`. Everything that ends up in a header line is checked here for line breaks, so no field
 * can add a header of its own (header injection).
 */

/** Exchange Online's default maximum message size (admin-configurable up to 150 MB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 35 * 1024 * 1024;
/** Graph's createUploadSession takes attachments up to 150 MB. */
export const MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024;
/** Graph takes at most 4 MB in one request; a body (text plus HTML) this large could never be sent through it. */
export const MAX_GRAPH_BODY_BYTES = 3 * 1024 * 1024;
/** Exchange's recipient limit per message (To, Cc and Bcc together). */
export const MAX_RECIPIENTS = 500;
export const MAX_CUSTOM_HEADERS = 20;

const singleLine = (max: number) =>
  z
    .string()
    .max(max)
    .refine((value) => !hasLineBreakOrControl(value), 'must not contain line breaks or control characters (they would start a header of their own)');

export const addressSchema = z
  .string()
  .max(254)
  .refine((value) => isMailboxAddress(value), 'is not an RFC 5322 address (local@domain)');

/** `"ada@contoso.com"` or `{ "address": "ada@contoso.com", "name": "Ada Lovelace" }`. */
export const recipientSchema = z
  .union([addressSchema, z.object({ address: addressSchema, name: singleLine(256).optional() }).strict()])
  .transform((value) => (typeof value === 'string' ? { address: value } : value))
  .meta({ id: 'Recipient' });
export type Recipient = { address: string; name?: string };

const messageIdSchema = z.string().refine((value) => isMessageIdentifier(value), 'is not a message identifier like <id@host>');

/**
 * Headers the vendor may set. `X-` headers (Exchange's own `X-MS-Exchange-` ones excluded: Exchange
 * strips or trusts them) and the list and auto-reply headers bulk senders need; everything else a
 * message has (From, To, Message-ID, Date, MIME) the connector writes itself.
 */
const ALLOWED_HEADER = /^(x-(?!ms-exchange-)[a-z0-9-]+|list-id|list-unsubscribe|list-unsubscribe-post|auto-submitted)$/i;
export function isAllowedHeader(name: string): boolean {
  return ALLOWED_HEADER.test(name);
}

// The count first: a record schema would check every one of a million keys before a refine saw them.
const headersSchema = z
  .custom<Record<string, unknown>>(
    (value) => typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length <= MAX_CUSTOM_HEADERS,
    `an object of at most ${String(MAX_CUSTOM_HEADERS)} headers`,
  )
  .pipe(
    z.record(
      z.string().max(76).refine(isAllowedHeader, 'is not a header you may set: use X- headers, List-Id, List-Unsubscribe, List-Unsubscribe-Post or Auto-Submitted'),
      singleLine(998),
    ),
  )
  .refine((headers) => new Set(Object.keys(headers).map((name) => name.toLowerCase())).size === Object.keys(headers).length, 'names a header twice (names ignore case)');

// One character class and a length check: a grouped repetition would make V8's regex engine
// backtrack through tens of megabytes and overflow its stack.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (value: string) => value.length % 4 === 0 && BASE64_CHARS.test(value);

export const attachmentRequestSchema = z
  .object({
    filename: singleLine(255).min(1),
    contentType: z
      .string()
      .max(255)
      .regex(/^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+$/, 'is not a media type like application/pdf')
      .optional()
      .meta({ description: 'application/octet-stream when left out (or the upload\'s type).' }),
    content: z
      .string()
      .refine(isBase64, 'is not base64')
      .optional()
      .meta({ description: 'The file, base64. Or give uploadId instead.' }),
    uploadId: z.string().regex(ID_PATTERN.att).optional().meta({ description: 'A file uploaded with POST …/attachments (for files that are large).' }),
    inline: z.boolean().default(false).meta({ description: 'Shown in the HTML body where it refers to cid:<contentId>.' }),
    contentId: singleLine(255)
      .regex(/^[^<>\s]+$/, 'is a bare content id, without <>')
      .optional(),
  })
  .strict()
  .refine((a) => (a.content === undefined) !== (a.uploadId === undefined), 'needs exactly one of content (base64) and uploadId')
  .refine((a) => !a.inline || a.contentId !== undefined, 'an inline attachment needs a contentId');
export type AttachmentRequest = z.output<typeof attachmentRequestSchema>;

export const messageRequestSchema = z
  .object({
    from: addressSchema.optional().meta({
      description: 'The mailbox to send from: one of the connection\'s mailboxes. Optional when the connection has only one.',
    }),
    to: z.array(recipientSchema).max(MAX_RECIPIENTS).default([]),
    cc: z.array(recipientSchema).max(MAX_RECIPIENTS).default([]),
    bcc: z.array(recipientSchema).max(MAX_RECIPIENTS).default([]),
    replyTo: z.array(recipientSchema).max(10).default([]),
    subject: singleLine(998).default(''),
    text: z.string().optional(),
    html: z.string().optional(),
    headers: headersSchema.default({}),
    inReplyTo: messageIdSchema.optional().meta({ description: 'The Message-ID this message answers, e.g. "<abc@mail.contoso.com>".' }),
    references: z.array(messageIdSchema).max(100).default([]).meta({ description: 'The thread\'s Message-IDs, oldest first.' }),
    attachments: z.array(attachmentRequestSchema).max(250).default([]),
    sendAt: z.iso.datetime({ offset: true }).optional().meta({ description: 'Send no earlier than this (at most 7 days ahead).' }),
    saveToSentItems: z.boolean().default(true).meta({
      description: 'Keep a copy in the mailbox\'s Sent Items (Graph; SMTP submission always keeps one in Exchange Online). The check that prevents a second send after a crash needs it.',
    }),
  })
  .strict()
  .refine((m) => m.to.length + m.cc.length + m.bcc.length > 0, { message: 'needs at least one recipient in to, cc or bcc', path: ['to'] })
  .refine((m) => m.to.length + m.cc.length + m.bcc.length <= MAX_RECIPIENTS, { message: `at most ${MAX_RECIPIENTS} recipients in all`, path: ['to'] })
  .refine((m) => m.text !== undefined || m.html !== undefined, { message: 'needs text, html or both', path: ['text'] })
  .meta({ id: 'NewMessage' });
export type MessageRequest = z.output<typeof messageRequestSchema>;

/** Where a file is kept (Blob storage) while the message waits to be sent. */
export const contentRefSchema = z.object({ container: z.string(), name: z.string(), bytes: z.int().nonnegative() });

export const storedAttachmentSchema = z.object({
  filename: z.string(),
  contentType: z.string(),
  size: z.int().nonnegative(),
  inline: z.boolean(),
  contentId: z.string().optional(),
  ref: contentRefSchema,
});
export type StoredAttachment = z.infer<typeof storedAttachmentSchema>;

/** What is sent, kept in Blob storage with the attachments' bytes in blobs of their own. */
export const messageContentSchema = z.object({
  from: z.object({ address: z.string(), name: z.string().optional() }),
  to: z.array(z.object({ address: z.string(), name: z.string().optional() })),
  cc: z.array(z.object({ address: z.string(), name: z.string().optional() })),
  bcc: z.array(z.object({ address: z.string(), name: z.string().optional() })),
  replyTo: z.array(z.object({ address: z.string(), name: z.string().optional() })),
  subject: z.string(),
  text: z.string().optional(),
  html: z.string().optional(),
  headers: z.record(z.string(), z.string()),
  inReplyTo: z.string().optional(),
  references: z.array(z.string()),
  attachments: z.array(storedAttachmentSchema),
  /** The Message-ID header, made once so that every attempt sends the same message. */
  messageId: z.string(),
  saveToSentItems: z.boolean(),
});
export type MessageContent = z.infer<typeof messageContentSchema>;

export const MESSAGE_STATUSES = ['queued', 'sending', 'sent', 'deferred', 'failed'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/**
 * Why an attempt did not send: `transient` is retried with back-off, `throttled` after the delay
 * Microsoft named, `permanent` fails the message, `connection` waits for the connection to work again.
 */
export const FAILURE_CLASSES = ['transient', 'throttled', 'permanent', 'connection'] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

export const sendErrorSchema = z
  .object({
    class: z.enum(FAILURE_CLASSES),
    code: z.string().meta({ description: 'e.g. "ErrorAccessDenied", "smtp_550_5.1.1", "http_503", "network_error", "needs_reauth".' }),
    message: z.string(),
    nextStep: z.string().optional(),
  })
  .meta({ id: 'SendError' });
export type SendError = z.infer<typeof sendErrorSchema>;

export const ATTEMPT_OUTCOMES = ['in_progress', 'sent', 'already_sent', 'deferred', 'failed', 'unknown'] as const;

export const sendAttemptSchema = z
  .object({
    number: z.int().positive(),
    startedAt: z.iso.datetime(),
    endedAt: z.iso.datetime().optional(),
    transport: z.enum(['graph', 'smtp']),
    outcome: z.enum(ATTEMPT_OUTCOMES).meta({
      description:
        '"unknown": the attempt ended without an answer after the message was handed over; the next attempt first looks for it in Sent Items. ' +
        '"already_sent": it was there, so it was not sent again.',
    }),
    error: sendErrorSchema.optional(),
    retryAfterSeconds: z.int().nonnegative().optional(),
  })
  .meta({ id: 'SendAttempt' });
export type SendAttempt = z.infer<typeof sendAttemptSchema>;

/** At most this many attempts are kept on the row (the count keeps going). */
export const KEPT_ATTEMPTS = 20;

export const outboundMessageSchema = z.object({
  id: z.string().regex(ID_PATTERN.msg),
  customerId: z.string(),
  connectionId: z.string().regex(ID_PATTERN.con),
  mailboxId: z.string().regex(ID_PATTERN.mbx),
  from: z.string(),
  transport: z.enum(['graph', 'smtp']),
  internetMessageId: z.string(),
  status: z.enum(MESSAGE_STATUSES),
  /** Estimated size as sent (MIME, attachments base64-encoded). */
  size: z.int().nonnegative(),
  recipients: z.int().positive(),
  content: contentRefSchema,
  /** SHA-256 of the request, to tell a repeat from a different request under one Idempotency-Key. */
  requestHash: z.string(),
  idempotencyKey: z.string().optional(),
  sendAt: z.iso.datetime().optional(),
  /** After this the message fails instead of being tried again. */
  expiresAt: z.iso.datetime(),
  nextAttemptAt: z.iso.datetime().optional(),
  /** While `sending`: until when the attempt may be running; after that its outcome is unknown. */
  sendingUntil: z.iso.datetime().optional(),
  /** The next attempt must first look in Sent Items: an earlier one may have sent it. */
  verifyBeforeSend: z.boolean().optional(),
  /** The send slot the governor gave this message. */
  reservation: z.object({ id: z.string(), at: z.iso.datetime() }).optional(),
  attemptCount: z.int().nonnegative(),
  attempts: z.array(sendAttemptSchema),
  lastError: sendErrorSchema.optional(),
  sentAt: z.iso.datetime().optional(),
  failedAt: z.iso.datetime().optional(),
  /** The event of the last status change, written with it, so a retry records it under the same id. */
  lastEvent: z
    .object({
      id: z.string().regex(ID_PATTERN.evt),
      type: z.enum(EVENT_TYPES),
      occurredAt: z.iso.datetime(),
      tags: tagsSchema.optional(),
      data: z.record(z.string(), z.unknown()),
    })
    .optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export type OutboundMessage = z.infer<typeof outboundMessageSchema>;

/** What the vendor sees of a message. */
export const messageViewSchema = outboundMessageSchema
  .omit({ content: true, requestHash: true, reservation: true, lastEvent: true, sendingUntil: true, verifyBeforeSend: true, idempotencyKey: true })
  .meta({ id: 'Message' });
export type MessageView = z.infer<typeof messageViewSchema>;

export function messageView(message: OutboundMessage): MessageView {
  const { content: _c, requestHash: _r, reservation: _s, lastEvent: _e, sendingUntil: _u, verifyBeforeSend: _v, idempotencyKey: _k, ...view } = message;
  return view;
}

/**
 * The message's size as Exchange counts it, estimated before the MIME exists: attachments grow by
 * base64's 4/3 and its line breaks, bodies by quoted-printable's escapes in the worst common case,
 * headers by a fixed allowance per recipient.
 */
export function estimatedMimeSize(parts: { bodyBytes: number; attachmentBytes: readonly number[]; recipients: number; headerBytes: number }): number {
  const base64 = (bytes: number) => Math.ceil(bytes / 3) * 4 * (78 / 76) + 200;
  return Math.ceil(
    2048 + parts.headerBytes + parts.recipients * 100 + parts.bodyBytes * 1.1 + parts.attachmentBytes.reduce((sum, bytes) => sum + base64(bytes), 0),
  );
}
