import type { z } from 'zod';
import type { SandboxContext } from '../identity/context.js';
import { ControlError } from '../identity/control-api.js';
import type { injectMessageInput } from '../identity/control-schemas.js';
import type { Mailbox } from '../identity/sandbox-state.js';
import { GraphError } from './errors.js';
import type { EmailAddress, MailFolderName, MailStore, StoredMessage } from './mail-store.js';
import { newAttachment, newInternetMessageId, newMessage } from './message-factory.js';
import type { MessageInput } from './message-input.js';
import { readMimeMessage } from './mime-input.js';

/**
 * Mail arriving from outside the sandbox (the control call injectMessage): a message put into a
 * mailbox's folder as Exchange files a delivered one, unread, received now (or when the test
 * says), with a Message-ID made up when it has none. It comes as MIME (base64, read as Graph reads
 * its MIME format) or as a few fields. Like any new item, it shows in delta queries and fires the
 * change notifications of the subscriptions that watch its folder.
 */

export type InjectMessage = z.output<typeof injectMessageInput>;

/** Who sent it when the test does not say. */
const DEFAULT_SENDER: EmailAddress = { name: 'Sandbox Sender', address: 'sender@example.com' };

const address = (value: string | { name?: string | undefined; address: string }): EmailAddress =>
  typeof value === 'string' ? { name: '', address: value } : { name: value.name ?? '', address: value.address };

function fromFields(input: InjectMessage, mailbox: Mailbox): MessageInput {
  return {
    subject: input.subject ?? '',
    body: input.html !== undefined ? { contentType: 'html', content: input.html } : { contentType: 'text', content: input.text ?? '' },
    toRecipients: (input.to ?? [mailbox.address]).map(address),
    ccRecipients: (input.cc ?? []).map(address),
    bccRecipients: [],
    replyTo: [],
    from: input.from === undefined ? null : address(input.from),
    internetMessageHeaders: input.headers ?? [],
    importance: 'normal',
    isReadReceiptRequested: false,
    isDeliveryReceiptRequested: false,
    internetMessageId: input.internetMessageId ?? null,
    attachments: (input.attachments ?? []).map((a) => ({
      name: a.name,
      contentType: a.contentType ?? 'application/octet-stream',
      isInline: a.isInline ?? false,
      contentId: a.contentId ?? null,
      content: Buffer.from(a.contentBase64, 'base64'),
    })),
  };
}

async function fromMime(mime: string): Promise<MessageInput> {
  try {
    return await readMimeMessage(mime);
  } catch (error) {
    if (error instanceof GraphError) throw new ControlError(400, `mime: ${error.message}`);
    throw error;
  }
}

export async function injectMessage(context: SandboxContext, store: MailStore, mailbox: Mailbox, input: InjectMessage): Promise<StoredMessage> {
  const content = input.mime === undefined ? fromFields(input, mailbox) : await fromMime(input.mime);
  const now = context.now();
  const received = input.receivedDateTime ?? now;
  const from = content.from ?? DEFAULT_SENDER;
  const folder: MailFolderName = input.folder ?? 'inbox';
  const message = newMessage(context.state, {
    content,
    internetMessageId: content.internetMessageId ?? newInternetMessageId(),
    attachments: content.attachments.map((a) => newAttachment(a, now)),
    folder,
    from,
    sender: from,
    isDraft: folder === 'drafts',
    isRead: input.isRead ?? false,
    now,
    sentDateTime: received,
  });
  return store.add(mailbox, { ...message, receivedDateTime: received, bccRecipients: [] });
}
