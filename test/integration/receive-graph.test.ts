import { randomUUID } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Connection } from '../../src/domain/connection.js';
import type { Mailbox } from '../../src/domain/mailbox.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { freePort } from '../../local/free-port.js';
import { mailboxOf, receiveTestKit, type ReceiveTestKit } from '../support/receive-environment.js';
import { hashClientState } from '../../src/receiving/graph-subscriptions.js';
import { ReceiveAttemptError } from '../../src/mail/mail-receiver.js';
import { sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { waitFor } from '../support/wait.js';

/**
 * Receiving through Microsoft Graph, end to end against the sandbox: the first look subscribes
 * (Graph validates the local host's notification URL), mail injected into the sandbox mailbox is
 * announced by a change notification, fetched and emitted once; the delta rounds that also see it
 * emit nothing more, also after Graph forgot the sync state (410). Lifecycle notifications,
 * forged notifications, the fallback to polling, and the raw download.
 */

let env: ConnectEnvironment;
let kit: SendTestKit;
let receive: ReceiveTestKit;
let contoso: Directory;
const CUSTOMER = 'graph-receiver';
let agents = 0;

beforeAll(async () => {
  env = await startConnectEnvironment({ storageConnectionString: inject('storageConnectionString') });
  kit = await sendTestKit(env);
  receive = receiveTestKit(env);
  contoso = await env.createDirectory('Contoso Receive');
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

/** An application connection receiving by Graph from a mailbox of its own. */
async function watched(): Promise<{ connection: Connection; mailbox: Mailbox; address: string }> {
  agents += 1;
  const address = `inbox${String(agents)}@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: address, displayName: `Inbox ${String(agents)}` });
  const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [address]);
  return { connection, mailbox: await mailboxOf(env, connection, address), address };
}

const messageId = () => `<${randomUUID()}@customer.example>`;

describe('receiving through Graph', () => {
  it('the first look subscribes; a new message is emitted once by its notification, and the delta catch-up does not emit it again', async () => {
    const { mailbox, address } = await watched();
    const first = await receive.poll(mailbox);
    expect(first).toMatchObject({ outcome: 'polled', found: 0, mode: 'notifications' });
    const [subscription] = (await env.sandbox.control.subscriptions()).filter((s) => s.mailbox.toLowerCase() === address.toLowerCase());
    expect(subscription).toMatchObject({ changeType: 'created', notificationUrl: `${env.baseUrl}/api/graph/notifications`, lifecycleNotificationUrl: `${env.baseUrl}/api/graph/lifecycle` });

    const id = messageId();
    await env.sandbox.control.injectMessage({
      address,
      from: { name: 'Ana Lima', address: 'ana@customer.example' },
      subject: 'Where is my order?',
      text: 'Hello, my order #12 has not arrived.',
      internetMessageId: id,
      headers: [{ name: 'In-Reply-To', value: '<earlier@contoso.example>' }],
      attachments: [{ name: 'photo.png', contentType: 'image/png', contentBase64: Buffer.from('not really a png').toString('base64') }],
    });
    const event = await receive.receivedOnce(CUSTOMER, id);
    expect(event.data).toMatchObject({
      mailbox: address,
      transport: 'graph',
      from: { address: 'ana@customer.example', name: 'Ana Lima' },
      subject: 'Where is my order?',
      internetMessageId: id,
      preview: 'Hello, my order #12 has not arrived.',
      attachments: [{ index: 0, filename: 'photo.png', contentType: 'image/png', size: 16, inline: false }],
    });

    const catchUp = await receive.poll(mailbox);
    expect(catchUp).toMatchObject({ outcome: 'polled', emitted: 0 });
    if (catchUp.outcome === 'polled') expect(catchUp.found).toBeGreaterThanOrEqual(1);
    expect(await receive.received(CUSTOMER, id)).toHaveLength(1);

    // The status says how the mailbox is received.
    const view = await kit.api(`v1/customers/${CUSTOMER}/connections/${mailbox.connectionId}/mailboxes/${mailbox.id}`);
    expect(view.body).toMatchObject({ receiving: { transport: 'graph', mode: 'notifications', consecutiveFailures: 0, subscriptionExpiresAt: expect.any(String) as unknown } });
  });

  it('the raw message and its attachments download with the API key; a message of another connection is not found', async () => {
    const { connection, mailbox, address } = await watched();
    await receive.poll(mailbox);
    const id = messageId();
    await env.sandbox.control.injectMessage({
      address,
      from: 'sender@customer.example',
      subject: 'Contract',
      html: '<p>See attached</p>',
      internetMessageId: id,
      attachments: [{ name: 'contrato ação.pdf', contentType: 'application/pdf', contentBase64: Buffer.from('%PDF-1.7').toString('base64') }],
    });
    const event = await receive.receivedOnce(CUSTOMER, id);
    expect(event.data.raw.url).toBe(`${env.baseUrl}/api/v1/customers/${CUSTOMER}/connections/${connection.id}/messages/${event.data.messageId}/raw`);

    const path = `v1/customers/${CUSTOMER}/connections/${connection.id}/messages/${event.data.messageId}`;
    const raw = await fetch(`${env.baseUrl}/api/${path}/raw`, { headers: { authorization: kit.authorization } });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toBe('message/rfc822');
    expect(raw.headers.get('cache-control')).toBe('private, no-store');
    const parsed = await simpleParser(Buffer.from(await raw.arrayBuffer()));
    expect(parsed.messageId).toBe(id);

    const attachment = await fetch(`${env.baseUrl}/api/${path}/attachments/0`, { headers: { authorization: kit.authorization } });
    expect(attachment.status).toBe(200);
    expect(attachment.headers.get('content-type')).toBe('application/pdf');
    expect(attachment.headers.get('content-disposition')).toBe(`attachment; filename="contrato a__o.pdf"; filename*=UTF-8''${encodeURIComponent('contrato ação.pdf')}`);
    expect(Buffer.from(await attachment.arrayBuffer()).toString()).toBe('%PDF-1.7');

    expect((await kit.api(path)).body).toMatchObject({ id: event.data.messageId, direction: 'received', internetMessageId: id, subject: 'Contract' });
    expect((await kit.api(`${path}/attachments/1`)).status).toBe(404);
    const other = await watched();
    expect((await kit.api(`v1/customers/${CUSTOMER}/connections/${other.connection.id}/messages/${event.data.messageId}/raw`)).status).toBe(404);
    expect((await fetch(`${env.baseUrl}/api/${path}/raw`)).status).toBe(401);
  });

  it('a lost delta sync state (410 syncStateNotFound) starts a round over without emitting anything twice', async () => {
    const polling = receiveTestKit(env, { notificationUrls: undefined });
    const { mailbox, address } = await watched();
    expect(await polling.poll(mailbox)).toMatchObject({ outcome: 'polled', found: 0, mode: 'polling' });
    const early = messageId();
    await env.sandbox.control.injectMessage({ address, from: 'a@customer.example', subject: 'early', text: 'one', internetMessageId: early });
    expect(await polling.poll(mailbox)).toMatchObject({ outcome: 'polled', found: 1, emitted: 1, resynced: false });
    await env.sandbox.control.expireDeltaTokens({ address });
    const late = messageId();
    await env.sandbox.control.injectMessage({ address, from: 'a@customer.example', subject: 'late', text: 'two', internetMessageId: late });
    // The round starts over from the mailbox's start: both messages are seen again, one is new.
    expect(await polling.poll(mailbox)).toMatchObject({ outcome: 'polled', found: 2, emitted: 1, resynced: true });
    expect(await polling.poll(mailbox)).toMatchObject({ outcome: 'polled', found: 0, emitted: 0, resynced: false });
    expect(await receive.received(CUSTOMER, early)).toHaveLength(1);
    expect(await receive.received(CUSTOMER, late)).toHaveLength(1);
  });

  it('missed notifications: the `missed` lifecycle notification brings a delta catch-up that emits what was lost', async () => {
    const { mailbox, address } = await watched();
    await receive.poll(mailbox);
    await env.sandbox.control.dropNotifications({ address, count: 1 });
    const lost = messageId();
    await env.sandbox.control.injectMessage({ address, from: 'a@customer.example', subject: 'lost', text: 'three', internetMessageId: lost });
    await receive.receivedOnce(CUSTOMER, lost);
    await waitFor(async () => (await receive.state(mailbox))?.lease === undefined);
    expect(await receive.poll(mailbox)).toMatchObject({ outcome: 'polled', emitted: 0 });
    expect(await receive.received(CUSTOMER, lost)).toHaveLength(1);
  });

  it('lifecycle: subscriptionRemoved makes a new subscription; reauthorizationRequired reauthorizes it', async () => {
    const { mailbox, address } = await watched();
    await receive.poll(mailbox);
    const mine = async () => (await env.sandbox.control.subscriptions()).filter((s) => s.mailbox.toLowerCase() === address.toLowerCase());
    const [original] = await mine();
    if (!original) throw new Error('no subscription');

    expect(await env.sandbox.control.sendLifecycleEvent({ subscriptionId: original.id, lifecycleEvent: 'reauthorizationRequired' })).toEqual({ sent: true });
    expect((await mine())[0]?.needsReauthorization).toBe(true);
    await waitFor(async () => (await mine()).some((s) => s.id === original.id && !s.needsReauthorization));

    await env.sandbox.control.sendLifecycleEvent({ subscriptionId: original.id, lifecycleEvent: 'subscriptionRemoved' });
    const [replacement] = await waitFor(async () => {
      const now = await mine();
      return now.length === 1 && now[0]?.id !== original.id && now;
    }, 15_000);
    expect(replacement?.id).not.toBe(original.id);
    // Mail still arrives, once.
    const id = messageId();
    await env.sandbox.control.injectMessage({ address, from: 'b@customer.example', subject: 'after', text: 'three', internetMessageId: id });
    await receive.receivedOnce(CUSTOMER, id);
    expect(await receive.received(CUSTOMER, id)).toHaveLength(1);
  });

  it('a notification with the wrong clientState, or for an unknown subscription, is dropped', async () => {
    const { mailbox, address } = await watched();
    await receive.poll(mailbox);
    const [subscription] = (await env.sandbox.control.subscriptions()).filter((s) => s.mailbox.toLowerCase() === address.toLowerCase());
    if (!subscription) throw new Error('no subscription');
    await env.sandbox.control.dropNotifications({ subscriptionId: subscription.id, count: 1 });
    const id = messageId();
    const injected = await env.sandbox.control.injectMessage({ address, from: 'c@customer.example', subject: 'forged', text: 'x', internetMessageId: id });
    const forged = (clientState: string, subscriptionId = subscription.id) => ({
      subscriptionId,
      clientStateHash: hashClientState(clientState),
      changeType: 'created',
      resource: `Users/x/Messages/${injected.id}`,
      resourceData: { '@odata.type': '#Microsoft.Graph.Message', id: injected.id },
      tenantId: contoso.tenant.id,
    });
    const outcome = await receive.receiving.handleNotifications({ kind: 'change', value: [forged('guessed'), forged('guessed', randomUUID())] });
    expect(outcome).toMatchObject({ rejected: 2, emitted: 0 });
    expect(await receive.received(CUSTOMER, id)).toHaveLength(0);

    // The endpoint answers Graph's validation with the token as plain text, and queues only what looks like a notification.
    const validation = await fetch(`${env.baseUrl}/api/graph/notifications?validationToken=${encodeURIComponent('Validation: token & more')}`, { method: 'POST', headers: { 'content-type': 'text/plain' } });
    expect(validation.status).toBe(200);
    expect(validation.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await validation.text()).toBe('Validation: token & more');
    const notJson = await fetch(`${env.baseUrl}/api/graph/notifications`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"value": [' });
    expect(notJson.status).toBe(400);
    const accepted = await fetch(`${env.baseUrl}/api/graph/lifecycle`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: [{ subscriptionId: subscription.id, clientState: 'guessed', lifecycleEvent: 'missed' }] }),
    });
    expect(accepted.status).toBe(202);
  });

  it('when Graph cannot reach the notification URL, the mailbox polls by delta and says why', async () => {
    const closed = await freePort();
    const unreachable = receiveTestKit(env, { notificationUrls: { notifications: `http://127.0.0.1:${String(closed)}/api/graph/notifications`, lifecycle: `http://127.0.0.1:${String(closed)}/api/graph/lifecycle` } });
    const { mailbox, address } = await watched();
    const look = await unreachable.poll(mailbox);
    expect(look).toMatchObject({ outcome: 'polled', mode: 'polling' });
    const state = await unreachable.state(mailbox);
    expect(state?.modeReason).toMatch(/could not create a change-notification subscription.*polled instead/);
    expect(state?.subscribeAfter).toBeDefined();
    expect((await env.sandbox.control.subscriptions()).some((s) => s.mailbox.toLowerCase() === address.toLowerCase())).toBe(false);

    const id = messageId();
    await env.sandbox.control.injectMessage({ address, from: 'd@customer.example', subject: 'polled', text: 'y', internetMessageId: id });
    expect(await unreachable.poll(mailbox)).toMatchObject({ outcome: 'polled', emitted: 1, mode: 'polling' });
    expect(await receive.received(CUSTOMER, id)).toHaveLength(1);
    const view = await kit.api(`v1/customers/${CUSTOMER}/connections/${mailbox.connectionId}/mailboxes/${mailbox.id}`);
    expect(view.body).toMatchObject({ receiving: { mode: 'polling', modeReason: expect.stringMatching(/polled instead/) as unknown } });
  });

  it('a look that fails after subscribing keeps its subscription: the next look makes no second one', async () => {
    let failDelta = true;
    const breaking = receiveTestKit(env, {
      wrapReceivers: (real) => ({
        ...real,
        graph: {
          ...real.graph,
          delta: (request) => {
            if (!failDelta) return real.graph.delta(request);
            failDelta = false;
            return Promise.reject(new ReceiveAttemptError({ transport: 'graph', kind: 'server', status: 503, detail: 'Graph answered 503' }));
          },
        },
      }),
    });
    const { mailbox, address } = await watched();
    expect(await breaking.poll(mailbox)).toMatchObject({ outcome: 'failed', code: 'graph_server' });
    const mine = async () => (await env.sandbox.control.subscriptions()).filter((s) => s.mailbox.toLowerCase() === address.toLowerCase());
    const [made] = await mine();
    expect(Object.values((await breaking.state(mailbox))?.subscriptions ?? {}).map((s) => s.id)).toEqual([made?.id]);
    expect((await breaking.state(mailbox))?.lastError?.message).toMatch(/tried again with back-off/);
    expect(await breaking.poll(mailbox)).toMatchObject({ outcome: 'polled', mode: 'notifications' });
    expect((await mine()).map((s) => s.id)).toEqual([made?.id]);
  });

  it('subscriptionRemoved during a look is not undone by it, and the look that was asked for runs after it', async () => {
    const { mailbox, address } = await watched();
    await receive.poll(mailbox);
    const mine = async () => (await env.sandbox.control.subscriptions()).filter((s) => s.mailbox.toLowerCase() === address.toLowerCase());
    const [original] = await mine();
    if (!original) throw new Error('no subscription');
    const meanwhile = receiveTestKit(env, {
      wrapReceivers: (real) => ({
        ...real,
        graph: {
          ...real.graph,
          async delta(request) {
            // Graph removes the subscription while this look reads delta.
            await env.sandbox.control.sendLifecycleEvent({ subscriptionId: original.id, lifecycleEvent: 'subscriptionRemoved' });
            await waitFor(async () => !Object.values((await receive.state(mailbox))?.subscriptions ?? {}).some((s) => s.id === original.id));
            return real.graph.delta(request);
          },
        },
      }),
    });
    expect(await meanwhile.poll(mailbox)).toMatchObject({ outcome: 'polled' });
    // The look asked for by the notification found this one running; it runs after, from the queue, and subscribes again.
    const [replacement] = await waitFor(async () => {
      const now = await mine();
      return now.length === 1 && now[0]?.id !== original.id && now;
    }, 15_000);
    await waitFor(async () => {
      const state = await receive.state(mailbox);
      return state?.mode === 'notifications' && Object.values(state.subscriptions ?? {}).map((s) => s.id).join() === replacement?.id;
    });
  });

  it('a large batch of notifications is queued in chunks, and a message notified many times is emitted once', async () => {
    const { mailbox, address } = await watched();
    await receive.poll(mailbox);
    const [subscription] = (await env.sandbox.control.subscriptions()).filter((s) => s.mailbox.toLowerCase() === address.toLowerCase());
    if (!subscription?.clientState) throw new Error('no subscription');
    await env.sandbox.control.dropNotifications({ subscriptionId: subscription.id, count: 1 });
    const id = messageId();
    const injected = await env.sandbox.control.injectMessage({ address, from: 'e@customer.example', subject: 'many', text: 'z'.repeat(100), internetMessageId: id });
    const notification = {
      subscriptionId: subscription.id,
      subscriptionExpirationDateTime: subscription.expirationDateTime,
      changeType: 'created',
      resource: `Users/x/Messages/${injected.id}`,
      resourceData: { '@odata.type': '#Microsoft.Graph.Message', '@odata.id': `Users/x/Messages/${injected.id}`, '@odata.etag': 'W/"x"', id: injected.id },
      clientState: subscription.clientState,
      tenantId: contoso.tenant.id,
    };
    const body = JSON.stringify({ value: Array.from({ length: 150 }, () => notification) });
    expect(body.length).toBeGreaterThan(64 * 1024);
    const posted = await fetch(`${env.baseUrl}/api/graph/notifications`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(posted.status).toBe(202);
    await receive.receivedOnce(CUSTOMER, id);
    // The four queue messages are all handled (none poisoned), and the message stays emitted once.
    const queue = env.services.storage.queueService.getQueueClient('graph-notification');
    await waitFor(async () => (await queue.getProperties()).approximateMessagesCount === 0 && (await receive.received(CUSTOMER, id)).length === 1, 15_000);
    const poison = env.services.storage.queueService.getQueueClient('graph-notification-poison');
    expect((await poison.exists()) ? (await poison.getProperties()).approximateMessagesCount : 0).toBe(0);
  });

  it('a message that cannot be kept fails the look three times, then is set aside so the mailbox goes on', async () => {
    const poisoned = new Set<string>();
    const picky = receiveTestKit(env, {
      notificationUrls: undefined,
      wrapReceivers: (real) => ({
        ...real,
        graph: {
          ...real.graph,
          async raw(target, id) {
            const bytes = await real.graph.raw(target, id);
            if (poisoned.has(id)) throw new TypeError('the MIME broke the parser');
            return bytes;
          },
        },
      }),
    });
    const { mailbox, address } = await watched();
    await picky.poll(mailbox);
    const bad = await env.sandbox.control.injectMessage({ address, from: 'f@customer.example', subject: 'bad', text: 'x', internetMessageId: messageId() });
    poisoned.add(bad.id);
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(await picky.poll(mailbox)).toMatchObject({ outcome: 'failed', code: 'message_not_kept' });
      expect((await picky.state(mailbox))?.stuck).toEqual({ fingerprint: `graph:${bad.id}`, failures: attempt });
    }
    const good = messageId();
    await env.sandbox.control.injectMessage({ address, from: 'f@customer.example', subject: 'good', text: 'y', internetMessageId: good });
    expect(await picky.poll(mailbox)).toMatchObject({ outcome: 'polled', emitted: 1 });
    expect(await receive.received(CUSTOMER, good)).toHaveLength(1);
    expect((await picky.state(mailbox))?.stuck).toBeUndefined();
    expect(picky.metrics.total('receive.messages_set_aside')).toBe(1);
  });
});
