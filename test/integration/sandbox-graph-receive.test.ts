import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import { closeServer } from '../support/close-server.js';
import { graphTokens, organization, type Organization } from '../support/sandbox-organization.js';
import { waitFor } from '../support/wait.js';

/**
 * The receiving half of the sandbox Microsoft Graph (local/sandbox/graph): message delta queries
 * per folder, change notification subscriptions with their validation handshake, notifications and
 * lifecycle notifications to a local receiver, and the control calls that put mail into a mailbox,
 * forget delta tokens and drop notifications. Called with fetch and real tokens from the sandbox
 * identity platform, as the connector's Graph transport will call graph.microsoft.com.
 */

const HOUR = 3_600_000;
const ACCESS_DENIED = 'Access is denied. Check credentials and try again.';
const IMMUTABLE = { Prefer: 'IdType="ImmutableId"' };

let sandbox: RunningSandboxIdentity;
let workDir: string;
/** Added to the sandbox's clock. */
let clockOffset = 0;
const receivers: Receiver[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'sandbox-graph-receive-'));
  sandbox = await startSandboxIdentity({ caDirectory: join(workDir, 'ca'), lifetimes: { accessTokenSeconds: 24 * 3600 }, now: () => Date.now() + clockOffset });
  setDefaultCACertificates([...getCACertificates('default'), sandbox.caPem]);
  // Retries within a test's time, not Graph's four hours.
  await sandbox.control.setNotificationDelivery({ retryDelaysMs: [100, 200], timeoutMs: 2_000, batchDelayMs: 10 });
});

afterEach(async () => {
  clockOffset = 0;
  await Promise.all(receivers.splice(0).map((r) => closeServer(r.server)));
});

afterAll(async () => {
  await sandbox.stop();
  await rm(workDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** A Graph call: a path after /v1.0 or a whole URL (nextLink, deltaLink, Location). */
async function graph(method: string, pathOrUrl: string, token: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const url = pathOrUrl.startsWith('https://') ? pathOrUrl : `${sandbox.graphBase}/v1.0${pathOrUrl}`;
  const response = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function expectGraphError(result: Answer, status: number, code: string, message?: string): void {
  const error = result.body.error as { code?: string; message?: string } | undefined;
  expect({ status: result.status, code: error?.code }).toEqual({ status, code });
  if (message !== undefined) expect(error?.message).toBe(message);
}

type Item = Record<string, unknown> & { id: string };

interface Page {
  value: Item[];
  next?: string;
  delta?: string;
}

async function deltaPage(url: string, token: string, headers: Record<string, string> = {}): Promise<Page> {
  const answer = await graph('GET', url, token, undefined, headers);
  expect(answer.status).toBe(200);
  return {
    value: answer.body.value as Item[],
    ...(typeof answer.body['@odata.nextLink'] === 'string' ? { next: answer.body['@odata.nextLink'] } : {}),
    ...(typeof answer.body['@odata.deltaLink'] === 'string' ? { delta: answer.body['@odata.deltaLink'] } : {}),
  };
}

/** Follows nextLinks to the end of a round: every item and the deltaLink. */
async function deltaRound(url: string, token: string, headers: Record<string, string> = {}): Promise<{ items: Item[]; pages: number; deltaLink: string }> {
  const items: Item[] = [];
  let pages = 0;
  let page = await deltaPage(url, token, headers);
  for (;;) {
    pages += 1;
    items.push(...page.value);
    if (page.delta !== undefined) return { items, pages, deltaLink: page.delta };
    if (page.next === undefined) throw new Error('a page with neither link');
    page = await deltaPage(page.next, token, headers);
  }
}

interface Received {
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A notification endpoint: answers the validation handshake with the token (unless `validation`
 * says otherwise) and records everything else, answering with `reply`.
 */
interface Receiver {
  server: Server;
  url: string;
  validations: Received[];
  notifications: Received[];
  validation: (token: string) => { status: number; body: string };
  reply: (index: number) => number;
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    server: createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received = { url: request.url ?? '/', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') };
        // As a receiver reads it: URLSearchParams decodes the form encoding ('+' for spaces).
        const token = new URL(received.url, 'http://receiver').searchParams.get('validationToken');
        if (token !== null) {
          receiver.validations.push(received);
          const answer = receiver.validation(token);
          response.writeHead(answer.status, { 'Content-Type': 'text/plain' }).end(answer.body);
          return;
        }
        const index = receiver.notifications.length;
        receiver.notifications.push(received);
        response.writeHead(receiver.reply(index)).end();
      });
    }),
    url: '',
    validations: [],
    notifications: [],
    validation: (token) => ({ status: 200, body: token }),
    reply: () => 202,
  };
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${String((receiver.server.address() as AddressInfo).port)}`;
  receivers.push(receiver);
  return receiver;
}

/** Every notification the receiver took, flattened from their `value` arrays. */
const notificationsOf = (receiver: Receiver) => receiver.notifications.flatMap((n) => (JSON.parse(n.body) as { value: Record<string, unknown>[] }).value);

const appToken = (org: Organization) => graphTokens(sandbox, org).app();
const inFuture = (ms: number) => new Date(Date.now() + clockOffset + ms).toISOString();
const inboxDelta = (upn: string) => `/users/${upn}/mailFolders/inbox/messages/delta`;

describe('delta for the messages of a folder', () => {
  it('pages the initial round with nextLinks, then a round from the deltaLink sees a new message once and a deleted one as @removed', async () => {
    const org = await organization(sandbox, 'Delta Paging', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const first = await sandbox.control.injectMessage({ address: upn, subject: 'first', text: 'one' });
    await sandbox.control.injectMessage({ address: upn, subject: 'second', text: 'two' });
    await sandbox.control.injectMessage({ address: upn, subject: 'third', text: 'three' });

    const page1 = await deltaPage(`${inboxDelta(upn)}?$select=subject,isRead`, token, { Prefer: 'odata.maxpagesize=2' });
    expect(page1.value.map((m) => m.subject)).toEqual(['third', 'second']);
    expect(page1.value[0]).toMatchObject({ '@odata.type': '#microsoft.graph.message', isRead: false });
    expect(Object.keys(page1.value[0] ?? {}).sort()).toEqual(['@odata.etag', '@odata.type', 'id', 'isRead', 'subject']);
    expect(page1.next).toMatch(new RegExp(`^${sandbox.graphBase}/v1\\.0/users/.+/mailFolders\\('inbox'\\)/messages/delta\\?\\$skiptoken=[\\w-]+$`));
    const page2 = await deltaPage(page1.next ?? '', token, { Prefer: 'odata.maxpagesize=2' });
    expect(page2.value.map((m) => m.subject)).toEqual(['first']);
    expect(page2.delta).toMatch(/\/messages\/delta\?\$deltatoken=[\w-]+$/);

    const fourth = await sandbox.control.injectMessage({ address: upn, subject: 'fourth' });
    await sandbox.control.deleteMessage({ address: upn, messageId: first.id });
    const next = await deltaRound(page2.delta ?? '', token);
    expect(next.items).toEqual([
      expect.objectContaining({ id: fourth.id, subject: 'fourth' }),
      { '@odata.type': '#microsoft.graph.message', id: first.id, '@removed': { reason: 'deleted' } },
    ]);
    // The $select of the first request rides in the tokens.
    expect(next.items[0]).not.toHaveProperty('body');

    const quiet = await deltaRound(next.deltaLink, token);
    expect(quiet.items).toEqual([]);
  });

  it('$filter=receivedDateTime ge, $top, a message moved in and out, and immutable ids that survive the move', async () => {
    const org = await organization(sandbox, 'Delta Filter', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const now = Date.now();
    await sandbox.control.injectMessage({ address: upn, subject: 'old', receivedDateTime: new Date(now - 48 * HOUR).toISOString() });
    const recent = await sandbox.control.injectMessage({ address: upn, subject: 'recent', receivedDateTime: new Date(now - HOUR).toISOString() });
    const newest = await sandbox.control.injectMessage({ address: upn, subject: 'newest' });
    const since = new Date(now - 24 * HOUR).toISOString();

    const round = await deltaRound(`${inboxDelta(upn)}?$filter=${encodeURIComponent(`receivedDateTime ge ${since}`)}&$top=1&$select=subject`, token, IMMUTABLE);
    expect(round.items.map((m) => m.subject)).toEqual(['newest', 'recent']);
    expect(round.pages).toBe(2);

    await sandbox.control.injectMessage({ address: upn, subject: 'late but old', receivedDateTime: new Date(now - 72 * HOUR).toISOString() });
    const moved = await sandbox.control.moveMessage({ address: upn, messageId: recent.id, folder: 'archive' });
    expect({ id: moved.id, folder: moved.folder }).toEqual({ id: recent.id, folder: 'archive' });
    expect(moved.regularId).not.toBe(recent.id);

    const after = await deltaRound(round.deltaLink, token, IMMUTABLE);
    expect(after.items).toEqual([{ '@odata.type': '#microsoft.graph.message', id: recent.id, '@removed': { reason: 'deleted' } }]);

    const archive = await deltaRound(`/users/${upn}/mailFolders('archive')/messages/delta?$select=subject`, token, IMMUTABLE);
    expect(archive.items).toEqual([expect.objectContaining({ id: recent.id, subject: 'recent' })]);

    // Without the preference, Graph shows the regular id, which changed with the move; both find the message.
    const regular = await graph('GET', `/users/${upn}/messages/${moved.regularId}?$select=subject`, token);
    expect(regular.body).toMatchObject({ id: moved.regularId, subject: 'recent' });
    expect(regular.headers.get('preference-applied')).toBeNull();
    const immutable = await graph('GET', `/users/${upn}/messages/${recent.id}?$select=subject`, token, undefined, IMMUTABLE);
    expect(immutable.body).toMatchObject({ id: recent.id, subject: 'recent' });
    expect(immutable.headers.get('preference-applied')).toBe('IdType="ImmutableId"');
    expect(newest.id).not.toBe(recent.id);
  });

  it('a received message reads whole with $value, by immutable id', async () => {
    const org = await organization(sandbox, 'Delta Mime', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const mime = ['From: Partner <partner@example.com>', `To: ${upn}`, 'Subject: Invoice 7', 'Message-ID: <invoice-7@example.com>', 'X-Ticket: 7', '', 'Please pay.', ''].join('\r\n');
    const injected = await sandbox.control.injectMessage({ address: upn, mime: Buffer.from(mime).toString('base64') });
    expect(injected.internetMessageId).toBe('<invoice-7@example.com>');
    const response = await fetch(`${sandbox.graphBase}/v1.0/users/${upn}/messages/${injected.id}/$value`, { headers: { Authorization: `Bearer ${token}`, ...IMMUTABLE } });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text).toContain('Message-ID: <invoice-7@example.com>');
    expect(text).toMatch(/X-Ticket: 7/);
    expect(text).toContain('Please pay.');
  });

  it('a forgotten token answers 410 Gone with SyncStateNotFound and a Location that starts over; an unreadable one 400', async () => {
    const org = await organization(sandbox, 'Delta Stale', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    await sandbox.control.injectMessage({ address: upn, subject: 'kept' });
    const round = await deltaRound(`${inboxDelta(upn)}?$select=subject`, token);
    await sandbox.control.expireDeltaTokens({ address: upn });

    const gone = await graph('GET', round.deltaLink, token);
    expectGraphError(gone, 410, 'SyncStateNotFound');
    const location = gone.headers.get('location') ?? '';
    expect(location).toMatch(/\/users\/.+\/mailFolders\('inbox'\)\/messages\/delta\?\$select=subject&\$deltatoken=$/);
    const again = await deltaRound(location, token);
    expect(again.items.map((m) => m.subject)).toEqual(['kept']);
    // Tokens issued after the expiry work.
    expect((await deltaRound(again.deltaLink, token)).items).toEqual([]);

    expectGraphError(await graph('GET', `${inboxDelta(upn)}?$deltatoken=not-a-token`, token), 400, 'ErrorInvalidSyncStateData');
    expectGraphError(await graph('GET', `/users/${upn}/messages/delta`, token), 400, 'BadRequest');
  });

  it('needs permission to read the mailbox', async () => {
    const org = await organization(sandbox, 'Delta Senders', { appRoles: ['Mail.Send'] });
    expectGraphError(await graph('GET', inboxDelta(org.megan.userPrincipalName), await appToken(org)), 403, 'ErrorAccessDenied', ACCESS_DENIED);
  });
});

describe('subscriptions', () => {
  const subscribe = (token: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => graph('POST', '/subscriptions', token, body, headers);

  it('validates the notification URL, then notifies it of new mail in the folder with the clientState; the app lists and reads it', async () => {
    const org = await organization(sandbox, 'Notified', { appRoles: ['Mail.Read', 'Mail.Send'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const receiver = await startReceiver();
    const expiration = inFuture(2 * HOUR);
    const created = await subscribe(
      token,
      { changeType: 'created', notificationUrl: `${receiver.url}/notify?tenant=a`, resource: `/users/${upn}/mailFolders('inbox')/messages`, expirationDateTime: expiration, clientState: 'secret-state' },
      IMMUTABLE,
    );
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#subscriptions/$entity`,
      resource: `/users/${upn}/mailFolders('inbox')/messages`,
      applicationId: org.clientId,
      changeType: 'created',
      clientState: 'secret-state',
      notificationUrl: `${receiver.url}/notify?tenant=a`,
      lifecycleNotificationUrl: null,
      includeResourceData: false,
      latestSupportedTlsVersion: 'v1_2',
    });
    const id = created.body.id as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(created.body.expirationDateTime as string)).toBe(Date.parse(expiration));

    expect(receiver.validations).toHaveLength(1);
    const [validation] = receiver.validations;
    expect(validation?.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(validation?.url).toMatch(/^\/notify\?tenant=a&validationToken=Validation%3a\+Testing\+client\+application\+reachability/);

    const injected = await sandbox.control.injectMessage({ address: upn, subject: 'Hello', from: 'partner@example.com' });
    await sandbox.control.injectMessage({ address: upn, folder: 'junkemail', subject: 'Spam' });
    await waitFor(() => receiver.notifications.length >= 1);
    expect(receiver.notifications[0]?.headers['content-type']).toMatch(/^application\/json/);
    expect(receiver.notifications[0]?.url).toBe('/notify?tenant=a');
    const path = `Users/${org.megan.id}/Messages/${injected.id}`;
    expect(notificationsOf(receiver)).toEqual([
      {
        subscriptionId: id,
        subscriptionExpirationDateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/) as unknown,
        changeType: 'created',
        resource: path,
        resourceData: { '@odata.type': '#Microsoft.Graph.Message', '@odata.id': path, '@odata.etag': expect.stringMatching(/^W\/".+"$/) as unknown, id: injected.id },
        clientState: 'secret-state',
        tenantId: org.tenant.id,
      },
    ]);

    // Mail sent to the mailbox from inside the sandbox is news too.
    const sent = await graph('POST', `/users/${org.adele.userPrincipalName}/sendMail`, token, { message: { subject: 'From Adele', body: { contentType: 'Text', content: 'hi' }, toRecipients: [{ emailAddress: { address: upn } }] } });
    expect(sent.status).toBe(202);
    await waitFor(() => notificationsOf(receiver).length >= 2);
    const [delivered] = await sandbox.control.messages(upn, 'inbox');
    expect(notificationsOf(receiver)[1]).toMatchObject({ resourceData: { id: delivered?.id } });

    const listed = await graph('GET', '/subscriptions', token);
    expect((listed.body.value as { id: string }[]).map((s) => s.id)).toEqual([id]);
    expect((await graph('GET', `/subscriptions/${id}`, token)).body).toMatchObject({ id, clientState: 'secret-state' });
    const other = await organization(sandbox, 'Not Mine', { appRoles: ['Mail.Read'] });
    expectGraphError(await graph('GET', `/subscriptions/${id}`, await appToken(other)), 404, 'ResourceNotFound', 'The object was not found.');
    expect((await sandbox.control.subscriptions()).find((s) => s.id === id)).toMatchObject({ mailbox: upn, folder: 'inbox', immutableIds: true, delivery: { delivered: 2, failedAttempts: 0 } });
  });

  it('a failed validation (wrong status, wrong body) is 400 and leaves no subscription', async () => {
    const org = await organization(sandbox, 'Unvalidated', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const receiver = await startReceiver();
    const body = { changeType: 'created', notificationUrl: `${receiver.url}/notify`, resource: `users/${org.megan.userPrincipalName}/messages`, expirationDateTime: inFuture(HOUR) };

    receiver.validation = () => ({ status: 500, body: '' });
    expectGraphError(await subscribe(token, body), 400, 'ValidationError', 'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.');
    // Echoing the token still encoded is the classic mistake.
    receiver.validation = (t) => ({ status: 200, body: encodeURIComponent(t) });
    expectGraphError(await subscribe(token, body), 400, 'ValidationError', 'Subscription validation request failed. Response must exactly match validationToken query parameter.');
    expect(receiver.validations).toHaveLength(2);
    expect((await graph('GET', '/subscriptions', token)).body.value).toEqual([]);
    expect((await sandbox.control.subscriptions()).filter((s) => s.applicationId === org.clientId)).toEqual([]);
  });

  it('retries a notification the endpoint answered with 500', async () => {
    const org = await organization(sandbox, 'Retried', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const receiver = await startReceiver();
    receiver.reply = (index) => (index === 0 ? 500 : 202);
    const created = await subscribe(token, { changeType: 'created', notificationUrl: receiver.url, resource: `/users/${upn}/messages`, expirationDateTime: inFuture(HOUR), clientState: 'c' });
    const injected = await sandbox.control.injectMessage({ address: upn, subject: 'again' });
    await waitFor(() => receiver.notifications.length >= 2);
    expect(receiver.notifications[0]?.body).toBe(receiver.notifications[1]?.body);
    expect(notificationsOf(receiver)[1]).toMatchObject({ subscriptionId: created.body.id, resourceData: { id: injected.id } });
    const [view] = (await sandbox.control.subscriptions()).filter((s) => s.id === created.body.id);
    expect(view?.delivery).toMatchObject({ delivered: 1, failedAttempts: 1, dropped: 0 });
  });

  it('renews with PATCH within 10,080 minutes, refuses beyond, deletes with 204, and an expired one is gone', async () => {
    const org = await organization(sandbox, 'Renewed', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const receiver = await startReceiver();
    const resource = `/users/${upn}/mailFolders('inbox')/messages`;
    const tooFar = 'Subscription expiration can only be 10080 minutes in the future.';
    expectGraphError(await subscribe(token, { changeType: 'created', notificationUrl: receiver.url, resource, expirationDateTime: inFuture(10_081 * 60_000) }), 400, 'ExtensionError', tooFar);
    expectGraphError(await subscribe(token, { changeType: 'created', notificationUrl: receiver.url, resource }), 400, 'InvalidRequest', 'expirationDateTime is a required property for subscription creation.');
    expectGraphError(await subscribe(token, { changeType: 'created', notificationUrl: 'http://example.com/notify', resource, expirationDateTime: inFuture(HOUR) }), 400, 'InvalidRequest', "NotificationUrl scheme='http' is not supported.");

    const created = await subscribe(token, { changeType: 'created', notificationUrl: receiver.url, resource, expirationDateTime: inFuture(HOUR) });
    const id = created.body.id as string;
    const renewedUntil = inFuture(10_000 * 60_000);
    const renewed = await graph('PATCH', `/subscriptions/${id}`, token, { expirationDateTime: renewedUntil });
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expirationDateTime as string)).toBe(Date.parse(renewedUntil));
    expectGraphError(await graph('PATCH', `/subscriptions/${id}`, token, { expirationDateTime: inFuture(10_081 * 60_000) }), 400, 'ExtensionError', tooFar);

    expect((await graph('DELETE', `/subscriptions/${id}`, token)).status).toBe(204);
    expectGraphError(await graph('GET', `/subscriptions/${id}`, token), 404, 'ResourceNotFound');
    await sandbox.control.injectMessage({ address: upn, subject: 'nobody listens' });

    const short = await subscribe(token, { changeType: 'created', notificationUrl: receiver.url, resource, expirationDateTime: inFuture(HOUR) });
    clockOffset += 2 * HOUR;
    expectGraphError(await graph('GET', `/subscriptions/${short.body.id as string}`, await appToken(org)), 404, 'ResourceNotFound');
    await sandbox.control.injectMessage({ address: upn, subject: 'expired' });
    expect((await sandbox.control.subscriptions()).filter((s) => s.applicationId === org.clientId)).toEqual([]);
    // A live subscription's notification, queued after the others would have been, is the only one that comes.
    const sentinel = await subscribe(await appToken(org), { changeType: 'created', notificationUrl: `${receiver.url}/sentinel`, resource, expirationDateTime: inFuture(HOUR) });
    expect(sentinel.status).toBe(201);
    await sandbox.control.injectMessage({ address: upn, subject: 'after' });
    await waitFor(() => receiver.notifications.length >= 1);
    expect(receiver.notifications.map((n) => n.url)).toEqual(['/sentinel']);
  });

  it('lifecycle notifications: reauthorizationRequired, missed after dropped notifications, and subscriptionRemoved, which removes it', async () => {
    const org = await organization(sandbox, 'Lifecycle', { appRoles: ['Mail.Read'] });
    const token = await appToken(org);
    const upn = org.megan.userPrincipalName;
    const receiver = await startReceiver();
    const lifecycle = await startReceiver();
    const created = await subscribe(token, {
      changeType: 'created',
      notificationUrl: receiver.url,
      lifecycleNotificationUrl: `${lifecycle.url}/lifecycle`,
      resource: `/users/${upn}/mailFolders('inbox')/messages`,
      expirationDateTime: inFuture(HOUR),
      clientState: 'life',
    });
    expect(created.status).toBe(201);
    expect(lifecycle.validations).toHaveLength(1);
    const id = created.body.id as string;
    const events = () => notificationsOf(lifecycle);

    expect(await sandbox.control.sendLifecycleEvent({ subscriptionId: id, lifecycleEvent: 'reauthorizationRequired' })).toEqual({ sent: true });
    await waitFor(() => events().length >= 1);
    expect(events()[0]).toEqual({
      subscriptionId: id,
      subscriptionExpirationDateTime: expect.any(String) as unknown,
      tenantId: org.tenant.id,
      clientState: 'life',
      lifecycleEvent: 'reauthorizationRequired',
    });
    expect((await sandbox.control.subscriptions()).find((s) => s.id === id)?.needsReauthorization).toBe(true);
    expect((await graph('POST', `/subscriptions/${id}/reauthorize`, token)).status).toBe(204);
    expect((await sandbox.control.subscriptions()).find((s) => s.id === id)?.needsReauthorization).toBe(false);

    expect(await sandbox.control.dropNotifications({ address: upn, count: 1 })).toEqual({ subscriptions: [id] });
    await sandbox.control.injectMessage({ address: upn, subject: 'dropped' });
    await waitFor(() => events().length >= 2);
    expect(events()[1]).toMatchObject({ subscriptionId: id, lifecycleEvent: 'missed' });
    const kept = await sandbox.control.injectMessage({ address: upn, subject: 'kept' });
    await waitFor(() => receiver.notifications.length >= 1);
    expect(notificationsOf(receiver).map((n) => (n.resourceData as { id: string }).id)).toEqual([kept.regularId]);

    await sandbox.control.sendLifecycleEvent({ subscriptionId: id, lifecycleEvent: 'subscriptionRemoved' });
    await waitFor(() => events().length >= 3);
    expect(events()[2]).toMatchObject({ subscriptionId: id, lifecycleEvent: 'subscriptionRemoved' });
    expectGraphError(await graph('GET', `/subscriptions/${id}`, token), 404, 'ResourceNotFound');
    expect(lifecycle.notifications.every((n) => n.url === '/lifecycle')).toBe(true);
  });

  it('needs read access to the mailbox: 403 without a mail read permission, and for a delegated caller on another user\'s mailbox', async () => {
    const receiver = await startReceiver();
    const senders = await organization(sandbox, 'Subscribing Senders', { appRoles: ['Mail.Send'] });
    const body = (resource: string) => ({ changeType: 'created', notificationUrl: receiver.url, resource, expirationDateTime: inFuture(HOUR) });
    const denied = `Operation: Create; Exception: [Status Code: Forbidden; Reason: ${ACCESS_DENIED}]`;
    expectGraphError(await subscribe(await appToken(senders), body(`/users/${senders.megan.userPrincipalName}/messages`)), 403, 'ExtensionError', denied);

    const delegates = await organization(sandbox, 'Subscribing Delegates', { delegated: ['Mail.Read'] });
    const megan = await graphTokens(sandbox, delegates).user(delegates.megan.userPrincipalName);
    expectGraphError(await subscribe(megan, body(`/users/${delegates.adele.userPrincipalName}/messages`)), 403, 'ExtensionError', denied);
    const own = await subscribe(megan, body("/me/mailFolders('Inbox')/messages"));
    expect(own.status).toBe(201);
    expect(own.body.creatorId).toBe(delegates.megan.id);
    expect(receiver.validations).toHaveLength(1);
  });
});
