import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import type { MessageContent } from '../domain/outbound-message.js';

/**
 * The message as nodemailer writes it: the options both SMTP submission and Graph's MIME upload
 * start from, so the two transports put the same headers on the same content.
 */

export interface AttachmentBytes {
  index: number;
  content: Buffer;
}

const addresses = (list: MessageContent['to']): Mail.Address[] => list.map((r) => ({ address: r.address, name: r.name ?? '' }));

export function mailOptions(content: MessageContent, attachments: readonly AttachmentBytes[]): Mail.Options {
  return {
    from: { address: content.from.address, name: content.from.name ?? '' },
    to: addresses(content.to),
    cc: addresses(content.cc),
    bcc: addresses(content.bcc),
    ...(content.replyTo.length > 0 && { replyTo: addresses(content.replyTo) }),
    subject: content.subject,
    ...(content.text !== undefined && { text: content.text }),
    ...(content.html !== undefined && { html: content.html }),
    messageId: content.messageId,
    ...(content.inReplyTo !== undefined && { inReplyTo: content.inReplyTo }),
    ...(content.references.length > 0 && { references: content.references }),
    headers: content.headers,
    attachments: attachments.map(({ index, content: bytes }) => {
      const meta = content.attachments[index];
      if (!meta) throw new RangeError(`no attachment ${String(index)}`);
      return {
        filename: meta.filename,
        content: bytes,
        contentType: meta.contentType,
        ...(meta.inline && meta.contentId !== undefined && { cid: meta.contentId, contentDisposition: 'inline' as const }),
      };
    }),
  };
}

/**
 * RFC 5322 bytes of the message with the given attachments. Bcc stays in (Graph and Exchange take
 * recipients from it and drop the header before delivery).
 */
export async function composeMime(content: MessageContent, attachments: readonly AttachmentBytes[]): Promise<Buffer> {
  const mail = new MailComposer(mailOptions(content, attachments)).compile();
  mail.keepBcc = true;
  return mail.build();
}
