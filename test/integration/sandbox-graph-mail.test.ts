import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MessageView } from '../../local/sandbox/graph/index.js';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import { graphTokens, organization, type Organization } from '../support/sandbox-organization.js';

/**
 * The mail-sending half of the sandbox Microsoft Graph (local/sandbox/graph), called with Node's
 * fetch and real tokens msal-node got from the sandbox identity platform, as the connector's Graph
 * transport will call graph.microsoft.com: sendMail and its delivery, drafts and upload sessions
 * for large attachments, reading back what was sent, Graph's refusals, and Outlook's per-mailbox
 * limits on a movable clock.
 */

const MB = 1024 * 1024;
const FILE = '#microsoft.graph.fileAttachment';
const ACCESS_DENIED = 'Access is denied. Check credentials and try again.';
const SEND_AS_DENIED = 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.';

let sandbox: RunningSandboxIdentity;
let workDir: string;
/** Added to the sandbox's clock. */
let clockOffset = 0;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'sandbox-graph-mail-'));
  sandbox = await startSandboxIdentity({ caDirectory: join(workDir, 'ca'), lifetimes: { accessTokenSeconds: 3600 }, now: () => Date.now() + clockOffset });
  setDefaultCACertificates([...getCACertificates('default'), sandbox.caPem]);
});

afterEach(async () => {
  clockOffset = 0;
  await sandbox.control.setMailboxLimits({ concurrent: 4, sendsPerMinute: 30 });
});

afterAll(async () => {
  await sandbox.stop();
  await rm(workDir, { recursive: true, force: true });
});

const appToken = (org: Organization) => graphTokens(sandbox, org).app();
const userToken = (org: Organization, upn: string) => graphTokens(sandbox, org).user(upn);

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: Record<string, unknown>;
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  const json = (response.headers.get('content-type') ?? '').includes('json') && text !== '';
  return { status: response.status, headers: response.headers, text, body: json ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** A Graph call; a body that is not a string is sent as JSON. */
async function graph(method: string, path: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const json = body !== undefined && typeof body !== 'string';
  const response = await fetch(`${sandbox.graphBase}/v1.0${path}`, {
    method,
    headers: { ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }), ...(json ? { 'Content-Type': 'application/json' } : {}), ...headers },
    ...(body === undefined ? {} : { body: json ? JSON.stringify(body) : body }),
  });
  return answer(response);
}

function expectGraphError(result: Answer, status: number, code: string, message?: string): void {
  expect({ status: result.status, code: (result.body.error as { code?: string } | undefined)?.code }).toEqual({ status, code });
  if (message !== undefined) expect((result.body.error as { message: string }).message).toBe(message);
  expect(result.body.error).toMatchObject({ innerError: { 'request-id': result.headers.get('request-id'), 'client-request-id': result.headers.get('client-request-id') } });
}

const to = (...addresses: string[]) => addresses.map((address) => ({ emailAddress: { address } }));
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const filter = (internetMessageId: string) => `$filter=${encodeURIComponent(`internetMessageId eq '${internetMessageId.replace(/'/g, "''")}'`)}`;

function only(messages: MessageView[]): MessageView {
  expect(messages).toHaveLength(1);
  const [message] = messages;
  if (!message) throw new Error('no message');
  return message;
}

describe('sendMail', () => {
  it('202 with no body; every sandbox recipient gets it with its headers and attachments, Bcc hidden; Sent Items keeps it, found by internetMessageId', async () => {
    const org = await organization(sandbox, 'Contoso', { appRoles: ['Mail.Send', 'Mail.Read'] });
    const archive = `archive@${org.domain}`;
    await sandbox.control.createMailbox(org.tenant.id, { address: archive, displayName: 'Archive' });
    const token = await appToken(org);
    const report = randomBytes(200_000);
    const sent = await graph('POST', `/users/${org.megan.userPrincipalName}/sendMail`, token, {
      message: {
        subject: 'Quarterly report',
        body: { contentType: 'HTML', content: '<p>The <b>report</b> is attached.</p>' },
        toRecipients: to(org.adele.userPrincipalName),
        ccRecipients: [{ emailAddress: { address: 'partner@example.com', name: 'Partner' } }],
        bccRecipients: to(archive),
        replyTo: to(`replies@${org.domain}`),
        internetMessageHeaders: [{ name: 'X-Connector-Message', value: 'msg-1' }],
        attachments: [{ '@odata.type': FILE, name: 'report.pdf', contentType: 'application/pdf', contentBytes: report.toString('base64') }],
      },
    });
    expect({ status: sent.status, text: sent.text }).toEqual({ status: 202, text: '' });
    expect(sent.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const received = only(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox'));
    expect(received).toMatchObject({
      folder: 'inbox',
      subject: 'Quarterly report',
      from: { name: 'Megan Bowen', address: org.megan.userPrincipalName },
      toRecipients: [{ name: 'Adele Vance', address: org.adele.userPrincipalName }],
      ccRecipients: [{ name: 'Partner', address: 'partner@example.com' }],
      bccRecipients: [],
      internetMessageHeaders: [{ name: 'X-Connector-Message', value: 'msg-1' }],
      body: { contentType: 'html', content: '<p>The <b>report</b> is attached.</p>' },
      attachments: [{ name: 'report.pdf', contentType: 'application/pdf', size: 200_000, sha256: sha256(report) }],
      isRead: false,
      isDraft: false,
    });
    expect(received.internetMessageId).toMatch(/^<[^<>@]+@[^<>@]+>$/);
    expect(only(await sandbox.control.messages(archive, 'inbox'))).toMatchObject({ internetMessageId: received.internetMessageId, bccRecipients: [] });
    const kept = only(await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems'));
    expect(kept).toMatchObject({ internetMessageId: received.internetMessageId, bccRecipients: [{ name: 'Archive', address: archive }], isRead: true });
    expect(kept.id).not.toBe(received.id);

    // What the connector's duplicate check asks: is it in Sent Items already?
    const found = await graph('GET', `/users/${org.megan.id}/mailFolders/sentitems/messages?${filter(received.internetMessageId)}&$select=subject,internetMessageId`, token);
    expect(found.body).toEqual({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users('${org.megan.id}')/mailFolders('sentitems')/messages(subject,internetMessageId)`,
      value: [{ '@odata.etag': expect.stringMatching(/^W\/"/) as unknown, id: kept.id, subject: 'Quarterly report', internetMessageId: received.internetMessageId }],
    });
    expect((await graph('GET', `/users/${org.megan.id}/mailFolders/inbox/messages?${filter(received.internetMessageId)}`, token)).body).toMatchObject({ value: [] });

    const message = await graph('GET', `/users/${org.adele.id}/messages/${encodeURIComponent(received.id)}`, token);
    expect(message.body).toMatchObject({
      id: received.id,
      subject: 'Quarterly report',
      hasAttachments: true,
      isDraft: false,
      body: { contentType: 'html' },
      from: { emailAddress: { name: 'Megan Bowen', address: org.megan.userPrincipalName } },
      replyTo: [{ emailAddress: { address: `replies@${org.domain}` } }],
      sentDateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) as unknown,
    });
    expect(message.body).not.toHaveProperty('internetMessageHeaders');
    expect((await graph('GET', `/users/${org.adele.id}/messages/${received.id}?$select=internetMessageHeaders`, token)).body).toMatchObject({
      internetMessageHeaders: [{ name: 'X-Connector-Message', value: 'msg-1' }],
    });

    const attachments = await graph('GET', `/users/${org.adele.id}/messages/${received.id}/attachments`, token);
    expect(attachments.body.value).toEqual([expect.objectContaining({ '@odata.type': FILE, name: 'report.pdf', size: 200_000, isInline: false, contentBytes: report.toString('base64') })]);

    const mime = await graph('GET', `/users/${org.megan.id}/messages/${kept.id}/$value`, token);
    expect(mime.status).toBe(200);
    // RFC 5322 headers, unfolded.
    const headers = (mime.text.split('\r\n\r\n')[0] ?? '').replace(/\r\n[ \t]+/g, ' ').split('\r\n');
    expect(headers).toEqual(
      expect.arrayContaining([
        `Message-ID: ${received.internetMessageId}`,
        'X-Connector-Message: msg-1',
        `From: Megan Bowen <${org.megan.userPrincipalName}>`,
        `Bcc: Archive <${archive}>`,
        `Reply-To: replies@${org.domain}`,
        'Subject: Quarterly report',
      ]),
    );
    expect(mime.text).toMatch(/filename=report\.pdf/);
    expect((await graph('GET', `/users/${org.adele.id}/messages/${received.id}/$value`, token)).text).not.toContain('Bcc:');

    expect((await graph('GET', `/users/${org.adele.id}/mailFolders/inbox`, token)).body).toMatchObject({ totalItemCount: 1, unreadItemCount: 1 });
  });

  it("keeps the caller's internetMessageId, and leaves Sent Items alone with saveToSentItems false", async () => {
    const org = await organization(sandbox, 'Fabrikam', { appRoles: ['Mail.Send', 'Mail.ReadBasic.All'] });
    const token = await appToken(org);
    const internetMessageId = `<${randomUUID()}@vendor.example>`;
    const message = { subject: 'Ticket #4', body: { contentType: 'Text', content: 'Hello' }, toRecipients: to(org.adele.userPrincipalName), internetMessageId };
    expect((await graph('POST', `/users/${org.megan.userPrincipalName}/sendMail`, token, { message, saveToSentItems: false })).status).toBe(202);
    expect(await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems')).toEqual([]);
    const inbox = await graph('GET', `/users/${org.adele.userPrincipalName}/mailFolders/inbox/messages?${filter(internetMessageId)}&$select=internetMessageId`, token);
    expect(inbox.body.value).toEqual([expect.objectContaining({ internetMessageId })]);
  });

  it('delegated: Mail.Send sends from the own mailbox; another needs Mail.Send.Shared, FullAccess for /users/{it} and Send As', async () => {
    const org = await organization(sandbox, 'Delegates', { delegated: ['Mail.Send'] });
    const message = { subject: 'Hi', toRecipients: to(org.adele.userPrincipalName) };
    const megan = await userToken(org, org.megan.userPrincipalName);
    expect((await graph('POST', '/me/sendMail', megan, { message })).status).toBe(202);
    expect(only(await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems'))).toMatchObject({ from: { address: org.megan.userPrincipalName } });
    expectGraphError(await graph('POST', `/users/${org.adele.userPrincipalName}/sendMail`, megan, { message }), 403, 'ErrorAccessDenied', ACCESS_DENIED);
    const support = `support@${org.domain}`;
    await sandbox.control.createMailbox(org.tenant.id, { address: support, displayName: 'Support', fullAccess: [org.megan.userPrincipalName], sendAs: [org.megan.userPrincipalName] });
    expectGraphError(await graph('POST', `/users/${support}/sendMail`, megan, { message }), 403, 'ErrorAccessDenied', ACCESS_DENIED);

    const shared = await organization(sandbox, 'Shared Senders', { delegated: ['Mail.Send', 'Mail.Send.Shared'] });
    const sales = `sales@${shared.domain}`;
    const help = `help@${shared.domain}`;
    await sandbox.control.createMailbox(shared.tenant.id, { address: sales, displayName: 'Sales', fullAccess: [shared.megan.userPrincipalName], sendAs: [shared.megan.id] });
    await sandbox.control.createMailbox(shared.tenant.id, { address: help, displayName: 'Help', fullAccess: [shared.megan.userPrincipalName] });
    const token = await userToken(shared, shared.megan.userPrincipalName);
    const toAdele = { subject: 'From the team', toRecipients: to(shared.adele.userPrincipalName) };
    expect((await graph('POST', `/users/${sales}/sendMail`, token, { message: toAdele })).status).toBe(202);
    expect(only(await sandbox.control.messages(sales, 'sentitems'))).toMatchObject({ from: { name: 'Sales', address: sales }, sender: { address: sales } });
    expect((await graph('POST', '/me/sendMail', token, { message: { ...toAdele, from: { emailAddress: { address: sales } } } })).status).toBe(202);
    expect(only(await sandbox.control.messages(shared.megan.userPrincipalName, 'sentitems'))).toMatchObject({ from: { address: sales } });
    expect(await sandbox.control.messages(shared.adele.userPrincipalName, 'inbox')).toHaveLength(2);

    // FullAccess without Send As, or Send As nobody granted: Exchange refuses to submit.
    expectGraphError(await graph('POST', `/users/${help}/sendMail`, token, { message: toAdele }), 403, 'ErrorSendAsDenied', SEND_AS_DENIED);
    expectGraphError(await graph('POST', '/me/sendMail', token, { message: { ...toAdele, from: { emailAddress: { address: shared.adele.userPrincipalName } } } }), 403, 'ErrorSendAsDenied');

    const profileOnly = await organization(sandbox, 'Profile Only', { delegated: ['User.Read'] });
    expectGraphError(await graph('POST', '/me/sendMail', await userToken(profileOnly, profileOnly.megan.userPrincipalName), { message }), 403, 'ErrorAccessDenied', ACCESS_DENIED);
    const readOnly = await organization(sandbox, 'Read Only App', { appRoles: ['Mail.Read'] });
    expectGraphError(await graph('POST', `/users/${readOnly.megan.id}/sendMail`, await appToken(readOnly), { message }), 403, 'ErrorAccessDenied', ACCESS_DENIED);
  });

  it("refuses what Graph refuses: recipients, headers, unknown properties, bodies it can't read", async () => {
    const org = await organization(sandbox, 'Malformed', { appRoles: ['Mail.Send'] });
    const token = await appToken(org);
    const send = (body: unknown, headers: Record<string, string> = {}) => graph('POST', `/users/${org.megan.id}/sendMail`, token, body, headers);
    const message = { subject: 'x', toRecipients: to(org.adele.userPrincipalName) };

    expectGraphError(await send({ message: { subject: 'Nobody' } }), 400, 'ErrorInvalidRecipients', "At least one recipient is not valid., A message can't be sent because it contains no recipients.");
    expectGraphError(
      await send({ message: { ...message, ccRecipients: to('adele; megan') } }),
      400,
      'ErrorInvalidRecipients',
      "At least one recipient is not valid., Recipient 'adele; megan' is not resolved. All recipients must be resolved before a message can be submitted.",
    );
    expectGraphError(
      await send({ message: { ...message, internetMessageHeaders: [{ name: 'Auto-Submitted', value: 'auto-generated' }] } }),
      400,
      'InvalidInternetMessageHeader',
      "The internet message header name 'Auto-Submitted' should start with 'x-' or 'X-'.",
    );
    const sixHeaders = Array.from({ length: 6 }, (_, i) => ({ name: `X-Custom-${i}`, value: String(i) }));
    expectGraphError(await send({ message: { ...message, internetMessageHeaders: sixHeaders } }), 400, 'InvalidInternetMessageHeaderCollection', 'Maximum number of headers in one message should be less than or equal to 5.');
    expectGraphError(
      await send({ message: { ...message, subjekt: 'typo' } }),
      400,
      'RequestBodyRead',
      "The property 'subjekt' does not exist on type 'Microsoft.OutlookServices.Message'. Make sure to only use property names that are defined by the type or mark the type as open type.",
    );
    expectGraphError(await send({ message, saveToSent: false }), 400, 'RequestBodyRead', "The parameter 'saveToSent' in the request payload is not a valid parameter for the operation 'sendMail'.");
    expectGraphError(await send({ message: { ...message, attachments: [{ name: 'a.txt', contentBytes: 'aGk=' }] } }), 400, 'RequestBodyRead', 'Cannot create an abstract class.');
    expectGraphError(await send({ message: { ...message, body: { contentType: 'Markdown', content: '*' } } }), 400, 'RequestBodyRead');
    expectGraphError(await send('{"message": ', { 'Content-Type': 'application/json' }), 400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.');
    expectGraphError(await send('', { 'Content-Type': 'application/json' }), 400, 'BadRequest', 'Empty Payload. JSON content expected.');
    // Property names are the type's in any case, as Graph reads them.
    expect((await send({ Message: { Subject: 'Case', ToRecipients: to(org.adele.userPrincipalName) }, SaveToSentItems: true })).status).toBe(202);
    expect(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox')).toEqual([expect.objectContaining({ subject: 'Case' })]);
  });

  it('takes a request of 4 MB and refuses one byte more with 413, so an inline attachment over 3 MB never fits', async () => {
    const org = await organization(sandbox, 'Big', { appRoles: ['Mail.Send', 'Mail.ReadWrite'] });
    const token = await appToken(org);
    const attachment = randomBytes(2.9 * MB).toString('base64');
    const payload = (padding: number) =>
      JSON.stringify({ message: { subject: 'x'.repeat(padding), toRecipients: to(org.adele.userPrincipalName), attachments: [{ '@odata.type': FILE, name: 'a.bin', contentBytes: attachment }] } });
    const exact = payload(4 * MB - Buffer.byteLength(payload(0)));
    expect(Buffer.byteLength(exact)).toBe(4 * MB);
    expect((await graph('POST', `/users/${org.megan.id}/sendMail`, token, exact, { 'Content-Type': 'application/json' })).status).toBe(202);
    const tooBig = await graph('POST', `/users/${org.megan.id}/sendMail`, token, payload(4 * MB - Buffer.byteLength(payload(0)) + 1), { 'Content-Type': 'application/json' });
    expectGraphError(tooBig, 413, 'RequestEntityTooLarge', 'The maximum request length supported is 4MB.');

    const overThree = { '@odata.type': FILE, name: 'big.bin', contentBytes: randomBytes(3 * MB + 1).toString('base64') };
    expectGraphError(await graph('POST', `/users/${org.megan.id}/sendMail`, token, { message: { subject: 'inline', toRecipients: to(org.adele.userPrincipalName), attachments: [overThree] } }), 413, 'RequestEntityTooLarge');
    expectGraphError(await graph('POST', `/users/${org.megan.id}/messages`, token, { subject: 'draft', attachments: [overThree] }), 413, 'RequestEntityTooLarge');
    expect(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox')).toHaveLength(1);
  });
});

/** A message as a client writes it in MIME (nodemailer's composer), base64 as Graph wants it; Bcc included, as Graph has no envelope to take it from. */
async function base64Mime(mail: Mail.Options): Promise<string> {
  const node = new MailComposer(mail).compile();
  node.keepBcc = true;
  return (await node.build()).toString('base64');
}

/** The header section of a MIME message, unfolded, one header a line. */
const mimeHeaders = (mime: string) => (mime.split('\r\n\r\n')[0] ?? '').replace(/\r\n[ \t]+/g, ' ').split('\r\n');

describe('MIME bodies (Content-Type: text/plain, base64)', () => {
  it('sendMail: sent as a JSON message is, with what the MIME says, In-Reply-To, References and X- headers kept', async () => {
    const org = await organization(sandbox, 'Mime Senders', { appRoles: ['Mail.Send', 'Mail.Read'] });
    const archive = `archive@${org.domain}`;
    await sandbox.control.createMailbox(org.tenant.id, { address: archive, displayName: 'Archive' });
    const token = await appToken(org);
    const report = randomBytes(150_000);
    const logo = randomBytes(2_000);
    const internetMessageId = `<${randomUUID()}@connector.example>`;
    const mime = await base64Mime({
      from: { name: 'Megan', address: org.megan.userPrincipalName },
      to: [{ name: 'Adele', address: org.adele.userPrincipalName }],
      cc: 'partner@example.com',
      bcc: archive,
      replyTo: `replies@${org.domain}`,
      subject: 'Re: Ticket #7 – café',
      messageId: internetMessageId,
      inReplyTo: '<ticket-7@customer.example>',
      references: ['<ticket-6@customer.example>', '<ticket-7@customer.example>'],
      headers: { 'X-Connector-Message': 'msg-7', 'X-Connector-Tenant': org.tenant.id },
      text: 'See the report.',
      html: '<p>See the <b>report</b>. <img src="cid:logo@connector"></p>',
      attachments: [
        { filename: 'report.pdf', contentType: 'application/pdf', content: report },
        { filename: 'logo.png', contentType: 'image/png', content: logo, cid: 'logo@connector' },
      ],
    });
    const sent = await graph('POST', `/users/${org.megan.userPrincipalName}/sendMail`, token, mime, { 'Content-Type': 'text/plain' });
    expect({ status: sent.status, text: sent.text }).toEqual({ status: 202, text: '' });

    const threading = [
      { name: 'In-Reply-To', value: '<ticket-7@customer.example>' },
      { name: 'References', value: '<ticket-6@customer.example> <ticket-7@customer.example>' },
      { name: 'X-Connector-Message', value: 'msg-7' },
      { name: 'X-Connector-Tenant', value: org.tenant.id },
    ];
    const received = only(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox'));
    expect(received).toMatchObject({
      internetMessageId,
      subject: 'Re: Ticket #7 – café',
      from: { name: 'Megan', address: org.megan.userPrincipalName },
      toRecipients: [{ name: 'Adele', address: org.adele.userPrincipalName }],
      ccRecipients: [{ name: 'partner@example.com', address: 'partner@example.com' }],
      bccRecipients: [],
      replyTo: [{ address: `replies@${org.domain}` }],
      // Graph keeps one body: the HTML, its cid: link to the inline image intact.
      body: { contentType: 'html', content: '<p>See the <b>report</b>. <img src="cid:logo@connector"></p>' },
      // In the MIME's order: the image sits with the HTML in multipart/related, before the report.
      attachments: [
        { name: 'logo.png', contentType: 'image/png', isInline: true, size: logo.length, sha256: sha256(logo) },
        { name: 'report.pdf', contentType: 'application/pdf', isInline: false, size: report.length, sha256: sha256(report) },
      ],
    });
    expect(received.internetMessageHeaders).toEqual(expect.arrayContaining(threading));
    expect(only(await sandbox.control.messages(archive, 'inbox'))).toMatchObject({ internetMessageId, bccRecipients: [] });
    // No saveToSentItems with MIME: Sent Items keeps it, Bcc included.
    const kept = only(await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems'));
    expect(kept).toMatchObject({ internetMessageId, bccRecipients: [{ name: 'Archive', address: archive }] });

    const attachments = await graph('GET', `/users/${org.adele.id}/messages/${received.id}/attachments`, token);
    expect(attachments.body.value).toEqual([expect.objectContaining({ name: 'logo.png', isInline: true, contentId: 'logo@connector' }), expect.objectContaining({ name: 'report.pdf', contentId: null })]);
    expect((await graph('GET', `/users/${org.adele.id}/messages/${received.id}?$select=internetMessageHeaders`, token)).body.internetMessageHeaders).toEqual(expect.arrayContaining(threading));
    const value = await graph('GET', `/users/${org.megan.id}/messages/${kept.id}/$value`, token);
    expect(mimeHeaders(value.text)).toEqual(
      expect.arrayContaining([
        `Message-ID: ${internetMessageId}`,
        'In-Reply-To: <ticket-7@customer.example>',
        'References: <ticket-6@customer.example> <ticket-7@customer.example>',
        'X-Connector-Message: msg-7',
        `Bcc: Archive <${archive}>`,
      ]),
    );
    expect(value.text).toMatch(/Content-Id: <logo@connector>/i);
    expect((await sandbox.control.graphStats()).mailboxes.find((m) => m.address === org.megan.userPrincipalName)).toMatchObject({ sends: 1 });
  });

  it('sendMail as a delegated user: From is held to the same Send As rules as JSON', async () => {
    const org = await organization(sandbox, 'Mime Delegates', { delegated: ['Mail.Send', 'Mail.Send.Shared'] });
    const sales = `sales@${org.domain}`;
    await sandbox.control.createMailbox(org.tenant.id, { address: sales, displayName: 'Sales', sendAs: [org.megan.id] });
    const token = await userToken(org, org.megan.userPrincipalName);
    const send = async (from: string) => graph('POST', '/me/sendMail', token, await base64Mime({ from, to: org.adele.userPrincipalName, subject: `From ${from}`, text: 'Hi' }), { 'Content-Type': 'text/plain' });
    expect((await send(org.megan.userPrincipalName)).status).toBe(202);
    expect((await send(sales)).status).toBe(202);
    expectGraphError(await send(org.adele.userPrincipalName), 403, 'ErrorSendAsDenied', SEND_AS_DENIED);
    expect((await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems')).map((m) => m.from?.address)).toEqual([sales, org.megan.userPrincipalName]);
    expect(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox')).toHaveLength(2);
  });

  it('POST /messages: a draft from MIME, which takes attachments and is sent as any draft', async () => {
    const org = await organization(sandbox, 'Mime Drafts', { delegated: ['Mail.ReadWrite', 'Mail.Send'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    const mime = await base64Mime({ to: org.adele.userPrincipalName, subject: 'Draft from MIME', text: 'Plain only.', headers: { 'X-Draft': '1' } });
    const draft = await graph('POST', '/me/messages', token, mime, { 'Content-Type': 'text/plain' });
    expect(draft.status).toBe(201);
    expect(draft.body).toMatchObject({
      isDraft: true,
      subject: 'Draft from MIME',
      // The text part's own line break stays part of it.
      body: { contentType: 'text', content: expect.stringMatching(/^Plain only\.\r?\n?$/) as unknown },
      from: { emailAddress: { address: org.megan.userPrincipalName } },
      toRecipients: [{ emailAddress: { address: org.adele.userPrincipalName } }],
      internetMessageId: expect.stringMatching(/^<.+@.+>$/) as unknown,
    });
    const id = String(draft.body.id);
    expect((await graph('POST', `/me/messages/${id}/attachments`, token, { '@odata.type': FILE, name: 'later.txt', contentBytes: Buffer.from('later').toString('base64') })).status).toBe(201);
    expect((await graph('POST', `/users/${org.megan.id}/messages/${id}/send`, token)).status).toBe(202);
    expect(only(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox'))).toMatchObject({
      internetMessageId: draft.body.internetMessageId,
      subject: 'Draft from MIME',
      internetMessageHeaders: [{ name: 'X-Draft', value: '1' }],
      attachments: [{ name: 'later.txt' }],
    });
  });

  it("refuses what Graph refuses: base64 that isn't, MIME that isn't, no recipients, over 4 MB", async () => {
    const org = await organization(sandbox, 'Mime Refusals', { appRoles: ['Mail.Send', 'Mail.ReadWrite'] });
    const token = await appToken(org);
    const send = (body: string) => graph('POST', `/users/${org.megan.id}/sendMail`, token, body, { 'Content-Type': 'text/plain' });
    expectGraphError(await send('From: a@b.test\r\n\r\nnot base64'), 400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
    expectGraphError(await graph('POST', `/users/${org.megan.id}/messages`, token, 'abc', { 'Content-Type': 'text/plain' }), 400, 'ErrorMimeContentInvalidBase64String');
    expectGraphError(await send(Buffer.from('just some text, no headers').toString('base64')), 400, 'ErrorMimeContentInvalid');
    expectGraphError(await send(''), 400, 'ErrorMimeContentInvalid');
    expectGraphError(await send(await base64Mime({ subject: 'Nobody', text: 'x' })), 400, 'ErrorInvalidRecipients', "At least one recipient is not valid., A message can't be sent because it contains no recipients.");
    const big = await base64Mime({ to: org.adele.userPrincipalName, subject: 'big', attachments: [{ filename: 'big.bin', content: randomBytes(3.1 * MB) }] });
    expect(big.length).toBeGreaterThan(4 * MB);
    expectGraphError(await send(big), 413, 'RequestEntityTooLarge');
    expect(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox')).toEqual([]);
    expect((await sandbox.control.graphStats()).mailboxes.find((m) => m.address === org.megan.userPrincipalName)).toMatchObject({ sends: 0 });
  });
});

describe('drafts and upload sessions', () => {
  it('a 20 MB attachment: draft, upload session, 4 MB ranges without Authorization (one with it is refused), send', async () => {
    const org = await organization(sandbox, 'Large Files', { appRoles: ['Mail.ReadWrite', 'Mail.Send'] });
    const token = await appToken(org);
    const mailbox = `/users/${org.megan.userPrincipalName}`;
    const draft = await graph('POST', `${mailbox}/messages`, token, { subject: 'Scans', body: { contentType: 'Text', content: 'Attached.' }, toRecipients: to(org.adele.userPrincipalName) });
    expect(draft.status).toBe(201);
    expect(draft.body).toMatchObject({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users('${encodeURIComponent(org.megan.userPrincipalName)}')/messages/$entity`,
      id: expect.stringMatching(/^AAMk/) as unknown,
      isDraft: true,
      sentDateTime: null,
      internetMessageId: expect.stringMatching(/^<.+@.+>$/) as unknown,
    });
    const id = String(draft.body.id);
    expect(only(await sandbox.control.messages(org.megan.userPrincipalName, 'drafts')).id).toBe(id);
    const note = await graph('POST', `${mailbox}/messages/${id}/attachments`, token, { '@odata.type': FILE, name: 'readme.txt', contentType: 'text/plain', contentBytes: Buffer.from('read me').toString('base64') });
    expect(note.status).toBe(201);
    expect(note.body).toMatchObject({ '@odata.type': FILE, name: 'readme.txt', size: 7, id: expect.stringMatching(/^AAMk/) as unknown });

    const tooSmall = await graph('POST', `${mailbox}/messages/${id}/attachments/createUploadSession`, token, { AttachmentItem: { attachmentType: 'file', name: 'small.bin', size: 2 * MB } });
    expectGraphError(tooSmall, 400, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize');

    const file = randomBytes(20 * MB);
    const session = await graph('POST', `${mailbox}/messages/${id}/attachments/createUploadSession`, token, {
      AttachmentItem: { attachmentType: 'file', name: 'scans.zip', size: file.length, contentType: 'application/zip' },
    });
    expect(session.status).toBe(201);
    expect(session.body).toMatchObject({ '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#microsoft.graph.uploadSession`, nextExpectedRanges: ['0-'] });
    const uploadUrl = String(session.body.uploadUrl);
    expect(uploadUrl.startsWith(`${sandbox.httpsBase}/outlook/api/gv1.0/users('`)).toBe(true);
    expect(uploadUrl).toMatch(/\/AttachmentSessions\('[^']+'\)\?authtoken=/);
    expect(Date.parse(String(session.body.expirationDateTime))).toBeGreaterThan(Date.now());

    const put = async (start: number, end: number, headers: Record<string, string> = {}) =>
      answer(await fetch(uploadUrl, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `bytes ${start}-${end}/${file.length}`, ...headers }, body: file.subarray(start, end + 1) }));
    const withToken = await put(0, 4 * MB - 1, { Authorization: `Bearer ${token}` });
    expectGraphError(withToken, 401, 'InvalidAudienceForResource');
    expect((withToken.body.error as { message: string }).message).toMatch(/^The audience claim value is invalid for current resource\. Audience claim is 'https:\/\/graph\.microsoft\.com', request url is '/);
    expectGraphError(await put(4 * MB, 8 * MB - 1), 416, 'ErrorInvalidRequest');
    expectGraphError(await put(0, 4 * MB), 413, 'RequestEntityTooLarge');

    for (let start = 0; start < file.length; start += 4 * MB) {
      const end = Math.min(start + 4 * MB, file.length) - 1;
      const range = await put(start, end);
      if (end < file.length - 1) {
        expect({ status: range.status, next: range.body.nextExpectedRanges }).toEqual({ status: 200, next: [String(end + 1)] });
      } else {
        expect(range.status).toBe(201);
        expect(range.headers.get('location')).toMatch(/\/Attachments\('AAMk[^']+'\)$/);
      }
    }
    const attachments = await graph('GET', `${mailbox}/messages/${id}/attachments`, token);
    expect(attachments.body.value).toEqual([expect.objectContaining({ name: 'readme.txt' }), expect.objectContaining({ name: 'scans.zip', contentType: 'application/zip', size: file.length })]);

    // Another session, cancelled; a URL with another authtoken opens nothing.
    const cancelled = await graph('POST', `${mailbox}/messages/${id}/attachments/createUploadSession`, token, { AttachmentItem: { attachmentType: 'file', name: 'later.bin', size: 5 * MB } });
    const cancelledUrl = String(cancelled.body.uploadUrl);
    expectGraphError(await answer(await fetch(cancelledUrl.replace(/authtoken=.*$/, 'authtoken=forged'), { method: 'DELETE' })), 401, 'InvalidAuthenticationToken');
    expect((await fetch(cancelledUrl, { method: 'DELETE' })).status).toBe(204);
    expectGraphError(await answer(await fetch(cancelledUrl, { method: 'PUT', headers: { 'Content-Range': `bytes 0-9/${5 * MB}` }, body: Buffer.alloc(10) })), 404, 'ErrorItemNotFound');

    const sent = await graph('POST', `${mailbox}/messages/${id}/send`, token);
    expect({ status: sent.status, text: sent.text }).toEqual({ status: 202, text: '' });
    expectGraphError(await graph('GET', `${mailbox}/messages/${id}`, token), 404, 'ErrorItemNotFound');
    expect(await sandbox.control.messages(org.megan.userPrincipalName, 'drafts')).toEqual([]);
    const kept = only(await sandbox.control.messages(org.megan.userPrincipalName, 'sentitems'));
    const received = only(await sandbox.control.messages(org.adele.userPrincipalName, 'inbox'));
    expect(received).toMatchObject({ internetMessageId: draft.body.internetMessageId, attachments: [{ name: 'readme.txt' }, { name: 'scans.zip', size: 20 * MB, sha256: sha256(file) }] });
    expect(kept.internetMessageId).toBe(received.internetMessageId);
    // The session is spent.
    expectGraphError(await put(0, 4 * MB - 1), 404, 'ErrorItemNotFound');
  });
});

/** A sendMail whose body is still arriving: it holds its place in the mailbox's concurrency until `finish`. */
function slowSendMail(path: string, token: string, body: string): { finish(): Promise<number> } {
  const bytes = Buffer.from(body);
  let settle: (status: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (settle = resolve));
  const outgoing = httpsRequest(`${sandbox.graphBase}/v1.0${path}`, { method: 'POST', ca: sandbox.caPem, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': bytes.length } }, (response) => {
    response.resume();
    response.on('end', () => {
      settle(response.statusCode ?? 0);
    });
  });
  outgoing.write(bytes.subarray(0, 10));
  return {
    finish() {
      outgoing.end(bytes.subarray(10));
      return done;
    },
  };
}

async function inFlight(address: string, expected: number): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    const stats = await sandbox.control.graphStats();
    if (stats.mailboxes.find((m) => m.address === address)?.inFlight === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${address} never had ${expected} requests in flight`);
}

describe("Outlook's per-mailbox limits", () => {
  it('four requests in flight per app and mailbox: the fifth is 429 ApplicationThrottled with Retry-After; other mailboxes and apps go on', async () => {
    const org = await organization(sandbox, 'Busy', { appRoles: ['Mail.Send', 'Mail.Read'] });
    const token = await appToken(org);
    const address = org.megan.userPrincipalName;
    const message = JSON.stringify({ message: { subject: 'slow', toRecipients: to(org.adele.userPrincipalName) } });
    const slow = Array.from({ length: 4 }, () => slowSendMail(`/users/${address}/sendMail`, token, message));
    await inFlight(address, 4);

    const fifth = await graph('GET', `/users/${address}/mailFolders/inbox`, token);
    expectGraphError(fifth, 429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.');
    expect(fifth.headers.get('retry-after')).toBe('1');
    expect((await graph('GET', `/users/${org.adele.userPrincipalName}/mailFolders/inbox`, token)).status).toBe(200);
    const other = await organization(sandbox, 'Busy Too', { appRoles: ['Mail.Read'] });
    await sandbox.control.createMailbox(other.tenant.id, { address: `shared@${other.domain}` });
    expect((await graph('GET', `/users/shared@${other.domain}/mailFolders/inbox`, await appToken(other))).status).toBe(200);

    expect(await Promise.all(slow.map((s) => s.finish()))).toEqual([202, 202, 202, 202]);
    expect((await graph('GET', `/users/${address}/mailFolders/inbox`, token)).status).toBe(200);
    const stats = (await sandbox.control.graphStats()).mailboxes.find((m) => m.address === address);
    expect(stats).toEqual({ address, requests: 6, sends: 4, throttled: { concurrency: 1, sendRate: 0 }, inFlight: 0 });

    // The limit is the sandbox's to change: one at a time.
    await sandbox.control.setMailboxLimits({ concurrent: 1 });
    const alone = slowSendMail(`/users/${address}/sendMail`, token, message);
    await inFlight(address, 1);
    expectGraphError(await graph('GET', `/users/${address}/mailFolders/inbox`, token), 429, 'ApplicationThrottled');
    expect(await alone.finish()).toBe(202);
  });

  it('the message rate per mailbox, on the sandbox clock: 429 with Retry-After until the oldest send is a minute old', async () => {
    const org = await organization(sandbox, 'Bulk', { appRoles: ['Mail.Send', 'Mail.ReadBasic.All'] });
    const token = await appToken(org);
    const address = org.megan.userPrincipalName;
    expect(await sandbox.control.setMailboxLimits({ sendsPerMinute: 3 })).toEqual({ concurrent: 4, sendsPerMinute: 3 });
    const send = (n: number) => graph('POST', `/users/${address}/sendMail`, token, { message: { subject: `#${n}`, toRecipients: to(org.adele.userPrincipalName) } });
    for (const [n, seconds] of [0, 10, 20].entries()) {
      clockOffset = seconds * 1000;
      expect((await send(n)).status).toBe(202);
    }
    clockOffset = 30_000;
    const throttled = await send(3);
    expectGraphError(throttled, 429, 'ApplicationThrottled', 'Application is over its MessageRate limit.');
    expect(throttled.headers.get('retry-after')).toBe('30');
    clockOffset = 59_500;
    expect((await send(3)).headers.get('retry-after')).toBe('1');
    clockOffset = 60_000;
    expect((await send(3)).status).toBe(202);

    expect((await sandbox.control.messages(org.adele.userPrincipalName, 'inbox')).map((m) => m.subject)).toEqual(['#3', '#2', '#1', '#0']);
    // The same, through Graph, two a page.
    const first = await graph('GET', `/users/${org.adele.id}/mailFolders/inbox/messages?$select=subject&$top=2`, token);
    expect((first.body.value as { subject: string }[]).map((m) => m.subject)).toEqual(['#3', '#2']);
    const second = await answer(await fetch(String(first.body['@odata.nextLink']), { headers: { Authorization: `Bearer ${token}` } }));
    expect((second.body.value as { subject: string }[]).map((m) => m.subject)).toEqual(['#1', '#0']);
    expect(second.body).not.toHaveProperty('@odata.nextLink');
    const stats = await sandbox.control.graphStats();
    expect(stats.mailboxes.find((m) => m.address === address)).toMatchObject({ sends: 4, throttled: { concurrency: 0, sendRate: 2 } });

    // Injected throttling is counted apart.
    const before = stats.throttled.injected;
    await sandbox.control.failGraphRequests({ status: 429, count: 1, retryAfterSeconds: 5 });
    expect((await send(4)).status).toBe(429);
    expect((await sandbox.control.graphStats()).throttled.injected).toBe(before + 1);
  });
});
