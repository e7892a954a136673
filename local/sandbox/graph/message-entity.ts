import type { Mailbox } from '../identity/sandbox-state.js';
import { graphErrors } from './errors.js';
import { folderId } from './mail-folders.js';
import type { EmailAddress, StoredAttachment, StoredMessage } from './mail-store.js';
import { project, selectedProperties } from './odata.js';

/**
 * How Graph shows a message and its attachments: the default properties in Graph's order,
 * recipients as `{ emailAddress: { name, address } }`, dates in UTC to the second, body content
 * types in lower case. `internetMessageHeaders` only when `$select` asks for it, as in Graph.
 * An attachment's `size` is its byte count here (Exchange adds its own overhead).
 */

const DEFAULT_PROPERTIES = [
  'id',
  'createdDateTime',
  'lastModifiedDateTime',
  'changeKey',
  'categories',
  'receivedDateTime',
  'sentDateTime',
  'hasAttachments',
  'internetMessageId',
  'subject',
  'bodyPreview',
  'importance',
  'parentFolderId',
  'conversationId',
  'conversationIndex',
  'isDeliveryReceiptRequested',
  'isReadReceiptRequested',
  'isRead',
  'isDraft',
  'webLink',
  'inferenceClassification',
  'body',
  'sender',
  'from',
  'toRecipients',
  'ccRecipients',
  'bccRecipients',
  'replyTo',
  'flag',
] as const;
const MESSAGE_PROPERTIES: readonly string[] = [...DEFAULT_PROPERTIES, 'internetMessageHeaders'];

/** Graph's dates: "2026-03-08T10:22:05Z". */
export const graphDate = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

const recipient = (address: EmailAddress) => ({ emailAddress: { name: address.name, address: address.address } });

/** The first 255 characters of the body as text, as Outlook's preview. */
function bodyPreview(message: StoredMessage): string {
  const content = message.body.contentType === 'html' ? message.body.content.replace(/<[^>]*>/g, ' ') : message.body.content;
  return content.replace(/\s+/g, ' ').trim().slice(0, 255);
}

/** The message as Graph shows it, under `id`: its immutable or its regular id (MailStore.idOf), as the client asked. */
export function messageEntity(mailbox: Pick<Mailbox, 'tenantId' | 'address'>, message: StoredMessage, id: string = message.id): Record<string, unknown> {
  return {
    '@odata.etag': `W/"${message.changeKey}"`,
    id,
    createdDateTime: graphDate(message.createdDateTime),
    lastModifiedDateTime: graphDate(message.lastModifiedDateTime),
    changeKey: message.changeKey,
    categories: [],
    receivedDateTime: graphDate(message.receivedDateTime),
    sentDateTime: message.sentDateTime === null ? null : graphDate(message.sentDateTime),
    hasAttachments: message.attachments.some((a) => !a.isInline),
    internetMessageId: message.internetMessageId,
    subject: message.subject,
    bodyPreview: bodyPreview(message),
    importance: message.importance,
    parentFolderId: folderId(mailbox, message.folder),
    conversationId: message.conversationId,
    conversationIndex: Buffer.from(message.conversationId).subarray(0, 22).toString('base64'),
    isDeliveryReceiptRequested: message.isDeliveryReceiptRequested,
    isReadReceiptRequested: message.isReadReceiptRequested,
    isRead: message.isRead,
    isDraft: message.isDraft,
    webLink: `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(id)}&exvsurl=1&viewmodel=ReadMessageItem`,
    inferenceClassification: 'focused',
    body: { contentType: message.body.contentType, content: message.body.content },
    sender: message.sender === null ? null : recipient(message.sender),
    from: message.from === null ? null : recipient(message.from),
    toRecipients: message.toRecipients.map(recipient),
    ccRecipients: message.ccRecipients.map(recipient),
    bccRecipients: message.bccRecipients.map(recipient),
    replyTo: message.replyTo.map(recipient),
    flag: { flagStatus: 'notFlagged' },
    internetMessageHeaders: message.internetMessageHeaders.map((h) => ({ name: h.name, value: h.value })),
  };
}

/** The properties `$select` names (Outlook's error for one the type lacks), or undefined for the default set. */
export function selectedMessageProperties(query: URLSearchParams): string[] | undefined {
  return selectedProperties(query, MESSAGE_PROPERTIES, (name) => graphErrors.outlookPropertyUnknown(name, 'Message'));
}

/** The entity as the selection shows it: Outlook always adds the etag and the id. */
export function projectMessage(entity: Record<string, unknown>, selected: readonly string[] | undefined): Record<string, unknown> {
  return project(entity, selected ?? ['@odata.etag', ...DEFAULT_PROPERTIES], ['@odata.etag', 'id']);
}

export function attachmentEntity(attachment: StoredAttachment, withContent = true): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.fileAttachment',
    '@odata.mediaContentType': attachment.contentType,
    id: attachment.id,
    lastModifiedDateTime: graphDate(attachment.lastModifiedDateTime),
    name: attachment.name,
    contentType: attachment.contentType,
    size: attachment.content.length,
    isInline: attachment.isInline,
    contentId: attachment.contentId,
    contentLocation: null,
    ...(withContent ? { contentBytes: attachment.content.toString('base64') } : {}),
  };
}
