import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { derivedId, ID_PATTERN } from '../../src/domain/ids.js';
import { previewOf, type InboundMessage } from '../../src/domain/inbound-message.js';
import type { Mailbox } from '../../src/domain/mailbox.js';
import {
  atOffset,
  DEFAULT_RECEIVE_POLICY,
  newReceiveState,
  nextPollAt,
  pollOffsetSeconds,
  retryPollAt,
  subscriptionDue,
  type ReceiveState,
} from '../../src/domain/receive-state.js';
import { receivingStatus } from '../../src/domain/receiving-status.js';
import { attachmentsOf, receivedEventData } from '../../src/receiving/ingest-message.js';
import { clientStateHashMatches, graphFolder, hashClientState } from '../../src/receiving/graph-subscriptions.js';

/** Receiving's pure parts: when a mailbox is looked at, message ids, event data, clientState checks. */

const mailbox: Mailbox = {
  id: 'mbx_01JABCDEFGHJKMNPQRSTVWXYZ0',
  customerId: 'acme',
  connectionId: 'con_01JABCDEFGHJKMNPQRSTVWXYZ0',
  address: 'support@contoso.example',
  kind: 'shared',
  sendTransport: 'graph',
  receiveTransport: 'imap',
  createdAt: '2026-11-23T10:00:00.000Z',
  updatedAt: '2026-11-23T10:00:00.000Z',
};
const at = (iso: string) => new Date(iso);

function state(overrides: Partial<ReceiveState> = {}): ReceiveState {
  const fresh = newReceiveState(mailbox, at('2026-11-23T10:00:00.000Z'));
  if (!fresh) throw new Error('the mailbox receives');
  return { ...fresh, ...overrides };
}

describe('receive schedule', () => {
  it('a new mailbox is due at once; one that does not receive has no state', () => {
    expect(state().dueAt).toBe('2026-11-23T10:00:00.000Z');
    expect(newReceiveState({ ...mailbox, receiveTransport: 'none' }, new Date())).toBeUndefined();
  });

  it('after the first look the mailbox moves to its own second of the minute', () => {
    const next = nextPollAt(state(), mailbox, DEFAULT_RECEIVE_POLICY, at('2026-11-23T10:00:02.000Z'), false);
    expect(next.getUTCSeconds()).toBe(pollOffsetSeconds(mailbox.id));
    expect(next.getTime() - Date.parse('2026-11-23T10:01:02.000Z')).toBeGreaterThanOrEqual(0);
    expect(next.getTime() - Date.parse('2026-11-23T10:01:02.000Z')).toBeLessThan(60_000);
  });

  it('then keeps its beat: the time a look takes does not push the next one back', () => {
    const polled = state({ lastSuccessAt: '2026-11-23T10:00:40.000Z', dueAt: '2026-11-23T10:01:17.000Z' });
    expect(nextPollAt(polled, mailbox, DEFAULT_RECEIVE_POLICY, at('2026-11-23T10:01:29.000Z'), false).toISOString()).toBe('2026-11-23T10:02:17.000Z');
    // Queued a little early: still the next beat.
    expect(nextPollAt(polled, mailbox, DEFAULT_RECEIVE_POLICY, at('2026-11-23T10:01:14.000Z'), false).toISOString()).toBe('2026-11-23T10:02:17.000Z');
    // A look that ran late, or out of turn long after its due time, goes back to the mailbox's own second.
    const late = nextPollAt(polled, mailbox, DEFAULT_RECEIVE_POLICY, at('2026-11-23T10:04:00.000Z'), false);
    expect(late).toEqual(atOffset(at('2026-11-23T10:05:00.000Z'), mailbox.id));
    expect(late.getUTCSeconds()).toBe(pollOffsetSeconds(mailbox.id));
  });

  it('looks again at once while messages wait, and on the catch-up beat while Graph notifies', () => {
    const now = at('2026-11-23T10:01:20.000Z');
    const polled = state({ lastSuccessAt: '2026-11-23T10:00:20.000Z', dueAt: '2026-11-23T10:01:17.000Z' });
    expect(nextPollAt(polled, mailbox, DEFAULT_RECEIVE_POLICY, now, true)).toEqual(now);
    expect(nextPollAt({ ...polled, mode: 'notifications' }, mailbox, DEFAULT_RECEIVE_POLICY, now, false).toISOString()).toBe('2026-11-23T10:16:17.000Z');
    expect(nextPollAt(polled, { receive: { intervalSeconds: 300 } }, DEFAULT_RECEIVE_POLICY, now, false).toISOString()).toBe('2026-11-23T10:06:17.000Z');
  });

  it('backs off after failures, never sooner than the mailbox interval, never longer than the cap', () => {
    const now = at('2026-11-23T10:00:00.000Z');
    const delay = (failures: number, random: number) => retryPollAt(failures, mailbox, DEFAULT_RECEIVE_POLICY, now, () => random).getTime() - now.getTime();
    expect(delay(1, 0)).toBe(60_000);
    expect(delay(3, 1)).toBe(4 * 60_000);
    expect(delay(20, 1)).toBe(30 * 60_000);
    expect(delay(20, 0)).toBe(15 * 60_000);
  });

  it('spreads a thousand mailboxes over the minute', () => {
    const seconds = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const second = pollOffsetSeconds(`mbx_${String(i).padStart(26, '0')}`);
      seconds.set(second, (seconds.get(second) ?? 0) + 1);
    }
    expect(seconds.size).toBe(60);
    expect(Math.max(...seconds.values())).toBeLessThan(40);
    expect(atOffset(at('2026-11-23T10:00:59.500Z'), mailbox.id).getTime()).toBeGreaterThanOrEqual(Date.parse('2026-11-23T10:00:59.500Z'));
  });

  it('a subscription is renewed within a day of its expiry', () => {
    const now = at('2026-11-23T10:00:00.000Z');
    const subscription = (expiresAt: string) => ({ id: 's', expiresAt, clientStateHash: 'h' });
    expect(subscriptionDue(undefined, DEFAULT_RECEIVE_POLICY, now)).toBe(true);
    expect(subscriptionDue(subscription('2026-11-25T10:00:00.000Z'), DEFAULT_RECEIVE_POLICY, now)).toBe(false);
    expect(subscriptionDue(subscription('2026-11-24T09:00:00.000Z'), DEFAULT_RECEIVE_POLICY, now)).toBe(true);
  });

  it('the status shows the mode, the next look and the earliest subscription expiry, no cursor', () => {
    const status = receivingStatus(
      state({
        mode: 'notifications',
        imap: { Inbox: { uidValidity: '1', lastUid: 9 } },
        subscriptions: { Inbox: { id: 'a', expiresAt: '2026-11-29T00:00:00.000Z', clientStateHash: 'x' }, Archive: { id: 'b', expiresAt: '2026-11-28T00:00:00.000Z', clientStateHash: 'y' } },
      }),
    );
    expect(status).toEqual({ transport: 'imap', mode: 'notifications', subscriptionExpiresAt: '2026-11-28T00:00:00.000Z', nextPollAt: '2026-11-23T10:00:00.000Z', consecutiveFailures: 0 });
  });
});

describe('received message ids', () => {
  it('are derived from the mailbox and fingerprint: the same message is the same id', () => {
    const id = derivedId('rcv', ['acme', mailbox.id, 'graph:AAMk1']);
    expect(id).toMatch(ID_PATTERN.rcv);
    expect(derivedId('rcv', ['acme', mailbox.id, 'graph:AAMk1'])).toBe(id);
    expect(derivedId('rcv', ['acme', mailbox.id, 'graph:AAMk2'])).not.toBe(id);
    expect(derivedId('rcv', ['acme', 'mbx_other', 'graph:AAMk1'])).not.toBe(id);
    // Parts are separated, so moving a character between them changes the id.
    expect(derivedId('rcv', ['ab', 'c'])).not.toBe(derivedId('rcv', ['a', 'bc']));
  });
});

describe('message.received data', () => {
  const mime = [
    'From: "Ana Lima" <ana@customer.example>',
    'Sender: bounces@lists.example',
    'To: support@contoso.example, Team: x@contoso.example, y@contoso.example;',
    'Cc: boss@customer.example',
    'Reply-To: replies@customer.example',
    'Subject: =?UTF-8?B?T3JkZXIgIzEyIOKAkyBob2xh?=',
    'Date: Mon, 23 Nov 2026 09:59:00 +0000',
    'Message-ID: <m1@customer.example>',
    'In-Reply-To: <a0@contoso.example>',
    'References: <root@contoso.example> <a0@contoso.example>',
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Hello,\n\n  where is   my order?\n${'x'.repeat(400)}`,
    '--b',
    'Content-Type: application/pdf; name="invoice.pdf"',
    'Content-Disposition: attachment; filename="invoice.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('%PDF-1.7 tiny').toString('base64'),
    '--b--',
    '',
  ].join('\r\n');

  it('carries addresses (groups flattened), threading headers, a preview and attachment metadata', async () => {
    const parsed = await simpleParser(Buffer.from(mime));
    const row: InboundMessage = {
      id: derivedId('rcv', ['acme', mailbox.id, 'imap:x']),
      customerId: 'acme',
      connectionId: mailbox.connectionId,
      mailboxId: mailbox.id,
      mailbox: mailbox.address,
      transport: 'imap',
      folder: 'Inbox',
      eventId: 'evt_01JABCDEFGHJKMNPQRSTVWXYZ0',
      emitted: false,
      receivedAt: '2026-11-23T10:00:05.000Z',
      size: mime.length,
      internetMessageId: '<m1@customer.example>',
      blobName: 'x',
      rawExpiresAt: '2026-11-30T10:00:05.000Z',
      attachments: attachmentsOf(parsed),
    };
    const data = receivedEventData(row, parsed, 'https://connector.example/raw');
    expect(data).toMatchObject({
      from: { address: 'ana@customer.example', name: 'Ana Lima' },
      sender: { address: 'bounces@lists.example' },
      to: [{ address: 'support@contoso.example' }, { address: 'x@contoso.example' }, { address: 'y@contoso.example' }],
      cc: [{ address: 'boss@customer.example' }],
      replyTo: [{ address: 'replies@customer.example' }],
      subject: 'Order #12 – hola',
      date: '2026-11-23T09:59:00.000Z',
      internetMessageId: '<m1@customer.example>',
      inReplyTo: '<a0@contoso.example>',
      references: ['<root@contoso.example>', '<a0@contoso.example>'],
      autoSubmitted: 'auto-replied',
      hasAttachments: true,
      attachments: [{ index: 0, filename: 'invoice.pdf', contentType: 'application/pdf', size: 13, inline: false }],
      raw: { url: 'https://connector.example/raw', expiresAt: '2026-11-30T10:00:05.000Z' },
    });
    expect(data.preview.startsWith('Hello, where is my order? xxx')).toBe(true);
    expect(data.preview.length).toBe(255);
  });

  it('a message made to be huge still fits one Table Storage property, and says what was cut', async () => {
    const recipients = Array.from({ length: 600 }, (_, i) => `"${'N'.repeat(200)}" <r${String(i)}@${'d'.repeat(60)}.example>`).join(', ');
    const parts = Array.from({ length: 500 }, (_, i) => `--b\r\nContent-Type: text/plain; name="${'f'.repeat(300)}${String(i)}.txt"\r\nContent-Disposition: attachment\r\n\r\nx\r\n`).join('');
    const huge = `From: a@b.example\r\nTo: ${recipients}\r\nCc: ${recipients}\r\nSubject: ${'S'.repeat(40_000)}\r\nMessage-ID: <${'m'.repeat(2000)}@x>\r\nReferences: ${Array.from({ length: 300 }, (_, i) => `<${String(i)}${'r'.repeat(900)}@x>`).join(' ')}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`;
    const parsed = await simpleParser(Buffer.from(huge));
    const row: InboundMessage = {
      id: derivedId('rcv', ['acme', mailbox.id, 'imap:huge']), customerId: 'acme', connectionId: mailbox.connectionId, mailboxId: mailbox.id, mailbox: mailbox.address,
      transport: 'imap', folder: 'Inbox', eventId: 'evt_01JABCDEFGHJKMNPQRSTVWXYZ0', emitted: false, receivedAt: '2026-11-23T10:00:05.000Z', size: huge.length,
      internetMessageId: (parsed.messageId ?? '').slice(0, 250), blobName: 'x', rawExpiresAt: '2026-11-30T10:00:05.000Z', attachments: attachmentsOf(parsed), attachmentsTruncated: true,
    };
    const data = receivedEventData(row, parsed, 'https://connector.example/raw');
    expect(JSON.stringify(data).length).toBeLessThan(30_000);
    expect(JSON.stringify(row).length).toBeLessThan(30_000);
    expect([...(data.truncated ?? [])].sort()).toEqual(['attachments', 'cc', 'references', 'subject', 'to']);
    expect(data.to).toHaveLength(20);
    expect(data.attachments).toHaveLength(30);
    expect(data.references).toHaveLength(10);
    expect(data.references.at(-1)?.startsWith('<299')).toBe(true);
  });

  it('a preview collapses whitespace and stays whole when short', () => {
    expect(previewOf(' a \n\n b\t')).toBe('a b');
    expect(previewOf(undefined)).toBe('');
  });
});

describe('Graph subscriptions', () => {
  it('check a clientState by its hash, in constant time, refusing a missing one', () => {
    const hash = hashClientState('s3cret');
    expect(clientStateHashMatches(hashClientState('s3cret'), hash)).toBe(true);
    expect(clientStateHashMatches(hashClientState('s3creT'), hash)).toBe(false);
    expect(clientStateHashMatches(undefined, hash)).toBe(false);
    expect(clientStateHashMatches('', hash)).toBe(false);
  });

  it('name well-known folders as Graph does and keep folder ids as they are', () => {
    expect(graphFolder('Inbox')).toBe('inbox');
    expect(graphFolder('JunkEmail')).toBe('junkemail');
    expect(graphFolder('AAMkAGI2TAAA=')).toBe('AAMkAGI2TAAA=');
  });
});
