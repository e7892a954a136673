import MailComposer from 'nodemailer/lib/mail-composer';
import type { EmailAddress, StoredMessage } from './mail-store.js';

/**
 * A message as RFC 5322 MIME (`GET …/messages/{id}/$value`, and what the relay delivers), composed
 * by nodemailer. Bcc stays in the sender's copies (drafts, Sent Items), as Outlook keeps it there,
 * and is absent from a recipient's. The kept internet message headers go along: `x-` ones, and
 * In-Reply-To and References of a message written as MIME. It is the sandbox's rendering, not
 * Exchange's byte for byte: same headers and parts, other boundaries and folding.
 */

/** An address with its display name, unless the name only repeats it (an unresolved address). */
const address = (a: EmailAddress) => (a.name === '' || a.name.toLowerCase() === a.address.toLowerCase() ? a.address : { name: a.name, address: a.address });

export async function mimeOf(message: StoredMessage): Promise<string> {
  const from = message.from === null ? undefined : address(message.from);
  const sender = message.sender !== null && message.sender.address.toLowerCase() !== message.from?.address.toLowerCase() ? address(message.sender) : undefined;
  const composer = new MailComposer({
    ...(from === undefined ? {} : { from }),
    ...(sender === undefined ? {} : { sender }),
    to: message.toRecipients.map(address),
    cc: message.ccRecipients.map(address),
    bcc: message.bccRecipients.map(address),
    replyTo: message.replyTo.map(address),
    subject: message.subject,
    messageId: message.internetMessageId,
    date: new Date(message.sentDateTime ?? message.createdDateTime),
    headers: message.internetMessageHeaders.map((h) => ({ key: h.name, value: h.value })),
    ...(message.body.contentType === 'html' ? { html: message.body.content } : { text: message.body.content }),
    attachments: message.attachments.map((a) => ({
      filename: a.name,
      content: a.content,
      contentType: a.contentType,
      contentDisposition: a.isInline ? ('inline' as const) : ('attachment' as const),
      ...(a.contentId === null ? {} : { cid: a.contentId }),
    })),
  });
  const node = composer.compile();
  node.keepBcc = message.folder !== 'inbox';
  return (await node.build()).toString('utf8');
}
