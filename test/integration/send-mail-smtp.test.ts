import { createHash, randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { OutboundMessage } from '../../src/domain/outbound-message.js';
import type { MailSender } from '../../src/mail/mail-transport.js';
import type { Directory } from '../support/connect-environment.js';
import { startMailServerEnvironment, type MailServerEnvironment, type SendTestKit } from '../support/send-environment.js';
import { delegatedTokens, mailbox, withImap } from '../support/test-mail-server.js';
import { waitFor } from '../support/wait.js';

/**
 * Sending by SMTP submission with XOAUTH2 against the real Postfix and Dovecot, with tokens from
 * the sandbox identity platform (the mail server trusts its signing key): delegated (SMTP.Send) and
 * app-only (SMTP.SendAsApp) connections, the message arriving in the recipient's Dovecot mailbox
 * with its headers and attachments, and the Sent Items check over IMAP after a crash.
 */

const mailServer = inject('mailServer');
const CUSTOMER = 'smtp-sender';
const tokens = delegatedTokens();
let kit: SendTestKit;
let contoso: Directory;
let running: MailServerEnvironment | undefined;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  if (!mailServer) return;
  await tokens.load();
  running = await startMailServerEnvironment(mailServer, { directoryName: 'Contoso SMTP' });
  ({ kit, directory: contoso } = running);
}, 60_000);

afterAll(async () => {
  await running?.stop();
});

/** The messages in a Dovecot mailbox's folder with this Message-ID, parsed. */
async function received(address: string, internetMessageId: string, folder = 'INBOX') {
  return withImap(address, await tokens.delegated(address), async (client) => {
    const lock = await client.getMailboxLock(folder);
    try {
      const uids = await client.search({ header: { 'message-id': internetMessageId } }, { uid: true });
      const parsed = [];
      for (const uid of uids || []) {
        const fetched = await client.fetchOne(String(uid), { source: true }, { uid: true });
        if (fetched && fetched.source) parsed.push(await simpleParser(fetched.source));
      }
      return parsed;
    } finally {
      lock.release();
    }
  });
}

describe('sending by SMTP with XOAUTH2', () => {
  it('delegated (SMTP.Send): the message arrives with threading headers, X- headers and attachments; Sent Items keeps a copy', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection, upn } = await kit.delegated(CUSTOMER, contoso.tenant.id, contoso.domain, { send: 'smtp', receive: 'imap' });
    const to = mailbox('smtp-to');
    const file = randomBytes(200_000);
    const response = await kit.api(`v1/customers/${CUSTOMER}/connections/${connection.id}/messages`, {
      body: {
        to: [{ address: to, name: 'Recipient' }],
        subject: 'Re: your question',
        text: 'Plain answer',
        html: '<p>HTML answer</p>',
        inReplyTo: '<question-1@customer.example>',
        references: ['<thread-0@customer.example>', '<question-1@customer.example>'],
        headers: { 'X-Ticket-Id': '7', 'List-Unsubscribe': '<mailto:unsubscribe@vendor.example>' },
        attachments: [{ filename: 'data.bin', contentType: 'application/octet-stream', content: file.toString('base64') }],
      },
    });
    expect(response.status).toBe(202);
    const queued = response.body as OutboundMessage;
    const sent = await kit.settled(CUSTOMER, queued.id);
    expect(sent).toMatchObject({ status: 'sent', transport: 'smtp', attempts: [{ outcome: 'sent', transport: 'smtp' }] });

    const [mail, ...more] = await waitFor(async () => {
      const found = await received(to, queued.internetMessageId);
      return found.length > 0 && found;
    });
    expect(more).toHaveLength(0);
    expect(mail?.messageId).toBe(queued.internetMessageId);
    expect(mail?.from?.value[0]?.address?.toLowerCase()).toBe(upn.toLowerCase());
    expect(mail?.inReplyTo).toBe('<question-1@customer.example>');
    expect(mail?.references).toEqual(['<thread-0@customer.example>', '<question-1@customer.example>']);
    expect(mail?.headers.get('x-ticket-id')).toBe('7');
    expect(mail?.text?.trim()).toBe('Plain answer');
    expect(mail?.html).toContain('<p>HTML answer</p>');
    expect(mail?.attachments.map((a) => [a.filename, sha256(a.content)])).toEqual([['data.bin', sha256(file)]]);
    // Exchange keeps submitted mail in Sent Items; so does the test server, which is what the crash check searches.
    expect(await waitFor(async () => (await received(upn, queued.internetMessageId, 'Sent Items')).length === 1)).toBe(true);
  });

  it('app-only (SMTP.SendAsApp): sends as the connection\'s mailbox', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const from = mailbox('smtp-app');
    const to = mailbox('smtp-app-to');
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'smtp', receive: 'imap' }, [from]);
    const response = await kit.api(`v1/customers/${CUSTOMER}/connections/${connection.id}/messages`, { body: { to: [to], subject: 'From the app', text: 'app-only' } });
    expect(response.status).toBe(202);
    const sent = await kit.settled(CUSTOMER, (response.body as OutboundMessage).id);
    expect(sent.status).toBe('sent');
    const [mail] = await waitFor(async () => {
      const found = await received(to, sent.internetMessageId);
      return found.length > 0 && found;
    });
    expect(mail?.from?.value[0]?.address).toBe(from);
    expect(mail?.text?.trim()).toBe('app-only');
  });

  it('a worker that dies after the server took the message: IMAP finds it in Sent Items, so it is not sent twice', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const from = mailbox('smtp-crash');
    const to = mailbox('smtp-crash-to');
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'smtp', receive: 'imap' }, [from]);
    const message = await kit.submitUnqueued(connection, { to: [to], subject: 'Exactly once', text: 'once' });
    let clock = Date.now();
    const dies = kit.direct({
      now: () => new Date(clock),
      smtp: (real): MailSender => ({
        ...real,
        async send(target, outgoing) {
          await real.send(target, outgoing);
          return new Promise<never>(() => undefined);
        },
      }),
    });
    void dies.send({ customerId: CUSTOMER, messageId: message.id });
    await waitFor(async () => (await received(to, message.internetMessageId)).length === 1);
    await waitFor(async () => (await received(from, message.internetMessageId, 'Sent Items')).length === 1);

    clock += 11 * 60_000;
    const retry = kit.direct({ now: () => new Date(clock) });
    expect(await retry.send({ customerId: CUSTOMER, messageId: message.id })).toEqual({ outcome: 'already_sent' });
    expect(await kit.message(CUSTOMER, message.id)).toMatchObject({ status: 'sent', attempts: [{ outcome: 'unknown' }, { outcome: 'already_sent' }] });
    expect(await received(to, message.internetMessageId)).toHaveLength(1);
  });
});
