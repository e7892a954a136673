import { graphErrors } from './errors.js';
import type { BodyType, EmailAddress, Importance, MessageContent, MessageHeader } from './mail-store.js';

/**
 * A message as a client writes it (POST …/messages, sendMail's `message`, POST …/attachments),
 * read the way Graph reads it: property names of the type in any case, an unknown one refused
 * (RequestBodyRead), a value of the wrong kind refused, custom headers only when they are `x-`
 * headers and at most five. Properties Graph has but the sandbox does not keep (categories,
 * read-only ones like `id`) are taken and ignored. Recipients are not resolved here: a draft may
 * hold any address, sending checks them (send-mail.ts).
 */

export interface NewAttachment {
  name: string;
  contentType: string;
  isInline: boolean;
  contentId: string | null;
  content: Buffer;
}

export interface MessageInput extends MessageContent {
  internetMessageId: string | null;
  attachments: NewAttachment[];
}

const MESSAGE_PROPERTIES = [
  'subject',
  'body',
  'toRecipients',
  'ccRecipients',
  'bccRecipients',
  'replyTo',
  'from',
  'internetMessageId',
  'internetMessageHeaders',
  'importance',
  'isReadReceiptRequested',
  'isDeliveryReceiptRequested',
  'attachments',
  // Taken and ignored:
  'bodyPreview',
  'categories',
  'changeKey',
  'conversationId',
  'conversationIndex',
  'createdDateTime',
  'flag',
  'hasAttachments',
  'id',
  'inferenceClassification',
  'isDraft',
  'isRead',
  'lastModifiedDateTime',
  'parentFolderId',
  'receivedDateTime',
  'sender',
  'sentDateTime',
  'uniqueBody',
  'webLink',
  'extensions',
  'singleValueExtendedProperties',
  'multiValueExtendedProperties',
];
const ATTACHMENT_PROPERTIES = ['name', 'contentType', 'contentBytes', 'isInline', 'contentId', 'id', 'size', 'lastModifiedDateTime', 'contentLocation'];
const FILE_ATTACHMENT = '#microsoft.graph.fileAttachment';
const MAX_CUSTOM_HEADERS = 5;

const literal = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value ?? null)).slice(0, 64);

/**
 * The object's properties under their names in the type. OData annotations (`@odata.type` …) are
 * kept under their own names, lower-cased. A name the type lacks is `unknown`'s error.
 */
export function typeProperties(
  value: unknown,
  known: readonly string[],
  type: string,
  unknown: (name: string) => Error = (name) => graphErrors.unknownBodyProperty(name, type),
): Map<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw graphErrors.bodyValueInvalid(literal(value), `Microsoft.OutlookServices.${type}`);
  const found = new Map<string, unknown>();
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    if (name.startsWith('@')) {
      found.set(name.toLowerCase(), v);
      continue;
    }
    const property = known.find((k) => k.toLowerCase() === name.toLowerCase());
    if (property === undefined) throw unknown(name);
    found.set(property, v);
  }
  return found;
}

function text(value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw graphErrors.bodyValueInvalid(literal(value), 'Edm.String');
  return value;
}

function flag(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw graphErrors.bodyValueInvalid(literal(value), 'Edm.Boolean');
  return value;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T, type: string): T {
  if (value === undefined || value === null) return fallback;
  const match = allowed.find((a) => typeof value === 'string' && a === value.toLowerCase());
  if (match === undefined) throw graphErrors.bodyValueInvalid(literal(value), type);
  return match;
}

function list(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw graphErrors.bodyValueInvalid(literal(value), 'Collection');
  return value;
}

function recipient(value: unknown): EmailAddress {
  const emailAddress = typeProperties(value, ['emailAddress'], 'Recipient').get('emailAddress');
  const fields = typeProperties(emailAddress ?? {}, ['name', 'address'], 'EmailAddress');
  return { name: text(fields.get('name'), ''), address: text(fields.get('address'), '').trim() };
}

function header(value: unknown): MessageHeader {
  const fields = typeProperties(value, ['name', 'value'], 'InternetMessageHeader');
  const name = text(fields.get('name'), '');
  if (!/^x-/i.test(name)) throw graphErrors.headerNameNotCustom(name);
  return { name, value: text(fields.get('value'), '') };
}

function headers(value: unknown): MessageHeader[] {
  if (value === undefined || value === null) return [];
  const items = list(value);
  if (items.length === 0) throw graphErrors.emptyHeaders();
  const parsed = items.map(header);
  if (parsed.length > MAX_CUSTOM_HEADERS) throw graphErrors.tooManyHeaders();
  return parsed;
}

function base64(value: unknown): Buffer {
  const encoded = text(value, '');
  if (encoded.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) throw graphErrors.bodyValueInvalid(literal(encoded), 'Edm.Binary');
  return Buffer.from(encoded, 'base64');
}

/** A `#microsoft.graph.fileAttachment`; the other kinds (item, reference) are not modelled. */
export function parseAttachment(value: unknown): NewAttachment {
  const fields = typeProperties(value, ATTACHMENT_PROPERTIES, 'FileAttachment');
  const type = fields.get('@odata.type');
  if (type === undefined) throw graphErrors.abstractAttachment();
  if (typeof type !== 'string' || `#${type.replace(/^#/, '')}`.toLowerCase() !== FILE_ATTACHMENT.toLowerCase()) throw graphErrors.notModelled(`attachments of type ${literal(type)}`);
  const contentId = fields.get('contentId');
  return {
    name: text(fields.get('name'), ''),
    contentType: text(fields.get('contentType'), 'application/octet-stream'),
    isInline: flag(fields.get('isInline')),
    contentId: contentId === undefined || contentId === null ? null : text(contentId, ''),
    content: base64(fields.get('contentBytes')),
  };
}

export function parseMessage(value: unknown): MessageInput {
  const fields = typeProperties(value, MESSAGE_PROPERTIES, 'Message');
  const body = typeProperties(fields.get('body') ?? {}, ['contentType', 'content'], 'ItemBody');
  const from = fields.get('from');
  const internetMessageId = fields.get('internetMessageId');
  return {
    subject: text(fields.get('subject'), ''),
    body: { contentType: oneOf<BodyType>(body.get('contentType'), ['text', 'html'], 'text', 'Microsoft.OutlookServices.BodyType'), content: text(body.get('content'), '') },
    toRecipients: list(fields.get('toRecipients')).map(recipient),
    ccRecipients: list(fields.get('ccRecipients')).map(recipient),
    bccRecipients: list(fields.get('bccRecipients')).map(recipient),
    replyTo: list(fields.get('replyTo')).map(recipient),
    from: from === undefined || from === null ? null : recipient(from),
    internetMessageId: internetMessageId === undefined || internetMessageId === null ? null : text(internetMessageId, ''),
    internetMessageHeaders: headers(fields.get('internetMessageHeaders')),
    importance: oneOf<Importance>(fields.get('importance'), ['low', 'normal', 'high'], 'normal', 'Microsoft.OutlookServices.Importance'),
    isReadReceiptRequested: flag(fields.get('isReadReceiptRequested')),
    isDeliveryReceiptRequested: flag(fields.get('isDeliveryReceiptRequested')),
    attachments: list(fields.get('attachments')).map(parseAttachment),
  };
}
