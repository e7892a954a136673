import type { Mailbox } from '../identity/sandbox-state.js';
import type { GraphCaller } from './authentication.js';
import { graphErrors } from './errors.js';
import { SEND_MAIL } from './mail-permissions.js';
import type { EmailAddress, MessageContent, StoredAttachment } from './mail-store.js';
import { copyOf, newAttachment, newInternetMessageId, newMessage, withName } from './message-factory.js';
import { parseMessage, typeProperties, type MessageInput } from './message-input.js';
import { findMessage } from './messages.js';
import { readMimeMessage } from './mime-input.js';
import { authorizedMailbox, mailboxRoutes, sameText } from './mailboxes.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';

/**
 * Sending: `POST /sendMail` (`{ message, saveToSentItems? }`, or a MIME message in base64 as
 * text/plain, which has no saveToSentItems: it is saved) and `POST /messages/{id}/send` (a
 * draft), both 202 with no body. Exchange's rules, as Microsoft documents them ("Send Outlook
 * messages from another user"): a delegated caller sends from their own mailbox with Mail.Send;
 * from any other (a shared mailbox through `/users/{shared}/sendMail`, which also needs
 * FullAccess, or `from` set to another address) they need Mail.Send.Shared and the Send As
 * permission on that address, else ErrorSendAsDenied. An app with the Mail.Send role sends as any
 * mailbox of the tenant through that mailbox; `from` another address needs the mailbox's user to
 * hold Send As on it. Recipients must be addresses; the mailbox's message rate applies. The sent
 * message goes to the sending mailbox's Sent Items (unless saveToSentItems is false) and to the
 * Inbox of every recipient that is a sandbox mailbox, Bcc hidden from them; anyone else is
 * outside the sandbox: the relay (mail-relay.ts) delivers to those in its domains, and for the
 * rest only Sent Items shows it went.
 */

const ADDRESS = /^[^\s@<>()[\]",;:]+@[^\s@<>()[\]",;:]+$/;

/** The user who acts: the signed-in one, or for an app the user whose mailbox it sends through (a shared mailbox has none). */
function actingUserId(env: GraphEnvironment, caller: GraphCaller, mailbox: Mailbox): string | undefined {
  if (caller.kind === 'delegated') return caller.user.id;
  return env.context.state.userByIdOrUpn(mailbox.tenantId, mailbox.address)?.id;
}

/** Who the message is from, once Exchange's rules allow it. */
function authorizedFrom(env: GraphEnvironment, caller: GraphCaller, mailbox: Mailbox, requested: EmailAddress | null): EmailAddress {
  const fromAddress = requested !== null && requested.address !== '' ? requested.address : mailbox.address;
  const from = withName(env.context.state, { name: requested?.name ?? '', address: fromAddress });
  const actor = actingUserId(env, caller, mailbox);
  if (caller.kind === 'delegated') {
    const own = (address: string) => sameText(address, caller.user.userPrincipalName);
    if (!(own(mailbox.address) && own(fromAddress)) && !caller.scopes.has('Mail.Send.Shared')) throw graphErrors.mailAccessDenied();
    if (own(fromAddress)) return from;
  } else if (sameText(fromAddress, mailbox.address)) {
    return from;
  }
  const fromMailbox = env.context.state.mailboxByAddress(mailbox.tenantId, fromAddress);
  if (actor === undefined || !(fromMailbox?.sendAs ?? []).includes(actor)) throw graphErrors.sendAsDenied();
  return from;
}

function checkRecipients(content: MessageContent): void {
  const all = [...content.toRecipients, ...content.ccRecipients, ...content.bccRecipients];
  if (all.length === 0) throw graphErrors.noRecipients();
  const unresolved = all.find((r) => !ADDRESS.test(r.address));
  if (unresolved) throw graphErrors.recipientNotResolved(unresolved.address);
}

interface Submission {
  content: MessageContent;
  internetMessageId: string | null;
  attachments: StoredAttachment[];
  saveToSentItems: boolean;
  conversationId?: string;
}

/** Sends: checks, the message rate, Sent Items, the recipients' Inboxes, the relay for the others. */
function submit(env: GraphEnvironment, caller: GraphCaller, mailbox: Mailbox, submission: Submission): void {
  const { state } = env.context;
  const from = authorizedFrom(env, caller, mailbox, submission.content.from);
  checkRecipients(submission.content);
  env.throttle.submit(mailbox.address);
  const now = env.context.now();
  const sent = newMessage(state, {
    content: submission.content,
    internetMessageId: submission.internetMessageId ?? newInternetMessageId(),
    attachments: submission.attachments,
    folder: 'sentitems',
    from,
    sender: from,
    isDraft: false,
    isRead: true,
    now,
    sentDateTime: now,
    ...(submission.conversationId === undefined ? {} : { conversationId: submission.conversationId }),
  });
  if (submission.saveToSentItems) env.store.add(mailbox, sent);
  const recipients = [...sent.toRecipients, ...sent.ccRecipients, ...sent.bccRecipients].map((r) => r.address);
  const addresses = new Set(recipients.map((a) => a.toLowerCase()));
  const inSandbox = state.data.mailboxes.filter((m) => addresses.has(m.address.toLowerCase()));
  for (const recipient of inSandbox) {
    env.store.add(recipient, copyOf(sent, { folder: 'inbox', isRead: false, bccRecipients: [] }));
  }
  const sandboxAddresses = new Set(inSandbox.map((m) => m.address.toLowerCase()));
  env.relay.relay(mailbox.address, sent, recipients.filter((a) => !sandboxAddresses.has(a.toLowerCase())));
}

function sendMailParameters(json: unknown): { message: MessageInput; saveToSentItems: boolean } {
  const fields = typeProperties(json, ['message', 'saveToSentItems'], 'sendMail', (name) => graphErrors.unknownParameter(name, 'sendMail'));
  const save = fields.get('saveToSentItems');
  if (save !== undefined && save !== null && typeof save !== 'boolean') throw graphErrors.bodyValueInvalid(JSON.stringify(save), 'Edm.Boolean');
  return { message: parseMessage(fields.get('message') ?? {}), saveToSentItems: save !== false };
}

export function sendMailRoutes(env: GraphEnvironment): GraphRoute[] {
  const { state } = env.context;

  const sendMail = async ({ caller, json, mime }: GraphRequest, who: string | undefined): Promise<GraphResult> => {
    const target = authorizedMailbox(state, caller, who, SEND_MAIL);
    const { message, saveToSentItems } = mime === undefined ? sendMailParameters(json) : { message: await readMimeMessage(mime), saveToSentItems: true };
    const now = env.context.now();
    submit(env, caller, target.mailbox, {
      content: message,
      internetMessageId: message.internetMessageId,
      attachments: message.attachments.map((a) => newAttachment(a, now)),
      saveToSentItems,
    });
    return { status: 202 };
  };

  const sendDraft = ({ caller }: GraphRequest, who: string | undefined, [id = '']: string[]): GraphResult => {
    const target = authorizedMailbox(state, caller, who, SEND_MAIL);
    const draft = findMessage(env.store, target.mailbox, id);
    if (!draft.isDraft) throw graphErrors.notADraft();
    submit(env, caller, target.mailbox, { content: draft, internetMessageId: draft.internetMessageId, attachments: draft.attachments, saveToSentItems: true, conversationId: draft.conversationId });
    env.store.remove(target.mailbox, draft.id);
    return { status: 202 };
  };

  return [...mailboxRoutes('POST', '/sendMail', sendMail, 'json-or-mime'), ...mailboxRoutes('POST', '/messages/([^/()]+)/send', sendDraft)];
}

