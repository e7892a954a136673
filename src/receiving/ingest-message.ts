import type { AddressObject, ParsedMail } from 'mailparser';
import { derivedId, newId } from '../domain/ids.js';
import { previewOf, type InboundAttachment, type InboundMessage, type MessageReceivedData } from '../domain/inbound-message.js';
import type { ReceiveTransport } from '../domain/receive-state.js';
import type { Tags } from '../domain/tags.js';
import type { NewEvent } from '../events/record-event.js';
import type { FoundMessage } from '../mail/mail-receiver.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError, UNCHANGED } from '../store/table-repository.js';
import { InboxContent } from './inbox-content.js';

/**
 * Turns one found message into one message.received event, however many times it is found. The
 * message's id comes from its mailbox and fingerprint, so every path that finds it (an IMAP look,
 * a Graph notification and the delta round after it, a resync) meets the same row:
 *
 * 1. a row already marked emitted: a duplicate, nothing is downloaded;
 * 2. otherwise the MIME is downloaded and kept in Blob storage (under a name of the message's own,
 *    so a repeat overwrites the same blob), then the row is created with the event's id;
 * 3. the event is recorded under that id (recording an id twice stores and delivers it once),
 *    then the row is marked emitted.
 *
 * A worker that stops anywhere in between leaves a row without `emitted`; the next find records
 * the event under the row's id, so the vendor still gets it exactly once.
 */

export interface IngestDeps {
  inbox: Repositories['inbox'];
  content: InboxContent;
  recordEvent(event: NewEvent): Promise<unknown>;
  /** The API URL the whole message is downloaded from. */
  rawUrl(customerId: string, connectionId: string, messageId: string): string;
  retentionMs: number;
  now(): Date;
}

/** The mailbox a message arrived in, as the event names it. */
export interface IngestMailbox {
  customerId: string;
  connectionId: string;
  mailboxId: string;
  address: string;
  transport: ReceiveTransport;
  tags?: Tags;
}

export type IngestOutcome = 'new' | 'duplicate';

export function inboundMessageId(mailbox: Pick<IngestMailbox, 'customerId' | 'mailboxId'>, fingerprint: string): string {
  return derivedId('rcv', [mailbox.customerId, mailbox.mailboxId, fingerprint]);
}

export async function ingestMessage(deps: IngestDeps, mailbox: IngestMailbox, found: FoundMessage): Promise<IngestOutcome> {
  const id = inboundMessageId(mailbox, found.fingerprint);
  const key = keys.inboundMessage(mailbox.customerId, id);
  const existing = (await deps.inbox.get(key))?.value;
  if (existing?.emitted) return 'duplicate';

  const raw = await found.raw();
  // Loaded on first use: mailparser and what it loads are a large share of every instance's start (bench/cold-start.bench.ts).
  const { simpleParser } = await import('mailparser');
  const parsed = await simpleParser(raw, { skipImageLinks: true });
  let row = existing;
  if (!row) {
    const receivedAt = deps.now();
    const blobName = InboxContent.blobName(receivedAt, mailbox.customerId, id);
    await deps.content.put(blobName, raw);
    const fresh: InboundMessage = {
      id,
      customerId: mailbox.customerId,
      connectionId: mailbox.connectionId,
      mailboxId: mailbox.mailboxId,
      mailbox: mailbox.address,
      transport: mailbox.transport,
      folder: found.folder,
      eventId: newId('evt', receivedAt.getTime()),
      emitted: false,
      receivedAt: receivedAt.toISOString(),
      size: raw.length,
      ...(parsed.messageId !== undefined && { internetMessageId: parsed.messageId.slice(0, CAP.id) }),
      ...(parsed.subject !== undefined && { subject: parsed.subject.slice(0, CAP.subject) }),
      blobName,
      rawExpiresAt: new Date(receivedAt.getTime() + deps.retentionMs).toISOString(),
      attachments: attachmentsOf(parsed),
      ...(parsed.attachments.length > CAP.attachments && { attachmentsTruncated: true }),
    };
    try {
      await deps.inbox.create(key, fresh);
      row = fresh;
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      // Found by two paths at once: the other one's row (and event id) is the message's.
      row = (await deps.inbox.get(key))?.value;
      if (!row) throw error;
      if (row.emitted) return 'duplicate';
    }
  }

  await deps.recordEvent({
    id: row.eventId,
    occurredAt: row.receivedAt,
    type: 'message.received',
    customerId: mailbox.customerId,
    connectionId: mailbox.connectionId,
    ...(mailbox.tags !== undefined && { tags: mailbox.tags }),
    data: receivedEventData(row, parsed, deps.rawUrl(mailbox.customerId, mailbox.connectionId, row.id)),
  });
  await deps.inbox.update(key, (current) => (current && !current.emitted ? { ...current, emitted: true } : UNCHANGED));
  return 'new';
}

/**
 * An event (and a row) is one Table Storage property of at most 32K characters: anything a sender
 * controls is capped, and `truncated` names what was cut. The whole message is always at raw.url.
 */
const CAP = { to: 20, cc: 15, replyTo: 5, name: 64, address: 254, references: 10, id: 250, subject: 500, attachments: 30, filename: 120, header: 100 };

export function receivedEventData(row: InboundMessage, parsed: ParsedMail, rawUrl: string): MessageReceivedData {
  const truncated: MessageReceivedData['truncated'] = [];
  const capped = (field: 'to' | 'cc' | 'replyTo', list: { address: string; name?: string }[]) => {
    if (list.length > CAP[field]) truncated.push(field);
    return list.slice(0, CAP[field]);
  };
  const from = addresses(parsed.from)[0];
  const sender = addresses(headerAddress(parsed, 'sender'))[0];
  const autoSubmitted = parsed.headers.get('auto-submitted');
  const references = parsed.references === undefined ? [] : Array.isArray(parsed.references) ? parsed.references : [parsed.references];
  if (references.length > CAP.references) truncated.push('references');
  if (row.attachmentsTruncated === true) truncated.push('attachments');
  const subject = parsed.subject ?? '';
  if (subject.length > CAP.subject) truncated.push('subject');
  return {
    messageId: row.id,
    mailboxId: row.mailboxId,
    mailbox: row.mailbox,
    transport: row.transport,
    folder: row.folder,
    ...(from && { from }),
    ...(sender && { sender }),
    replyTo: capped('replyTo', addresses(parsed.replyTo)),
    to: capped('to', addresses(parsed.to)),
    cc: capped('cc', addresses(parsed.cc)),
    subject: subject.slice(0, CAP.subject),
    ...(parsed.date && !Number.isNaN(parsed.date.getTime()) && { date: parsed.date.toISOString() }),
    receivedAt: row.receivedAt,
    size: row.size,
    ...(row.internetMessageId !== undefined && { internetMessageId: row.internetMessageId }),
    ...(parsed.inReplyTo !== undefined && { inReplyTo: parsed.inReplyTo.slice(0, CAP.id) }),
    // The most recent references are the ones that thread a reply.
    references: references.slice(-CAP.references).map((id) => id.slice(0, CAP.id)),
    ...(typeof autoSubmitted === 'string' && { autoSubmitted: autoSubmitted.slice(0, CAP.header) }),
    preview: previewOf(parsed.text),
    hasAttachments: row.attachments.some((attachment) => !attachment.inline),
    attachments: row.attachments,
    raw: { url: rawUrl, expiresAt: row.rawExpiresAt },
    ...(truncated.length > 0 && { truncated }),
  };
}

/** The first attachments' metadata (CAP.attachments of them; the rest are in the MIME). */
export function attachmentsOf(parsed: ParsedMail): InboundAttachment[] {
  return parsed.attachments.slice(0, CAP.attachments).map((attachment, index) => ({
    index,
    ...(attachment.filename !== undefined && { filename: attachment.filename.slice(0, CAP.filename) }),
    contentType: attachment.contentType.slice(0, CAP.header),
    size: attachment.size,
    ...(attachment.contentId !== undefined && { contentId: attachment.contentId.slice(0, CAP.id) }),
    inline: attachment.contentDisposition === 'inline' || attachment.related === true,
  }));
}

function headerAddress(parsed: ParsedMail, name: string): AddressObject | undefined {
  const value = parsed.headers.get(name);
  return typeof value === 'object' && 'value' in value ? (value as AddressObject) : undefined;
}

function addresses(field: AddressObject | AddressObject[] | undefined): { address: string; name?: string }[] {
  if (!field) return [];
  const objects = Array.isArray(field) ? field : [field];
  return objects.flatMap((object) =>
    object.value.flatMap(function flatten(entry): { address: string; name?: string }[] {
      if (entry.group) return entry.group.flatMap(flatten);
      if (!entry.address) return [];
      return [{ address: entry.address.slice(0, CAP.address), ...(entry.name !== '' && { name: entry.name.slice(0, CAP.name) }) }];
    }),
  );
}
