import { simpleParser, type AddressObject, type EmailAddress as ParsedAddress, type HeaderLines } from 'mailparser';
import { graphErrors } from './errors.js';
import type { EmailAddress, MessageHeader } from './mail-store.js';
import type { MessageInput } from './message-input.js';

/**
 * A message written as MIME (sendMail and POST …/messages with `Content-Type: text/plain`, Graph's
 * "MIME format"): the request body is the base64 of an RFC 5322 message, read with mailparser.
 * Kept, as Exchange turns the MIME into an item: From, To, Cc, Bcc, Reply-To, the subject, one body
 * (HTML when the message has any, else text: an item has one body), the attachments (inline ones
 * with their Content-ID, which the HTML's `cid:` links go on naming), the Message-ID as
 * internetMessageId, and In-Reply-To, References and every X- header as internetMessageHeaders, so
 * that `$value` and the relay carry them on. The JSON rules for custom headers (`x-` only, at most
 * five) do not apply: these are the message's own headers.
 */

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** RFC 5322's field name: printable ASCII but the colon. A first line that is none is no header. */
const FIELD_NAME = /^[!-9;-~]+$/;
const KEPT_HEADER = /^(?:x-.*|in-reply-to|references)$/i;

function decodeBase64(text: string): Buffer {
  // Line breaks between base64 characters are accepted, as .NET's base64 decoding accepts them.
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) throw graphErrors.mimeNotBase64();
  return Buffer.from(compact, 'base64');
}

/** The mailboxes of an address header, a group's members in its place. */
function addresses(header: AddressObject | AddressObject[] | undefined): EmailAddress[] {
  const flatten = (list: ParsedAddress[]): EmailAddress[] =>
    list.flatMap((a) => (a.group !== undefined ? flatten(a.group) : a.address === undefined ? [] : [{ name: a.name, address: a.address }]));
  return (header === undefined ? [] : [header].flat()).flatMap((h) => flatten(h.value));
}

/** The kept headers as the message wrote them (unfolded, not decoded), in its order. */
function keptHeaders(lines: HeaderLines): MessageHeader[] {
  return lines
    .filter((l) => KEPT_HEADER.test(l.key))
    .map((l) => {
      const colon = l.line.indexOf(':');
      return { name: l.line.slice(0, colon).trim(), value: l.line.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '').trim() };
    });
}

/** The message a base64 MIME body holds: 400 ErrorMimeContentInvalidBase64String, or ErrorMimeContentInvalid for what decodes to no message with headers. */
export async function readMimeMessage(base64: string): Promise<MessageInput> {
  const mime = decodeBase64(base64);
  // cid: links stay as they are (Outlook keeps them and the inline attachments); no text made from HTML or HTML from text: one body is kept.
  const mail = await simpleParser(mime, { keepCidLinks: true, skipHtmlToText: true, skipTextToHtml: true, checksumAlgo: false }).catch(() => {
    throw graphErrors.mimeInvalid();
  });
  if (mail.headerLines.length === 0 || !mail.headerLines.every((l) => FIELD_NAME.test(l.key))) throw graphErrors.mimeInvalid();
  const from = addresses(mail.from)[0];
  return {
    subject: mail.subject ?? '',
    body: typeof mail.html === 'string' ? { contentType: 'html', content: mail.html } : { contentType: 'text', content: mail.text ?? '' },
    toRecipients: addresses(mail.to),
    ccRecipients: addresses(mail.cc),
    bccRecipients: addresses(mail.bcc),
    replyTo: addresses(mail.replyTo),
    from: from ?? null,
    internetMessageId: mail.messageId ?? null,
    internetMessageHeaders: keptHeaders(mail.headerLines),
    importance: 'normal',
    isReadReceiptRequested: false,
    isDeliveryReceiptRequested: false,
    attachments: mail.attachments.map((a) => ({
      name: a.filename ?? '',
      contentType: a.contentType,
      isInline: a.related === true || a.contentDisposition === 'inline',
      contentId: a.cid ?? null,
      content: a.content,
    })),
  };
}
