import { createHash } from 'node:crypto';
import { z } from 'zod';
import { answering, CONTROL_PREFIX, ControlError, parse } from '../identity/control-api.js';
import type { Route } from '../identity/http.js';
import type { LimitStats, MailboxLimits } from './mailbox-limits.js';
import type { MailRelayOptions, RelayStats } from './mail-relay.js';
import type { EmailAddress, MailFolderName, MessageHeader, StoredMessage } from './mail-store.js';
import { graphDate } from './message-entity.js';
import { sameText } from './mailboxes.js';
import type { GraphEnvironment } from './router.js';
import type { NotificationStats } from './subscription-registry.js';

/**
 * The control API's mail calls (JSON under /_sandbox on the HTTPS listener, beside the identity
 * ones): what a mailbox holds, the per-mailbox limits, the relay, and what the sandbox Graph counted.
 * - `GET /mailboxes/{address}/messages?folder=inbox|sentitems|drafts` → MessageView[], newest first
 * - `GET /graph/limits`, `PUT /graph/limits` `{ concurrent?, sendsPerMinute? }` (null = no limit) → MailboxLimits
 * - `PUT /graph/relay` `{ lmtp: { host, port }, domains }` → MailRelayOptions; `DELETE /graph/relay` switches it off
 * - `GET /graph/stats` → GraphStats: the limits' counts (mailbox-limits.ts), the relay's (mail-relay.ts)
 *   and the change notifications' (subscription-registry.ts)
 * The receiving side's calls (injected mail, subscriptions) are receive-control.ts.
 */

const limit = z.number().int().positive().nullable().optional();
export const mailboxLimitsInput = z.object({ concurrent: limit, sendsPerMinute: limit });
export type MailboxLimitsInput = z.input<typeof mailboxLimitsInput>;

const mailRelayInput = z.object({
  lmtp: z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }),
  domains: z.array(z.string().min(1)),
});

export type GraphStats = LimitStats & RelayStats & { notifications: NotificationStats };

const FOLDERS: readonly MailFolderName[] = ['inbox', 'sentitems', 'drafts', 'deleteditems', 'junkemail', 'archive'];

export interface AttachmentView {
  id: string;
  name: string;
  contentType: string;
  size: number;
  isInline: boolean;
  /** Hex SHA-256 of the bytes, to compare with what was sent without carrying them. */
  sha256: string;
}

/** A message as a test wants to see it: what was sent and received, attachments without their bytes. */
export interface MessageView {
  id: string;
  folder: MailFolderName;
  internetMessageId: string;
  subject: string;
  from: EmailAddress | null;
  sender: EmailAddress | null;
  toRecipients: EmailAddress[];
  ccRecipients: EmailAddress[];
  bccRecipients: EmailAddress[];
  replyTo: EmailAddress[];
  internetMessageHeaders: MessageHeader[];
  body: { contentType: 'text' | 'html'; content: string };
  attachments: AttachmentView[];
  isDraft: boolean;
  isRead: boolean;
  sentDateTime: string | null;
  receivedDateTime: string;
}

function messageView(message: StoredMessage): MessageView {
  return {
    id: message.id,
    folder: message.folder,
    internetMessageId: message.internetMessageId,
    subject: message.subject,
    from: message.from,
    sender: message.sender,
    toRecipients: message.toRecipients,
    ccRecipients: message.ccRecipients,
    bccRecipients: message.bccRecipients,
    replyTo: message.replyTo,
    internetMessageHeaders: message.internetMessageHeaders,
    body: message.body,
    attachments: message.attachments.map((a) => ({
      id: a.id,
      name: a.name,
      contentType: a.contentType,
      size: a.content.length,
      isInline: a.isInline,
      sha256: createHash('sha256').update(a.content).digest('hex'),
    })),
    isDraft: message.isDraft,
    isRead: message.isRead,
    sentDateTime: message.sentDateTime === null ? null : graphDate(message.sentDateTime),
    receivedDateTime: graphDate(message.receivedDateTime),
  };
}

export function mailControlRoutes(env: GraphEnvironment): Route[] {
  const { state } = env.context;
  const messages = (address: string, folder: string | null): MessageView[] => {
    const mailbox = state.data.mailboxes.find((m) => sameText(m.address, address));
    if (!mailbox) throw new ControlError(404, `No mailbox ${address}.`);
    if (folder !== null && !(FOLDERS as readonly string[]).includes(folder)) throw new ControlError(400, `folder must be one of ${FOLDERS.join(', ')}.`);
    return env.store.list(mailbox, folder ?? undefined).map(messageView);
  };
  const setLimits = (body: unknown): MailboxLimits => {
    const input = parse(mailboxLimitsInput, body);
    return env.throttle.setLimits({
      ...(input.concurrent === undefined ? {} : { concurrent: input.concurrent }),
      ...(input.sendsPerMinute === undefined ? {} : { sendsPerMinute: input.sendsPerMinute }),
    });
  };
  const setRelay = (body: unknown): MailRelayOptions | null => env.relay.configure(parse(mailRelayInput, body));
  const route = (method: string, path: string, handler: Route['handler']): Route => ({ method, path: new RegExp(`^${CONTROL_PREFIX}${path}$`), handler });
  return [
    route('GET', '/mailboxes/([^/]+)/messages', answering((r) => messages(r.params[0] ?? '', r.url.searchParams.get('folder')))),
    route('GET', '/graph/limits', answering(() => env.throttle.currentLimits())),
    route('PUT', '/graph/limits', answering((r) => setLimits(r.json))),
    route('PUT', '/graph/relay', answering((r) => setRelay(r.json))),
    route('DELETE', '/graph/relay', answering(() => {
      env.relay.configure(null);
    })),
    route('GET', '/graph/stats', answering((): GraphStats => ({ ...env.throttle.stats(), ...env.relay.stats(), notifications: env.subscriptions.stats() }))),
  ];
}
