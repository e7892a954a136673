import { createHash } from 'node:crypto';
import type { Connection } from '../domain/connection.js';
import { idTime, newId } from '../domain/ids.js';
import type { Mailbox } from '../domain/mailbox.js';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  estimatedMimeSize,
  MAX_ATTACHMENT_BYTES,
  MAX_GRAPH_BODY_BYTES,
  type MessageContent,
  type MessageRequest,
  type OutboundMessage,
  type StoredAttachment,
} from '../domain/outbound-message.js';
import { DEFAULT_SEND_RETRY_WINDOW_MS } from '../domain/send-failure.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError } from '../store/table-repository.js';
import { UPLOAD_TTL_MS, type OutboxContent } from './outbox-content.js';

/**
 * The API's side of sending: check what only the connector can check (the mailbox, the sizes, the
 * uploads), keep the content in Blob storage, write the outbox row, and queue the message. The row
 * comes before the queue message, so a queued message always has its row; a request that failed
 * after the row was written is completed by repeating it with the same Idempotency-Key.
 */

export interface SubmitDeps {
  outbox: Repositories['outbox'];
  idempotencyKeys: Repositories['idempotencyKeys'];
  mailboxes(connection: Connection): Promise<Mailbox[]>;
  content: OutboxContent;
  enqueue(job: SendJob, delaySeconds: number): Promise<void>;
  maxMessageBytes?: number;
  retryWindowMs?: number;
  now(): Date;
}

export interface SendJob {
  customerId: string;
  messageId: string;
}

/** Why a message was refused; `pointer` names the field (JSON Pointer into the request). */
export class MessageRejectedError extends Error {
  constructor(
    readonly reason: 'invalid' | 'too_large' | 'conflict' | 'not_connected',
    message: string,
    readonly pointer?: string,
  ) {
    super(message);
    this.name = 'MessageRejectedError';
  }
}

/** The queue's longest delay is 7 days (a later sendAt is refused by the API). */
export const MAX_SEND_DELAY_MS = 7 * 24 * 3_600_000;

export async function submitMessage(
  deps: SubmitDeps,
  connection: Connection,
  request: MessageRequest,
  idempotencyKey?: string,
): Promise<{ message: OutboundMessage; created: boolean }> {
  const now = deps.now();
  if (connection.state === 'disconnected' || connection.state === 'pending') {
    throw new MessageRejectedError(
      'not_connected',
      connection.state === 'pending'
        ? 'The connection is not connected yet: the customer has not completed its consent link.'
        : 'The connection is disconnected; create a new one to send from these mailboxes.',
    );
  }
  const sendAt = request.sendAt === undefined ? undefined : new Date(request.sendAt);
  if (sendAt && sendAt.getTime() - now.getTime() > MAX_SEND_DELAY_MS) {
    throw new MessageRejectedError('invalid', 'sendAt is more than 7 days ahead.', '/body/sendAt');
  }
  const mailbox = await sendingMailbox(deps, connection, request.from);
  const requestHash = hashRequest(request, mailbox.address);

  let messageId = newId('msg', now.getTime());
  let claimedKey: ReturnType<typeof keys.idempotencyKey> | undefined;
  if (idempotencyKey !== undefined) {
    const key = keys.idempotencyKey(connection.customerId, connection.id, sha256(idempotencyKey));
    try {
      await deps.idempotencyKeys.create(key, { messageId, requestHash, createdAt: now.toISOString() });
      claimedKey = key;
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      const earlier = (await deps.idempotencyKeys.get(key))?.value;
      if (!earlier) throw error;
      if (earlier.requestHash !== requestHash) {
        throw new MessageRejectedError('conflict', 'This Idempotency-Key was used for a different request; use a new key for a new message.');
      }
      messageId = earlier.messageId;
      const existing = (await deps.outbox.get(keys.outboundMessage(connection.customerId, messageId)))?.value;
      if (existing) {
        // The first request may have stopped between the row and the queue; a second queue message is harmless.
        if (existing.status === 'queued' && existing.attemptCount === 0) await deps.enqueue(jobOf(existing), delaySeconds(existing, now));
        return { message: existing, created: false };
      }
    }
  }

  try {
    return await createMessage(deps, connection, mailbox, request, { messageId, requestHash, now, ...(idempotencyKey !== undefined && { idempotencyKey }) });
  } catch (error) {
    // A refused request did not use its key: the corrected request may come with the same one.
    if (claimedKey && error instanceof MessageRejectedError) await deps.idempotencyKeys.delete(claimedKey);
    throw error;
  }
}

async function createMessage(
  deps: SubmitDeps,
  connection: Connection,
  mailbox: Mailbox,
  request: MessageRequest,
  { messageId, requestHash, idempotencyKey, now }: { messageId: string; requestHash: string; idempotencyKey?: string; now: Date },
): Promise<{ message: OutboundMessage; created: boolean }> {
  const sendAt = request.sendAt === undefined ? undefined : new Date(request.sendAt);
  const attachments = await storeAttachments(deps, connection, messageId, request, now);
  const bodyBytes = Buffer.byteLength(request.text ?? '') + Buffer.byteLength(request.html ?? '');
  if (mailbox.sendTransport === 'graph' && bodyBytes > MAX_GRAPH_BODY_BYTES) {
    throw new MessageRejectedError('too_large', 'The text and HTML bodies together are over 3 MB, more than Microsoft Graph takes in one request.', '/body/html');
  }
  const recipients = request.to.length + request.cc.length + request.bcc.length;
  const size = estimatedMimeSize({
    bodyBytes,
    attachmentBytes: attachments.map((a) => a.size),
    recipients,
    headerBytes: Object.entries(request.headers).reduce((sum, [name, value]) => sum + name.length + value.length + 4, 0) + request.subject.length,
  });
  const maxMessageBytes = deps.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (size > maxMessageBytes) {
    throw new MessageRejectedError(
      'too_large',
      `The message would be about ${mb(size)} as sent (attachments grow by a third in base64), over the ${mb(maxMessageBytes)} the mailbox may send.`,
      '/body/attachments',
    );
  }

  const content: MessageContent = {
    from: { address: mailbox.address, ...(mailbox.displayName !== undefined && { name: mailbox.displayName }) },
    to: request.to,
    cc: request.cc,
    bcc: request.bcc,
    replyTo: request.replyTo,
    subject: request.subject,
    ...(request.text !== undefined && { text: request.text }),
    ...(request.html !== undefined && { html: request.html }),
    headers: request.headers,
    ...(request.inReplyTo !== undefined && { inReplyTo: request.inReplyTo }),
    references: request.references,
    attachments,
    messageId: internetMessageId(messageId, mailbox.address),
    saveToSentItems: request.saveToSentItems,
  };
  const contentRef = await deps.content.putContent(connection.customerId, messageId, content);
  const start = sendAt && sendAt > now ? sendAt : now;
  const message: OutboundMessage = {
    id: messageId,
    customerId: connection.customerId,
    connectionId: connection.id,
    mailboxId: mailbox.id,
    from: mailbox.address,
    transport: mailbox.sendTransport,
    internetMessageId: content.messageId,
    status: 'queued',
    size,
    recipients,
    content: contentRef,
    requestHash,
    ...(idempotencyKey !== undefined && { idempotencyKey: sha256(idempotencyKey) }),
    ...(sendAt && { sendAt: sendAt.toISOString() }),
    expiresAt: new Date(start.getTime() + (deps.retryWindowMs ?? DEFAULT_SEND_RETRY_WINDOW_MS)).toISOString(),
    attemptCount: 0,
    attempts: [],
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  try {
    await deps.outbox.create(keys.outboundMessage(connection.customerId, messageId), message);
  } catch (error) {
    // The same key, sent twice at once: the other request wrote the row.
    const existing = error instanceof AlreadyExistsError ? (await deps.outbox.get(keys.outboundMessage(connection.customerId, messageId)))?.value : undefined;
    if (!existing) throw error;
    return { message: existing, created: false };
  }
  await deps.enqueue(jobOf(message), delaySeconds(message, now));
  return { message, created: true };
}

async function sendingMailbox(deps: SubmitDeps, connection: Connection, from: string | undefined): Promise<Mailbox> {
  const mailboxes = await deps.mailboxes(connection);
  if (from === undefined) {
    const [only, ...others] = mailboxes;
    if (!only) throw new MessageRejectedError('invalid', 'The connection has no mailbox yet; add one before sending.', '/body/from');
    if (others.length > 0) throw new MessageRejectedError('invalid', 'The connection has several mailboxes: say which one sends in "from".', '/body/from');
    return only;
  }
  const match = mailboxes.find((mailbox) => mailbox.address.toLowerCase() === from.toLowerCase());
  if (!match) throw new MessageRejectedError('invalid', `${from} is not a mailbox of this connection; add it first (POST …/mailboxes).`, '/body/from');
  return match;
}

async function storeAttachments(deps: SubmitDeps, connection: Connection, messageId: string, request: MessageRequest, now: Date): Promise<StoredAttachment[]> {
  const stored: StoredAttachment[] = [];
  for (const [index, attachment] of request.attachments.entries()) {
    const pointer = `/body/attachments/${String(index)}`;
    const base = { filename: attachment.filename, inline: attachment.inline, ...(attachment.contentId !== undefined && { contentId: attachment.contentId }) };
    if (attachment.uploadId !== undefined) {
      const uploadedAt = idTime(attachment.uploadId);
      const upload = uploadedAt !== undefined && now.getTime() - uploadedAt <= UPLOAD_TTL_MS ? await deps.content.findUpload(connection.customerId, connection.id, attachment.uploadId) : undefined;
      if (!upload) throw new MessageRejectedError('invalid', 'No such upload for this connection (uploads are kept for 24 hours).', `${pointer}/uploadId`);
      stored.push({ ...base, contentType: attachment.contentType ?? upload.contentType ?? 'application/octet-stream', size: upload.ref.bytes, ref: upload.ref });
      continue;
    }
    const bytes = Buffer.from(attachment.content ?? '', 'base64');
    if (bytes.length > MAX_ATTACHMENT_BYTES) throw new MessageRejectedError('too_large', `The attachment is over ${mb(MAX_ATTACHMENT_BYTES)}.`, pointer);
    const contentType = attachment.contentType ?? 'application/octet-stream';
    const ref = await deps.content.putAttachment(connection.customerId, messageId, index, bytes, contentType);
    stored.push({ ...base, contentType, size: bytes.length, ref });
  }
  const tooLarge = stored.findIndex((a) => a.size > MAX_ATTACHMENT_BYTES);
  if (tooLarge >= 0) throw new MessageRejectedError('too_large', `The attachment is over ${mb(MAX_ATTACHMENT_BYTES)}.`, `/body/attachments/${String(tooLarge)}`);
  return stored;
}

/** The Message-ID header: made from the message id, so every attempt (and the Sent Items check) uses the same. */
export function internetMessageId(messageId: string, from: string): string {
  const domain = from.slice(from.lastIndexOf('@') + 1).replace(/[[\]]/g, '');
  return `<${messageId.toLowerCase().replace('_', '.')}@${domain}>`;
}

function hashRequest(request: MessageRequest, from: string): string {
  return sha256(JSON.stringify({ ...request, from: from.toLowerCase() }));
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function jobOf(message: OutboundMessage): SendJob {
  return { customerId: message.customerId, messageId: message.id };
}

function delaySeconds(message: OutboundMessage, now: Date): number {
  return message.sendAt === undefined ? 0 : Math.max(0, Math.ceil((Date.parse(message.sendAt) - now.getTime()) / 1000));
}

function mb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
