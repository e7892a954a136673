import { messageContentSchema, type MessageContent, type StoredAttachment } from '../domain/outbound-message.js';
import type { PayloadRef, PayloadStore } from '../store/payload-store.js';

/**
 * Where outbound messages wait in Blob storage: the content as JSON and each attachment as a blob
 * of its own, under names made from the message id, so a repeated request writes the same blobs
 * again instead of new ones. Uploaded attachments live in their own container under the customer
 * and connection that uploaded them; a message refers to them rather than copying them.
 */

export const UPLOAD_TTL_MS = 24 * 3_600_000;

export interface NewUpload {
  id: string;
  bytes: Buffer;
  contentType: string;
}

export class OutboxContent {
  constructor(
    private readonly outbox: PayloadStore,
    private readonly uploads: PayloadStore,
  ) {}

  async putAttachment(customerId: string, messageId: string, index: number, bytes: Buffer, contentType: string): Promise<PayloadRef> {
    return this.outbox.put(bytes, { name: `${customerId}/${messageId}/attachment-${String(index)}`, contentType });
  }

  async putContent(customerId: string, messageId: string, content: MessageContent): Promise<PayloadRef> {
    return this.outbox.put(Buffer.from(JSON.stringify(content), 'utf8'), { name: `${customerId}/${messageId}/content.json`, contentType: 'application/json' });
  }

  async content(ref: PayloadRef): Promise<MessageContent> {
    return messageContentSchema.parse(JSON.parse((await this.outbox.get(ref)).toString('utf8')));
  }

  async attachment(attachment: StoredAttachment): Promise<Buffer> {
    return (attachment.ref.container === this.uploads.containerName ? this.uploads : this.outbox).get(attachment.ref);
  }

  /** Removes what the message kept once it no longer needs it (sent or failed); uploads stay until they expire. */
  async discard(ref: PayloadRef, content: MessageContent | undefined): Promise<void> {
    const own = (content?.attachments ?? []).filter((attachment) => attachment.ref.container === this.outbox.containerName);
    await Promise.all([...own.map((attachment) => this.outbox.delete(attachment.ref)), this.outbox.delete(ref)]);
  }

  async putUpload(customerId: string, connectionId: string, upload: NewUpload): Promise<PayloadRef> {
    return this.uploads.put(upload.bytes, { name: uploadName(customerId, connectionId, upload.id), contentType: upload.contentType });
  }

  /** The upload of this customer's connection, or undefined when there is none. */
  async findUpload(customerId: string, connectionId: string, id: string): Promise<{ ref: PayloadRef; contentType: string | undefined } | undefined> {
    return this.uploads.describe(uploadName(customerId, connectionId, id));
  }
}

function uploadName(customerId: string, connectionId: string, id: string): string {
  return `${customerId}/${connectionId}/${id}`;
}
