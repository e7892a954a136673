import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailRelayOptions } from '../../local/sandbox/graph/index.js';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import { graphTokens, organization, type Organization } from '../support/sandbox-organization.js';
import { delegatedTokens, mailbox, provided, server, waitForMessage } from '../support/test-mail-server.js';

/**
 * The sandbox Graph's relay (local/sandbox/graph/mail-relay.ts): mail sent through the sandbox
 * Graph to @contoso.test, the test Dovecot's domain, arrives there over LMTP and is read back with
 * IMAP, as a customer's mailbox outside Microsoft 365 would receive it.
 */

const FILE = '#microsoft.graph.fileAttachment';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const to = (...addresses: string[]) => addresses.map((address) => ({ emailAddress: { address } }));

describe.skipIf(provided === null)('relaying sent mail to the test Dovecot over LMTP', () => {
  const minter = delegatedTokens();
  const logged: string[] = [];
  let sandbox: RunningSandboxIdentity;
  let workDir: string;
  let relay: MailRelayOptions;

  beforeAll(async () => {
    await minter.load();
    const { host, ports } = server();
    relay = { lmtp: { host, port: ports.lmtp }, domains: ['CONTOSO.test'] };
    workDir = await mkdtemp(join(tmpdir(), 'sandbox-graph-relay-'));
    sandbox = await startSandboxIdentity({
      caDirectory: join(workDir, 'ca'),
      mailRelay: relay,
      log: (message) => {
        logged.push(message);
      },
    });
    setDefaultCACertificates([...getCACertificates('default'), sandbox.caPem]);
  });

  afterAll(async () => {
    await sandbox.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  const appToken = (org: Organization) => graphTokens(sandbox, org).app();
  const userToken = (org: Organization, upn: string) => graphTokens(sandbox, org).user(upn);

  async function sendMail(path: string, token: string, body: unknown): Promise<number> {
    const mime = typeof body === 'string';
    const response = await fetch(`${sandbox.graphBase}/v1.0${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': mime ? 'text/plain' : 'application/json' },
      body: mime ? body : JSON.stringify(body),
    });
    await response.arrayBuffer();
    return response.status;
  }

  async function control(method: 'PUT' | 'DELETE', body?: unknown): Promise<number> {
    const response = await fetch(`${sandbox.httpsBase}/_sandbox/graph/relay`, {
      method,
      ...(body === undefined ? {} : { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }),
    });
    await response.arrayBuffer();
    return response.status;
  }

  /** What the Dovecot mailbox received with this subject, parsed. */
  async function received(address: string, subject: string) {
    return simpleParser(await waitForMessage(address, await minter.delegated(address), subject));
  }

  async function relayStats(expected: { relayed: number; relayFailures: number }): Promise<void> {
    for (let i = 0; i < 200; i += 1) {
      const { relayed, relayFailures } = await sandbox.control.graphStats();
      if (relayed >= expected.relayed && relayFailures >= expected.relayFailures) {
        expect({ relayed, relayFailures }).toEqual(expected);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(await sandbox.control.graphStats()).toMatchObject(expected);
  }

  it('an app sends with sendMail: To, Cc and Bcc at contoso.test receive it with its Message-ID and attachments; Bcc shows to nobody; other domains and sandbox mailboxes are not relayed', async () => {
    const org = await organization(sandbox, 'Relay App', { appRoles: ['Mail.Send', 'Mail.Read'] });
    const token = await appToken(org);
    const [customer, colleague, hidden] = [mailbox('relay-to'), mailbox('relay-cc'), mailbox('relay-bcc')];
    const report = randomBytes(300_000);
    const subject = `Quarterly report ${randomUUID()}`;
    const status = await sendMail(`/users/${org.megan.userPrincipalName}/sendMail`, token, {
      message: {
        subject,
        body: { contentType: 'HTML', content: '<p>The <b>report</b> is attached.</p>' },
        toRecipients: to(customer.toUpperCase(), org.adele.userPrincipalName),
        ccRecipients: to(colleague, 'partner@example.com'),
        bccRecipients: to(hidden),
        internetMessageHeaders: [{ name: 'X-Connector-Message', value: 'relay-1' }],
        attachments: [{ '@odata.type': FILE, name: 'report.pdf', contentType: 'application/pdf', contentBytes: report.toString('base64') }],
      },
    });
    expect(status).toBe(202);
    const [kept] = await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems');

    for (const address of [customer, colleague, hidden]) {
      const mail = await received(address, subject);
      expect(mail.messageId).toBe(kept?.internetMessageId);
      expect(mail.from?.value).toEqual([{ name: 'Megan Bowen', address: org.megan.userPrincipalName }]);
      expect(mail.headers.get('x-connector-message')).toBe('relay-1');
      expect(mail.headers.has('bcc')).toBe(false);
      expect(mail.html).toContain('<b>report</b>');
      expect(mail.attachments.map((a) => ({ name: a.filename, contentType: a.contentType, sha256: sha256(a.content) }))).toEqual([{ name: 'report.pdf', contentType: 'application/pdf', sha256: sha256(report) }]);
    }
    // Adele is a sandbox mailbox: her copy is the sandbox's, not Dovecot's. example.com is no relayed domain.
    expect(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox')).toHaveLength(1);
    await relayStats({ relayed: 3, relayFailures: 0 });
  });

  it('a delegated user sends MIME: In-Reply-To, References and X- headers reach Dovecot', async () => {
    const org = await organization(sandbox, 'Relay Delegate', { delegated: ['Mail.Send'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    const customer = mailbox('relay-mime');
    const subject = `Re: Ticket ${randomUUID()}`;
    const internetMessageId = `<${randomUUID()}@connector.example>`;
    const mime = await new MailComposer({
      from: org.megan.userPrincipalName,
      to: customer,
      subject,
      messageId: internetMessageId,
      inReplyTo: '<ticket@customer.example>',
      references: ['<ticket-0@customer.example>', '<ticket@customer.example>'],
      headers: { 'X-Connector-Message': 'relay-2' },
      text: 'Answered.',
      attachments: [{ filename: 'notes.txt', content: 'notes' }],
    })
      .compile()
      .build();
    const before = await sandbox.control.graphStats();
    expect(await sendMail('/me/sendMail', token, mime.toString('base64'))).toBe(202);

    const mail = await received(customer, subject);
    expect({ messageId: mail.messageId, inReplyTo: mail.inReplyTo, references: mail.references, header: mail.headers.get('x-connector-message'), text: mail.text?.trim() }).toEqual({
      messageId: internetMessageId,
      inReplyTo: '<ticket@customer.example>',
      references: ['<ticket-0@customer.example>', '<ticket@customer.example>'],
      header: 'relay-2',
      text: 'Answered.',
    });
    expect(mail.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([['notes.txt', 'notes']]);
    await relayStats({ relayed: before.relayed + 1, relayFailures: before.relayFailures });
  });

  it('a relay that cannot deliver: the send is still 202, the failure is logged and counted; switched off, nothing is relayed', async () => {
    const org = await organization(sandbox, 'Relay Down', { appRoles: ['Mail.Send'] });
    const token = await appToken(org);
    const send = (subject: string) => sendMail(`/users/${org.megan.id}/sendMail`, token, { message: { subject, toRecipients: to(mailbox('relay-down')) } });
    const before = await sandbox.control.graphStats();
    try {
      // Port 9 (discard) on the loopback: nothing listens, the connection is refused.
      expect(await control('PUT', { lmtp: { host: '127.0.0.1', port: 9 }, domains: ['contoso.test'] })).toBe(200);
      expect(await send('Nowhere')).toBe(202);
      await relayStats({ relayed: before.relayed, relayFailures: before.relayFailures + 1 });
      expect(logged).toEqual([expect.stringMatching(/^could not relay <[^>]+> to relay-down-[0-9a-f]+@contoso\.test over LMTP at 127\.0\.0\.1:9$/)]);

      expect(await control('DELETE')).toBe(204);
      expect(await send('Not relayed')).toBe(202);
      // Time enough for a delivery that must not start.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await sandbox.control.graphStats()).toMatchObject({ relayed: before.relayed, relayFailures: before.relayFailures + 1 });
      expect(await control('PUT', { lmtp: { host: '', port: 0 }, domains: [] })).toBe(400);
    } finally {
      await control('PUT', relay);
    }
  });
});
