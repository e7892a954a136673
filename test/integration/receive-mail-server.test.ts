import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signInWithPassword } from '../../src/connect/password-sign-in.js';
import type { Connection } from '../../src/domain/connection.js';
import type { Mailbox } from '../../src/domain/mailbox.js';
import { keys } from '../../src/store/repositories.js';
import { createLogger } from '../../src/telemetry/logger.js';
import type { ConnectEnvironment, Directory } from '../support/connect-environment.js';
import { mailboxOf, receiveTestKit, type ReceiveTestKit } from '../support/receive-environment.js';
import { PASSWORD, startMailServerEnvironment, type MailServerEnvironment, type SendTestKit } from '../support/send-environment.js';
import { commandsBetween, delegatedTokens, imapCommandCountsOf, mailbox, withImap } from '../support/test-mail-server.js';

/**
 * Receiving from the real Dovecot by IMAP and POP3 with XOAUTH2, through the poll use-case the
 * poll-mailbox queue runs: a message appended once is emitted once, a new UIDVALIDITY emits nothing
 * twice, a revoked sign-in stops the mailbox until the user reconnects (and nothing is lost
 * meanwhile), and 200 idle mailboxes cost one STATUS each, as Dovecot counts them.
 */

const mailServer = inject('mailServer');
const CUSTOMER = 'imap-receiver';
const tokens = delegatedTokens();
let env: ConnectEnvironment;
let kit: SendTestKit;
let receive: ReceiveTestKit;
let contoso: Directory;
let running: MailServerEnvironment | undefined;
const quiet = createLogger({ level: 'error', sink: () => undefined });

beforeAll(async () => {
  if (!mailServer) return;
  await tokens.load();
  running = await startMailServerEnvironment(mailServer, {
    directoryName: 'Contoso IMAP',
    // Access tokens shorter than msal's 5-minute renewal margin: every look asks Microsoft, so a
    // revoked sign-in shows at the next look, as it does at the latest when an hour-long token ends.
    sandbox: { lifetimes: { accessTokenSeconds: 240 } },
  });
  ({ env, kit, directory: contoso } = running);
  receive = receiveTestKit(env);
}, 60_000);

afterAll(async () => {
  await running?.stop();
});

function rfc822(messageId: string, subject: string): string {
  return [
    'From: Ana Lima <ana@customer.example>',
    'To: support@contoso.test',
    `Subject: ${subject}`,
    `Message-ID: ${messageId}`,
    'Date: Mon, 23 Nov 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This is ${subject}.`,
    '',
  ].join('\r\n');
}

async function append(address: string, folder: string, subject: string): Promise<string> {
  const id = `<${randomUUID()}@customer.example>`;
  await withImap(address, await tokens.delegated(address), (client) => client.append(folder, rfc822(id, subject)));
  return id;
}

async function delegatedMailbox(receiveBy: 'imap' | 'pop3'): Promise<{ connection: Connection; mailbox: Mailbox; upn: string }> {
  const { connection, upn } = await kit.delegated(CUSTOMER, contoso.tenant.id, contoso.domain, { send: 'smtp', receive: receiveBy });
  return { connection, mailbox: await mailboxOf(env, connection, upn), upn };
}

describe('receiving from Dovecot', () => {
  it('IMAP: a message appended to the mailbox is emitted exactly once', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { mailbox: watched, upn } = await delegatedMailbox('imap');
    const before = await append(upn, 'INBOX', 'already there');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 0 });

    const id = await append(upn, 'INBOX', 'a new question');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 1, emitted: 1 });
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 0, emitted: 0 });
    const [event, ...more] = await receive.received(CUSTOMER, id);
    expect(more).toHaveLength(0);
    expect(event?.data).toMatchObject({ transport: 'imap', folder: 'Inbox', mailbox: upn, subject: 'a new question', from: { address: 'ana@customer.example', name: 'Ana Lima' } });
    expect(await receive.received(CUSTOMER, before)).toHaveLength(0);
  });

  it('POP3: a message delivered to the maildrop is emitted exactly once, and stays on the server', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { mailbox: watched, upn } = await delegatedMailbox('pop3');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 0 });
    const id = await append(upn, 'INBOX', 'by pop3');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 1, emitted: 1 });
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 0, emitted: 0 });
    expect(await receive.received(CUSTOMER, id)).toHaveLength(1);
    const left = await withImap(upn, await tokens.delegated(upn), (client) => client.status('INBOX', { messages: true }));
    expect(left && left.messages).toBe(1);
  });

  it('IMAP: a new UIDVALIDITY offers recent mail again and emits nothing twice', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { mailbox: watched, upn } = await delegatedMailbox('imap');
    await withImap(upn, await tokens.delegated(upn), (client) => client.mailboxCreate('Receipts'));
    const updated = await kit.api(`v1/customers/${CUSTOMER}/connections/${watched.connectionId}/mailboxes/${watched.id}`, { method: 'PATCH', body: { receive: { folders: ['Receipts'] } } });
    expect(updated.status).toBe(200);
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 0 });
    const first = await append(upn, 'Receipts', 'receipt 1');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', emitted: 1 });

    // The folder is made again (a restore, a migration): same messages, new UIDs and UIDVALIDITY, one more message.
    await withImap(upn, await tokens.delegated(upn), async (client) => {
      await client.mailboxDelete('Receipts');
      await client.mailboxCreate('Receipts');
      await client.append('Receipts', rfc822(first, 'receipt 1'));
    });
    const second = await append(upn, 'Receipts', 'receipt 2');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', found: 2, emitted: 1, resynced: true });
    expect(await receive.received(CUSTOMER, first)).toHaveLength(1);
    expect(await receive.received(CUSTOMER, second)).toHaveLength(1);
  });

  it('a revoked sign-in moves the connection to needs_reauth; the mailbox waits, and after the reconnect nothing was lost', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection, mailbox: watched, upn } = await delegatedMailbox('imap');
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled' });
    await env.sandbox.control.revokeSessions(contoso.tenant.id, upn);

    expect(await receive.poll(watched)).toMatchObject({ outcome: 'failed', code: 'token_reauth' });
    expect((await env.connection(connection)).state).toBe('needs_reauth');
    const meanwhile = await append(upn, 'INBOX', 'while disconnected');
    expect(await receive.poll(watched)).toEqual({ outcome: 'waiting' });
    expect((await receive.state(watched))?.lastError).toMatchObject({ code: 'connection_needs_reauth' });

    const report = await signInWithPassword(
      { flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger: quiet, allowRopc: true },
      await env.connection(connection),
      { username: upn, password: () => Promise.resolve(PASSWORD) },
    );
    expect(report).toMatchObject({ kind: 'connected' });
    expect(await receive.poll(watched)).toMatchObject({ outcome: 'polled', emitted: 1 });
    expect(await receive.received(CUSTOMER, meanwhile)).toHaveLength(1);
    expect((await receive.state(watched))?.lastError).toBeUndefined();
  });

  it('200 idle mailboxes cost one STATUS each and no SELECT or EXAMINE, counted at the server', { timeout: 120_000 }, async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const addresses = Array.from({ length: 200 }, (_, index) => mailbox(`idle${String(index)}`));
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'smtp', receive: 'imap' }, addresses);
    const watched = await env.services.repositories.mailboxes.all(CUSTOMER, { prefix: keys.mailboxesOf(connection.id) });
    expect(watched).toHaveLength(200);
    const pollAll = async () => {
      const outcomes: string[] = [];
      for (let start = 0; start < watched.length; start += 20) {
        outcomes.push(...(await Promise.all(watched.slice(start, start + 20).map(async (m) => (await receive.poll(m)).outcome))));
      }
      return outcomes;
    };
    expect(new Set(await pollAll())).toEqual(new Set(['polled']));
    const before = await imapCommandCountsOf(addresses, 1);
    expect(new Set(await pollAll())).toEqual(new Set(['polled']));
    const after = await imapCommandCountsOf(addresses, 2);
    for (const address of addresses) {
      const look = commandsBetween(before.get(address) ?? {}, after.get(address) ?? {});
      expect({ address, STATUS: look.STATUS, SELECT: look.SELECT, EXAMINE: look.EXAMINE, FETCH: look['UID FETCH'] }).toEqual({ address, STATUS: 1, SELECT: undefined, EXAMINE: undefined, FETCH: undefined });
    }
  });
});
