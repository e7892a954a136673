import type { Mailbox } from '../identity/sandbox-state.js';

/**
 * The messages of every sandbox mailbox, in memory only: test-sized bodies and attachments, gone
 * when the sandbox stops (the identity state file keeps none of them). A message lives in one
 * well-known folder of one mailbox; a copy elsewhere (a recipient's Inbox, Sent Items after a
 * draft is sent) is another message with its own id, as in Exchange, where an item's id changes
 * when it moves.
 */

export type MailFolderName = 'inbox' | 'drafts' | 'sentitems';

export interface EmailAddress {
  name: string;
  address: string;
}

export interface MessageHeader {
  name: string;
  value: string;
}

export type BodyType = 'text' | 'html';
export type Importance = 'low' | 'normal' | 'high';

export interface StoredAttachment {
  id: string;
  name: string;
  contentType: string;
  isInline: boolean;
  contentId: string | null;
  content: Buffer;
  /** Milliseconds since the epoch. */
  lastModifiedDateTime: number;
}

/** What a client decides about a message: the writable properties of Graph's message. */
export interface MessageContent {
  subject: string;
  body: { contentType: BodyType; content: string };
  toRecipients: EmailAddress[];
  ccRecipients: EmailAddress[];
  bccRecipients: EmailAddress[];
  replyTo: EmailAddress[];
  /** Who it is from, when not the mailbox it is sent through. */
  from: EmailAddress | null;
  /** `x-` headers; from a message written as MIME also In-Reply-To and References (mime-input.ts). */
  internetMessageHeaders: MessageHeader[];
  importance: Importance;
  isReadReceiptRequested: boolean;
  isDeliveryReceiptRequested: boolean;
}

export interface StoredMessage extends Omit<MessageContent, 'from'> {
  id: string;
  folder: MailFolderName;
  /** `<…@…>`: the client's, or one Exchange makes up when the message is created. */
  internetMessageId: string;
  from: EmailAddress | null;
  sender: EmailAddress | null;
  conversationId: string;
  changeKey: string;
  isDraft: boolean;
  isRead: boolean;
  attachments: StoredAttachment[];
  /** Milliseconds since the epoch. */
  createdDateTime: number;
  lastModifiedDateTime: number;
  receivedDateTime: number;
  sentDateTime: number | null;
}

type MailboxRef = Pick<Mailbox, 'tenantId' | 'address'>;

const mailboxKey = (mailbox: MailboxRef) => `${mailbox.tenantId}\n${mailbox.address.toLowerCase()}`;

/** Roughly what the message weighs in the store: its text and its attachments. */
export function messageSize(message: StoredMessage): number {
  const text = [message.subject, message.body.content, ...message.internetMessageHeaders.map((h) => `${h.name}: ${h.value}`)].join('\n');
  return Buffer.byteLength(text) + message.attachments.reduce((sum, a) => sum + a.content.length, 0);
}

export class MailStore {
  private readonly messages = new Map<string, StoredMessage[]>();

  add(mailbox: MailboxRef, message: StoredMessage): StoredMessage {
    const key = mailboxKey(mailbox);
    this.messages.set(key, [...(this.messages.get(key) ?? []), message]);
    return message;
  }

  find(mailbox: MailboxRef, id: string): StoredMessage | undefined {
    return this.messages.get(mailboxKey(mailbox))?.find((m) => m.id === id);
  }

  remove(mailbox: MailboxRef, id: string): void {
    const key = mailboxKey(mailbox);
    this.messages.set(key, (this.messages.get(key) ?? []).filter((m) => m.id !== id));
  }

  /** A folder's messages (every folder's without one), newest first, as Outlook lists them. */
  list(mailbox: MailboxRef, folder?: string): StoredMessage[] {
    // Reversed first, so messages of the same millisecond also come latest first (the sort is stable).
    return (this.messages.get(mailboxKey(mailbox)) ?? [])
      .filter((m) => folder === undefined || m.folder === folder)
      .reverse()
      .sort((a, b) => b.receivedDateTime - a.receivedDateTime);
  }
}
