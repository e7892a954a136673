import { z } from 'zod';
import { ID_PATTERN } from './ids.js';
import { RECEIVE_TRANSPORTS } from './receive-state.js';

/**
 * A message that arrived in a watched mailbox. Its id is derived from the mailbox and the
 * message's fingerprint (derivedId), so finding it again, by another path or after a cursor reset,
 * lands on this row and emits nothing new. The whole message stays in Blob storage for the
 * retention period; the row outlives it so duplicates are still recognised.
 */

export const inboundAttachmentSchema = z
  .object({
    index: z.int().nonnegative().meta({ description: 'Its position: GET …/messages/{id}/attachments/{index}.' }),
    filename: z.string().optional(),
    contentType: z.string(),
    size: z.int().nonnegative(),
    contentId: z.string().optional(),
    inline: z.boolean(),
  })
  .meta({ id: 'ReceivedAttachment' });
export type InboundAttachment = z.infer<typeof inboundAttachmentSchema>;

export const inboundMessageSchema = z.object({
  id: z.string().regex(ID_PATTERN.rcv),
  customerId: z.string(),
  connectionId: z.string(),
  mailboxId: z.string(),
  mailbox: z.string(),
  transport: z.enum(RECEIVE_TRANSPORTS),
  folder: z.string(),
  /** The message.received event; the same id however often it is recorded. */
  eventId: z.string().regex(ID_PATTERN.evt),
  /** Set once the event is stored: a later find of this message is a duplicate. */
  emitted: z.boolean(),
  receivedAt: z.iso.datetime(),
  size: z.int().nonnegative(),
  internetMessageId: z.string().optional(),
  subject: z.string().optional(),
  blobName: z.string(),
  /** When the stored message is deleted; the row stays. */
  rawExpiresAt: z.iso.datetime(),
  attachments: z.array(inboundAttachmentSchema),
  /** The message has more attachments than `attachments` lists. */
  attachmentsTruncated: z.boolean().optional(),
});
export type InboundMessage = z.infer<typeof inboundMessageSchema>;

const addressSchema = z.object({ address: z.string(), name: z.string().optional() });

/** The data of a message.received event: everything a helpdesk needs to thread and route it. */
export const messageReceivedDataSchema = z
  .object({
    messageId: z.string().regex(ID_PATTERN.rcv).meta({ description: 'The connector\'s id of the received message (rcv_…).' }),
    mailboxId: z.string(),
    mailbox: z.string().meta({ description: 'The address of the mailbox it arrived in.' }),
    transport: z.enum(RECEIVE_TRANSPORTS),
    folder: z.string(),
    from: addressSchema.optional(),
    sender: addressSchema.optional(),
    replyTo: z.array(addressSchema),
    to: z.array(addressSchema),
    cc: z.array(addressSchema),
    subject: z.string(),
    date: z.iso.datetime().optional().meta({ description: 'The Date header.' }),
    receivedAt: z.iso.datetime().meta({ description: 'When the connector found it.' }),
    size: z.int().nonnegative().meta({ description: 'Bytes of the whole message (MIME).' }),
    internetMessageId: z.string().optional(),
    inReplyTo: z.string().optional(),
    references: z.array(z.string()),
    autoSubmitted: z.string().optional().meta({ description: 'The Auto-Submitted header (auto-replied, auto-generated), to keep out of loops.' }),
    preview: z.string().meta({ description: 'The first 255 characters of the text.' }),
    hasAttachments: z.boolean(),
    attachments: z.array(inboundAttachmentSchema),
    raw: z
      .object({ url: z.string(), expiresAt: z.iso.datetime() })
      .meta({ description: 'The whole message (message/rfc822), with the API\'s credentials, until it expires.' }),
    truncated: z
      .array(z.enum(['to', 'cc', 'replyTo', 'references', 'attachments', 'subject']))
      .optional()
      .meta({ description: 'Lists cut short to keep the event small (at most 20 to, 15 cc, 5 replyTo, the last 10 references, 30 attachments, 500 characters of subject); the whole message is at raw.url.' }),
  })
  .meta({ id: 'MessageReceivedData' });
export type MessageReceivedData = z.infer<typeof messageReceivedDataSchema>;

/** A preview as Outlook shows one: the text with its whitespace collapsed, at most 255 characters. */
export function previewOf(text: string | undefined): string {
  const collapsed = (text ?? '').replace(/\s+/g, ' ').trim();
  return collapsed.length <= 255 ? collapsed : `${collapsed.slice(0, 254)}…`;
}

/** A received message as GET …/messages/{id} shows it. */
export const receivedMessageViewSchema = z
  .object({
    id: z.string().regex(ID_PATTERN.rcv),
    direction: z.literal('received'),
    connectionId: z.string(),
    mailboxId: z.string(),
    mailbox: z.string(),
    transport: z.enum(RECEIVE_TRANSPORTS),
    folder: z.string(),
    eventId: z.string().meta({ description: 'The message.received event.' }),
    receivedAt: z.iso.datetime(),
    size: z.int().nonnegative(),
    internetMessageId: z.string().optional(),
    subject: z.string().optional(),
    attachments: z.array(inboundAttachmentSchema),
    rawExpiresAt: z.iso.datetime(),
  })
  .meta({ id: 'ReceivedMessage' });
export type ReceivedMessageView = z.infer<typeof receivedMessageViewSchema>;

export function receivedMessageView(message: InboundMessage): ReceivedMessageView {
  return {
    id: message.id,
    direction: 'received',
    connectionId: message.connectionId,
    mailboxId: message.mailboxId,
    mailbox: message.mailbox,
    transport: message.transport,
    folder: message.folder,
    eventId: message.eventId,
    receivedAt: message.receivedAt,
    size: message.size,
    ...(message.internetMessageId !== undefined && { internetMessageId: message.internetMessageId }),
    ...(message.subject !== undefined && { subject: message.subject }),
    attachments: message.attachments,
    rawExpiresAt: message.rawExpiresAt,
  };
}
