import type { Mailbox } from '../identity/sandbox-state.js';
import { newItemId } from './store-ids.js';

/**
 * The messages of every sandbox mailbox, in memory only: test-sized bodies and attachments, gone
 * when the sandbox stops (the identity state file keeps none of them). A message lives in one
 * well-known folder of one mailbox; a copy elsewhere (a recipient's Inbox, Sent Items after a
 * draft is sent) is another message with its own id.
 *
 * A message's `id` is its immutable id (Prefer: IdType="ImmutableId"): it stays when the message
 * moves to another folder. Its regular id is the same until it first moves; then, as Exchange's
 * regular ids do, it changes with every move (`idOf`). Either finds the message.
 *
 * The store keeps a history for delta queries and change notifications: every creation, move and
 * deletion takes the next sequence number (moves count as a deletion from one folder and a
 * creation in the other), and listeners hear of each as it happens.
 */

export type MailFolderName = 'inbox' | 'drafts' | 'sentitems' | 'deleteditems' | 'junkemail' | 'archive';

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

export type MailboxRef = Pick<Mailbox, 'tenantId' | 'address'>;

/** One mailbox's key in the store (and in delta tokens): its tenant and address, in any case. */
export const mailboxKey = (mailbox: MailboxRef) => `${mailbox.tenantId}\n${mailbox.address.toLowerCase()}`;

/** What happened to a message in a folder; updates are not tracked (no request changes a kept message). */
export type MailChangeKind = 'created' | 'deleted';

export interface MailChange {
  /** Its place in the store's history: 1, 2, 3 … across all mailboxes. */
  sequence: number;
  kind: MailChangeKind;
  mailbox: MailboxRef;
  folder: MailFolderName;
  /** The message as it was at the change (for a deletion, as it was when it left the folder). */
  message: StoredMessage;
  /** Its regular id in that folder (a deletion names the id the folder knew it by). */
  regularId: string;
}

export type MailChangeListener = (change: MailChange) => void;

/** Roughly what the message weighs in the store: its text and its attachments. */
export function messageSize(message: StoredMessage): number {
  const text = [message.subject, message.body.content, ...message.internetMessageHeaders.map((h) => `${h.name}: ${h.value}`)].join('\n');
  return Buffer.byteLength(text) + message.attachments.reduce((sum, a) => sum + a.content.length, 0);
}

export class MailStore {
  private readonly messages = new Map<string, StoredMessage[]>();
  /** The history by mailbox, oldest first. */
  private readonly history = new Map<string, MailChange[]>();
  /** When each message (by immutable id) came into the folder it is in. */
  private readonly arrivals = new Map<string, number>();
  /** The regular id of each message that has moved (immutable id → regular id). */
  private readonly regularIds = new Map<string, string>();
  private readonly listeners: MailChangeListener[] = [];
  private lastSequence = 0;

  /** The sequence number of the latest change (0 before any). */
  get sequence(): number {
    return this.lastSequence;
  }

  onChange(listener: MailChangeListener): void {
    this.listeners.push(listener);
  }

  add(mailbox: MailboxRef, message: StoredMessage): StoredMessage {
    const key = mailboxKey(mailbox);
    this.messages.set(key, [...(this.messages.get(key) ?? []), message]);
    this.record('created', mailbox, message.folder, message);
    return message;
  }

  /** By immutable id, or by the regular id it has now. */
  find(mailbox: MailboxRef, id: string): StoredMessage | undefined {
    return this.messages.get(mailboxKey(mailbox))?.find((m) => m.id === id || this.regularIds.get(m.id) === id);
  }

  remove(mailbox: MailboxRef, id: string): void {
    const key = mailboxKey(mailbox);
    const message = this.find(mailbox, id);
    if (!message) return;
    this.messages.set(key, (this.messages.get(key) ?? []).filter((m) => m !== message));
    this.record('deleted', mailbox, message.folder, message);
  }

  /** Moves the message to another folder of its mailbox: a new regular id, the same immutable one. */
  move(mailbox: MailboxRef, id: string, folder: MailFolderName): StoredMessage | undefined {
    const message = this.find(mailbox, id);
    if (!message || message.folder === folder) return message;
    this.record('deleted', mailbox, message.folder, { ...message });
    message.folder = folder;
    this.regularIds.set(message.id, newItemId());
    this.record('created', mailbox, folder, message);
    return message;
  }

  /** The id a client sees: the immutable one when it asked for immutable ids, else the regular one. */
  idOf(message: StoredMessage, immutable: boolean): string {
    return immutable ? message.id : (this.regularIds.get(message.id) ?? message.id);
  }

  /** The sequence number at which the message came into its folder (0 for one the store does not hold). */
  arrivalOf(message: StoredMessage): number {
    return this.arrivals.get(message.id) ?? 0;
  }

  /** A folder's changes with a sequence number in (after, upTo], oldest first. */
  changes(mailbox: MailboxRef, folder: string, after: number, upTo: number): MailChange[] {
    return (this.history.get(mailboxKey(mailbox)) ?? []).filter((c) => c.folder === folder && c.sequence > after && c.sequence <= upTo);
  }

  /** A folder's messages (every folder's without one), newest first, as Outlook lists them. */
  list(mailbox: MailboxRef, folder?: string): StoredMessage[] {
    // Reversed first, so messages of the same millisecond also come latest first (the sort is stable).
    return (this.messages.get(mailboxKey(mailbox)) ?? [])
      .filter((m) => folder === undefined || m.folder === folder)
      .reverse()
      .sort((a, b) => b.receivedDateTime - a.receivedDateTime);
  }

  private record(kind: MailChangeKind, mailbox: MailboxRef, folder: MailFolderName, message: StoredMessage): void {
    this.lastSequence += 1;
    const change: MailChange = { sequence: this.lastSequence, kind, mailbox: { tenantId: mailbox.tenantId, address: mailbox.address }, folder, message, regularId: this.idOf(message, false) };
    const key = mailboxKey(mailbox);
    const history = this.history.get(key) ?? [];
    history.push(change);
    this.history.set(key, history);
    if (kind === 'created') this.arrivals.set(message.id, change.sequence);
    for (const listener of this.listeners) listener(change);
  }
}
