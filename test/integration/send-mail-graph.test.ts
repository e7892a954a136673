import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { changeConnectionState } from '../../src/connections/connections.js';
import type { OutboundMessage } from '../../src/domain/outbound-message.js';
import { SendAttemptError, type MailSender } from '../../src/mail/mail-transport.js';
import { keys } from '../../src/store/repositories.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { waitFor } from '../support/wait.js';

/**
 * Sending through Microsoft Graph, end to end: the vendor API queues the message, the local
 * Functions host's send-mail queue trigger sends it to the sandbox Graph, which delivers it to the
 * recipient's sandbox mailbox and keeps a copy in Sent Items. The crash tests run the send
 * use-case directly, with a clock they move and a sender they break at a chosen point.
 */

let env: ConnectEnvironment;
let kit: SendTestKit;
let contoso: Directory;
const CUSTOMER = 'graph-sender';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  env = await startConnectEnvironment({ storageConnectionString: inject('storageConnectionString'), env: { ALLOW_ROPC: 'true' } });
  kit = await sendTestKit(env);
  contoso = await env.createDirectory('Contoso Send');
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
  // The recipients' mailboxes (sandbox users have one).
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: `adele@${contoso.domain}`, displayName: 'Adele Vance' });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

const adele = () => `adele@${contoso.domain}`;
let senders = 0;

/** A mailbox of its own for each test: the governor's state is per mailbox, and some tests move its clock. */
async function newSender(): Promise<string> {
  senders += 1;
  const upn = `agent${String(senders)}@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: upn, displayName: `Agent ${String(senders)}` });
  return upn;
}
const messagesPath = (connectionId: string) => `v1/customers/${CUSTOMER}/connections/${connectionId}/messages`;

async function inbox(address: string, internetMessageId: string) {
  return (await env.sandbox.control.messages(address, 'inbox')).filter((m) => m.internetMessageId === internetMessageId);
}

describe('sending through Graph', () => {
  it('app-only: queued by the API, sent by the queue, delivered with its headers and attachment; message.sent recorded', async () => {
    const sender = await newSender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const pdf = randomBytes(50_000);
    const response = await kit.api(messagesPath(connection.id), {
      body: {
        to: [{ address: adele(), name: 'Adele Vance' }],
        subject: 'Your ticket #42',
        text: 'Hello Adele',
        html: '<p>Hello <b>Adele</b></p>',
        headers: { 'X-Ticket-Id': '42' },
        attachments: [{ filename: 'report.pdf', contentType: 'application/pdf', content: pdf.toString('base64') }],
      },
    });
    expect(response.status).toBe(202);
    const queued = response.body as OutboundMessage;
    expect(queued).toMatchObject({ status: 'queued', from: sender, transport: 'graph', attemptCount: 0 });
    expect(response.headers.get('location')).toBe(`/api/${messagesPath(connection.id)}/${queued.id}`);

    const sent = await kit.settled(CUSTOMER, queued.id);
    expect(sent).toMatchObject({ status: 'sent', attemptCount: 1, attempts: [{ number: 1, outcome: 'sent', transport: 'graph' }] });
    const [delivered, ...more] = await inbox(adele(), queued.internetMessageId);
    expect(more).toHaveLength(0);
    expect(delivered).toMatchObject({
      subject: 'Your ticket #42',
      body: { contentType: 'html', content: '<p>Hello <b>Adele</b></p>' },
      internetMessageHeaders: expect.arrayContaining([{ name: 'X-Ticket-Id', value: '42' }]) as unknown,
      attachments: [expect.objectContaining({ name: 'report.pdf', contentType: 'application/pdf', size: pdf.length, sha256: sha256(pdf) })],
    });
    expect((await env.sandbox.control.messages(sender, 'sentitems')).some((m) => m.internetMessageId === queued.internetMessageId)).toBe(true);

    const view = await kit.api(`${messagesPath(connection.id)}/${queued.id}`);
    expect(view).toMatchObject({ status: 200, body: { id: queued.id, status: 'sent', sentAt: expect.any(String) as unknown } });
    expect(JSON.stringify(view.body)).not.toMatch(/requestHash|content"|lastEvent/);
    const events = await waitFor(async () => {
      const all = (await env.services.repositories.events.all(CUSTOMER)).filter((e) => e.data.messageId === queued.id);
      return all.length > 0 && all;
    });
    expect(events.map((e) => e.type)).toEqual(['message.sent']);
    expect(events[0]).toMatchObject({ connectionId: connection.id, data: { internetMessageId: queued.internetMessageId, mailbox: sender, status: 'sent' } });
  });

  it('delegated: a 20 MB attachment goes up in an upload session; the same Idempotency-Key sends once; another body under it is refused', async () => {
    const { connection, upn } = await kit.delegated(CUSTOMER, contoso.tenant.id, contoso.domain, { send: 'graph', receive: 'graph' });
    const large = randomBytes(20 * 1024 * 1024);
    const upload = await kit.api(`v1/customers/${CUSTOMER}/connections/${connection.id}/attachments`, { raw: large, contentType: 'application/zip' });
    expect(upload).toMatchObject({ status: 201, body: { id: expect.stringMatching(/^att_/) as unknown, size: large.length, contentType: 'application/zip' } });
    const uploadId = (upload.body as { id: string }).id;
    const request = {
      to: [adele()],
      subject: 'The archive',
      text: 'Attached.',
      attachments: [
        { filename: 'archive.zip', uploadId },
        { filename: 'small.txt', contentType: 'text/plain', content: Buffer.from('small one').toString('base64') },
      ],
    };
    const idempotency = { 'idempotency-key': `archive-${String(Date.now())}` };
    const first = await kit.api(messagesPath(connection.id), { body: request, headers: idempotency });
    const second = await kit.api(messagesPath(connection.id), { body: request, headers: idempotency });
    expect(first.status).toBe(202);
    expect(second).toMatchObject({ status: 202, body: { id: (first.body as OutboundMessage).id } });
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const other = await kit.api(messagesPath(connection.id), { body: { ...request, subject: 'Something else' }, headers: idempotency });
    expect(other).toMatchObject({ status: 409, body: { type: 'urn:m365-connector:problem:conflict' } });

    const id = (first.body as OutboundMessage).id;
    const sent = await kit.settled(CUSTOMER, id, 60_000);
    expect(sent.status).toBe('sent');
    const delivered = await inbox(adele(), sent.internetMessageId);
    expect(delivered).toHaveLength(1);
    expect(delivered[0]?.from?.address.toLowerCase()).toBe(upn.toLowerCase());
    expect(delivered[0]?.attachments.map((a) => [a.name, a.size, a.sha256])).toEqual(
      expect.arrayContaining([
        ['archive.zip', large.length, sha256(large)],
        ['small.txt', 9, sha256(Buffer.from('small one'))],
      ]),
    );
    // The message's own blobs are gone once it is sent; the upload stays for other messages.
    expect(await env.services.storage.blobService.getContainerClient('outbox').getBlockBlobClient(sent.content.name).exists()).toBe(false);
  }, 90_000);

  it('threading and list headers go as MIME: the reply arrives with In-Reply-To, References and the connector\'s Message-ID', async () => {
    const sender = await newSender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const response = await kit.api(messagesPath(connection.id), {
      body: {
        to: [adele()],
        subject: 'Re: printer on fire',
        text: 'It is out now.',
        inReplyTo: '<question-7@customer.example>',
        references: ['<question-7@customer.example>'],
        headers: { 'List-Unsubscribe': '<mailto:unsubscribe@vendor.example>', 'X-Ticket-Id': '7' },
      },
    });
    expect(response.status).toBe(202);
    const sent = await kit.settled(CUSTOMER, (response.body as OutboundMessage).id);
    expect(sent.status).toBe('sent');
    const [delivered] = await inbox(adele(), sent.internetMessageId);
    const headers = Object.fromEntries((delivered?.internetMessageHeaders ?? []).map((h) => [h.name.toLowerCase(), h.value]));
    expect(headers).toMatchObject({ 'in-reply-to': '<question-7@customer.example>', references: '<question-7@customer.example>', 'x-ticket-id': '7' });
    expect(delivered?.subject).toBe('Re: printer on fire');
  });

  it('a worker that dies after Graph took the message: the retry finds it in Sent Items and does not send it again', async () => {
    const sender = await newSender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const message = await kit.submitUnqueued(connection, { to: [adele()], subject: 'Crash after handover', text: 'once' });
    let clock = Date.now();
    const dies = kit.direct({
      now: () => new Date(clock),
      graph: (real): MailSender => ({
        ...real,
        async send(target, outgoing) {
          await real.send(target, outgoing);
          // The process is gone: nothing after the handover runs.
          return new Promise<never>(() => undefined);
        },
      }),
    });
    void dies.send({ customerId: CUSTOMER, messageId: message.id });
    await waitFor(async () => (await inbox(adele(), message.internetMessageId)).length === 1);
    expect(await kit.message(CUSTOMER, message.id)).toMatchObject({ status: 'sending', attempts: [{ outcome: 'in_progress' }] });

    // The queue message comes back; the attempt is still within its time and is left alone.
    const retry = kit.direct({ now: () => new Date(clock) });
    expect(await retry.send({ customerId: CUSTOMER, messageId: message.id })).toMatchObject({ outcome: 'waiting', reason: 'in_progress' });
    // Past its time: the outcome is unknown, so Sent Items decides.
    clock += 11 * 60_000;
    expect(await retry.send({ customerId: CUSTOMER, messageId: message.id })).toEqual({ outcome: 'already_sent' });
    expect(await kit.message(CUSTOMER, message.id)).toMatchObject({
      status: 'sent',
      attemptCount: 2,
      attempts: [{ number: 1, outcome: 'unknown' }, { number: 2, outcome: 'already_sent' }],
    });
    expect(await inbox(adele(), message.internetMessageId)).toHaveLength(1);
  });

  it('an attempt that fails with no answer after the handover is checked in Sent Items first; one that fails before is simply sent again', async () => {
    const sender = await newSender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const afterHandover = await kit.submitUnqueued(connection, { to: [adele()], subject: 'Timeout after handover', text: 'once' });
    const beforeHandover = await kit.submitUnqueued(connection, { to: [adele()], subject: 'Refused before handover', text: 'once' });
    let clock = Date.now();
    const flaky = kit.direct({
      now: () => new Date(clock),
      graph: (real): MailSender => ({
        ...real,
        async send(target, outgoing) {
          if (outgoing.content.subject.startsWith('Refused')) {
            throw new SendAttemptError({ transport: 'network', code: 'ECONNRESET', message: 'socket hang up', sending: false });
          }
          await real.send(target, outgoing);
          throw new SendAttemptError({ transport: 'network', code: 'TimeoutError', message: 'timed out waiting for the answer', sending: true });
        },
      }),
    });
    for (const message of [afterHandover, beforeHandover]) {
      expect(await flaky.send({ customerId: CUSTOMER, messageId: message.id })).toEqual({ outcome: 'deferred' });
    }
    expect(await kit.message(CUSTOMER, afterHandover.id)).toMatchObject({ status: 'deferred', verifyBeforeSend: true, attempts: [{ outcome: 'unknown' }] });
    const deferred = await kit.message(CUSTOMER, beforeHandover.id);
    expect(deferred).toMatchObject({ status: 'deferred', lastError: { class: 'transient', code: 'network_error' }, attempts: [{ outcome: 'deferred' }] });
    expect(deferred.verifyBeforeSend).toBeUndefined();
    expect(await inbox(adele(), beforeHandover.internetMessageId)).toHaveLength(0);
    // Both were put back on the queue for their next attempt, about a minute later.
    expect(flaky.queued.map((q) => q.delaySeconds)).toEqual([expect.any(Number), expect.any(Number)]);
    expect(Math.min(...flaky.queued.map((q) => q.delaySeconds))).toBeGreaterThanOrEqual(50);

    clock += 3 * 60_000;
    const healthy = kit.direct({ now: () => new Date(clock) });
    expect(await healthy.send({ customerId: CUSTOMER, messageId: afterHandover.id })).toEqual({ outcome: 'already_sent' });
    expect(await healthy.send({ customerId: CUSTOMER, messageId: beforeHandover.id })).toEqual({ outcome: 'sent' });
    expect(await inbox(adele(), afterHandover.internetMessageId)).toHaveLength(1);
    expect(await inbox(adele(), beforeHandover.internetMessageId)).toHaveLength(1);
    const events = (await env.services.repositories.events.all(CUSTOMER)).filter((e) => e.data.messageId === beforeHandover.id).map((e) => e.type);
    expect(events).toEqual(['message.deferred', 'message.sent']);
  });

  it('a Graph outage defers the message with Retry-After; an unknown mailbox fails it at once with the reason', async () => {
    const sender = await newSender();
    const ghost = `nobody@${contoso.domain}`;
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender, ghost]);
    const outage = await kit.submitUnqueued(connection, { from: sender, to: [adele()], subject: 'During an outage', text: 'later' });
    const unknown = await kit.submitUnqueued(connection, { from: ghost, to: [adele()], subject: 'From nobody', text: 'never' });
    let clock = Date.now();
    const run = kit.direct({ now: () => new Date(clock) });

    await env.sandbox.control.failGraphRequests({ status: 503, count: 1, retryAfterSeconds: 120 });
    expect(await run.send({ customerId: CUSTOMER, messageId: outage.id })).toEqual({ outcome: 'deferred' });
    const deferred = await kit.message(CUSTOMER, outage.id);
    expect(deferred).toMatchObject({ status: 'deferred', lastError: { class: 'throttled', code: 'serviceNotAvailable' }, attempts: [{ retryAfterSeconds: 120 }] });
    expect(Date.parse(deferred.nextAttemptAt ?? '') - clock).toBe(120_000);
    // The mailbox as a whole waits: Microsoft asked for two minutes.
    clock += 60_000;
    expect(await run.send({ customerId: CUSTOMER, messageId: outage.id })).toMatchObject({ outcome: 'waiting' });
    clock += 61_000;
    expect(await run.send({ customerId: CUSTOMER, messageId: outage.id })).toEqual({ outcome: 'sent' });

    expect(await run.send({ customerId: CUSTOMER, messageId: unknown.id })).toEqual({ outcome: 'failed' });
    expect(await kit.message(CUSTOMER, unknown.id)).toMatchObject({
      status: 'failed',
      lastError: { class: 'permanent', code: 'ErrorInvalidUser', nextStep: expect.stringMatching(/mailbox address/) as unknown },
      attempts: [{ outcome: 'failed' }],
    });
    const failedEvent = (await env.services.repositories.events.all(CUSTOMER)).find((e) => e.data.messageId === unknown.id);
    expect(failedEvent).toMatchObject({ type: 'message.failed', data: { reason: { class: 'permanent', code: 'ErrorInvalidUser' } } });
  });

  it('waits while the connection needs a reconnect, and sends once it is connected again', async () => {
    const sender = await newSender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const message = await kit.submitUnqueued(connection, { to: [adele()], subject: 'After the reconnect', text: 'patience' });
    await changeConnectionState(env.services.api.connections, CUSTOMER, connection.id, 'needs_admin', { code: 'AADSTS65001', message: 'consent revoked' });
    let clock = Date.now();
    const run = kit.direct({ now: () => new Date(clock) });
    expect(await run.send({ customerId: CUSTOMER, messageId: message.id })).toEqual({ outcome: 'deferred' });
    expect(await kit.message(CUSTOMER, message.id)).toMatchObject({ status: 'deferred', attemptCount: 0, lastError: { class: 'connection', code: 'needs_admin' } });
    clock += 5 * 60_000;
    // Still waiting: no second deferred event for the same reason.
    expect(await run.send({ customerId: CUSTOMER, messageId: message.id })).toEqual({ outcome: 'deferred' });
    await changeConnectionState(env.services.api.connections, CUSTOMER, connection.id, 'connected', undefined);
    clock += 5 * 60_000;
    expect(await run.send({ customerId: CUSTOMER, messageId: message.id })).toEqual({ outcome: 'sent' });
    const events = (await env.services.repositories.events.all(CUSTOMER)).filter((e) => e.data.messageId === message.id).map((e) => e.type);
    expect(events).toEqual(['message.deferred', 'message.sent']);
  });

  it('refuses header injection, bad addresses, unknown mailboxes and oversized messages with problem+json, storing nothing', async () => {
    const sender = await newSender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const path = messagesPath(connection.id);
    const base = { to: [adele()], subject: 'ok', text: 'ok' };
    const cases: [unknown, number, string][] = [
      [{ ...base, subject: 'Hi\r\nBcc: victim@example.com' }, 400, '/body/subject'],
      [{ ...base, headers: { 'X-Trace': 'a\nBcc: victim@example.com' } }, 400, '/body/headers/X-Trace'],
      [{ ...base, headers: { Bcc: 'victim@example.com' } }, 400, '/body/headers/Bcc'],
      [{ ...base, to: [{ address: adele(), name: 'Adele\r\nX-Injected: 1' }] }, 400, '/body/to/0/name'],
      [{ ...base, to: ['Adele <adele@contoso.com>'] }, 400, '/body/to/0'],
      [{ ...base, to: ['not an address'] }, 400, '/body/to/0'],
      [{ ...base, attachments: [{ filename: 'a.txt\r\nContent-Type: text/html', content: 'aGk=' }] }, 400, '/body/attachments/0/filename'],
      [{ ...base, from: `stranger@${contoso.domain}` }, 400, '/body/from'],
      [{ ...base, attachments: [{ filename: 'big.bin', content: randomBytes(27 * 1024 * 1024).toString('base64') }] }, 413, '/body/attachments'],
    ];
    for (const [body, status, pointer] of cases) {
      const response = await kit.api(path, { body });
      expect(response.status, JSON.stringify(response.body)).toBe(status);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect((response.body as { errors?: { pointer: string }[] }).errors?.map((e) => e.pointer)).toContain(pointer);
    }
    const tooBig = await kit.api(path, { body: '{"x":"' + 'a'.repeat(65 * 1024 * 1024) + '"}' });
    expect(tooBig.status).toBe(413);
    const stored = await env.services.repositories.outbox.all(CUSTOMER);
    expect(stored.filter((m) => m.connectionId === connection.id)).toHaveLength(0);
    // A refused request does not use up its Idempotency-Key: the corrected one goes through under it.
    const retried = { 'idempotency-key': `corrected-${String(Date.now())}` };
    expect((await kit.api(path, { body: { ...base, subject: 'bad\nsubject' }, headers: retried })).status).toBe(400);
    expect((await kit.api(path, { body: { ...base, attachments: [{ filename: 'x.bin', uploadId: 'att_01J00000000000000000000000' }] }, headers: retried })).status).toBe(400);
    expect((await kit.api(path, { body: base, headers: retried })).status).toBe(202);
    // Another customer's message is not found, whatever its id.
    expect((await kit.api(`${path}/msg_01J00000000000000000000000`)).status).toBe(404);
    expect(await env.services.repositories.outbox.get(keys.outboundMessage(CUSTOMER, 'msg_01J00000000000000000000000'))).toBeUndefined();
  }, 60_000);
});
