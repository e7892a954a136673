import { randomBytes } from 'node:crypto';
import type { SandboxState } from '../identity/sandbox-state.js';
import type { EmailAddress, MailFolderName, MessageContent, StoredAttachment, StoredMessage } from './mail-store.js';
import type { NewAttachment } from './message-input.js';
import { sameText } from './mailboxes.js';
import { newItemId } from './store-ids.js';

/**
 * New store items, with what Exchange adds to what the client wrote: ids, a change key, a
 * conversation id, an internetMessageId when the client gave none, and the display names of
 * addresses it knows.
 */

/** Exchange's look (`<…@….prod.outlook.com>`), on a host name that says where it came from. */
export function newInternetMessageId(): string {
  return `<${randomBytes(20).toString('hex').toUpperCase()}@SANDBOX.namprd00.prod.outlook.com>`;
}

const newChangeKey = () => `CQAAAB${randomBytes(18).toString('base64')}`;
const newConversationId = () => `AAQk${randomBytes(40).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;

/** The address with a display name: the client's, else the sandbox mailbox's, else the address itself (as Outlook shows an unresolved one). */
export function withName(state: SandboxState, address: EmailAddress): EmailAddress {
  if (address.name !== '') return address;
  const mailbox = state.data.mailboxes.find((m) => sameText(m.address, address.address));
  return { name: mailbox?.displayName ?? address.address, address: address.address };
}

export function newAttachment(input: NewAttachment, now: number): StoredAttachment {
  return { id: newItemId(), ...input, lastModifiedDateTime: now };
}

export interface NewMessage {
  content: MessageContent;
  internetMessageId: string;
  attachments: StoredAttachment[];
  folder: MailFolderName;
  from: EmailAddress;
  sender: EmailAddress;
  isDraft: boolean;
  isRead: boolean;
  now: number;
  sentDateTime: number | null;
  conversationId?: string;
}

export function newMessage(state: SandboxState, message: NewMessage): StoredMessage {
  const named = (addresses: EmailAddress[]) => addresses.map((a) => withName(state, a));
  const { content } = message;
  return {
    ...content,
    toRecipients: named(content.toRecipients),
    ccRecipients: named(content.ccRecipients),
    bccRecipients: named(content.bccRecipients),
    replyTo: named(content.replyTo),
    id: newItemId(),
    folder: message.folder,
    internetMessageId: message.internetMessageId,
    from: withName(state, message.from),
    sender: withName(state, message.sender),
    conversationId: message.conversationId ?? newConversationId(),
    changeKey: newChangeKey(),
    isDraft: message.isDraft,
    isRead: message.isRead,
    attachments: message.attachments,
    createdDateTime: message.now,
    lastModifiedDateTime: message.now,
    receivedDateTime: message.now,
    sentDateTime: message.sentDateTime,
  };
}

/** The same message as another item: in another folder or mailbox, with its own id and change key. */
export function copyOf(message: StoredMessage, changes: Partial<Pick<StoredMessage, 'folder' | 'isRead' | 'bccRecipients' | 'receivedDateTime'>>): StoredMessage {
  return { ...message, ...changes, id: newItemId(), changeKey: newChangeKey(), attachments: message.attachments.map((a) => ({ ...a, id: newItemId() })) };
}
