import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { webhookPayload, type EventDelivery } from '../../src/domain/events.js';
import { newId } from '../../src/domain/ids.js';
import type { WebhookEndpoint } from '../../src/domain/webhook-endpoint.js';
import { deliverEvent, type DeliverEventDeps, type DeliveryResult } from '../../src/events/deliver-event.js';
import { deliveryMessageSchema, type DeliveryMessage } from '../../src/events/delivery-message.js';
import { requeueStuckDeliveries } from '../../src/events/delivery-sweep.js';
import { recordEvent, type NewEvent } from '../../src/events/record-event.js';
import { ReplayNotFoundError, replayEvent, replayFailedEvents, type ReplayDeps } from '../../src/events/replay-events.js';
import { WebhookSecretExistsError, WebhookSecrets, webhookSecretName } from '../../src/events/webhook-secrets.js';
import { LocalSecretStore } from '../../src/secrets/local-secret-store.js';
import type { SecretStore } from '../../src/secrets/secret-store.js';
import { PayloadStore } from '../../src/store/payload-store.js';
import { QueuePublisher } from '../../src/store/queue-publisher.js';
import { createRepositories, keys } from '../../src/store/repositories.js';
import { TABLES } from '../../src/store/storage-layout.js';
import { testStorage, uniqueName } from '../support/storage.js';
import { waitFor } from '../support/wait.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * Webhook delivery end to end on Azurite: events recorded as the connector records them, the
 * deliver-event queue driven the way the Functions queue trigger drives it (receive, handle,
 * delete; delayed messages wait for their visibility), and a receiver that verifies every request
 * with the standardwebhooks package. Retry delays are 200 ms steps, which the queue's
 * whole-second resolution turns into 1 s.
 */

const storage = testStorage();
// Tables and queues of this run alone: other test files share the Azurite.
const tablePrefix = uniqueName('webhooks');
const repositories = createRepositories({ ...storage, table: (name) => storage.table(`${tablePrefix}${name}`) });
const publisher = new QueuePublisher(storage.queueService, new PayloadStore(storage.blobService, uniqueName('payloads-')));
let secretDirectory: string;
let secretStore: LocalSecretStore;
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  await storage.tableService.createTable(`${tablePrefix}${TABLES.events}`);
  await storage.tableService.createTable(`${tablePrefix}${TABLES.webhookEndpoints}`);
  secretDirectory = await mkdtemp(join(tmpdir(), 'webhook-secrets-'));
  secretStore = await LocalSecretStore.open(secretDirectory, {});
});

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

afterAll(async () => {
  await rm(secretDirectory, { recursive: true, force: true });
});

interface Handled {
  message: DeliveryMessage;
  result: DeliveryResult;
}

interface ScenarioOptions {
  reply?: WebhookReceiver['reply'];
  retryScheduleMs?: number[];
  timeoutMs?: number;
  secretStore?: Pick<SecretStore, 'get' | 'set' | 'delete'>;
}

async function scenario(options: ScenarioOptions = {}) {
  const queue = uniqueName('deliver-event-');
  const customerId = uniqueName('customer-');
  const secrets = new WebhookSecrets({ store: options.secretStore ?? secretStore });
  const endpointId = newId('whk');
  const secret = await secrets.createEndpointSecret(endpointId);
  const receiver = await startWebhookReceiver({ secrets: [secret], ...(options.reply && { reply: options.reply }) });
  receivers.push(receiver);
  const endpoint: WebhookEndpoint = {
    id: endpointId,
    url: receiver.url,
    customerScope: customerId,
    eventTypes: [],
    enabled: true,
    createdAt: new Date().toISOString(),
  };
  await repositories.webhookEndpoints.create(keys.webhookEndpoint(endpointId), endpoint);

  const deliver: DeliverEventDeps = {
    events: repositories.events,
    endpoints: repositories.webhookEndpoints,
    secrets,
    queues: publisher,
    deliveryQueue: queue,
    retryScheduleMs: options.retryScheduleMs ?? [200, 200, 200],
    allowPrivateNetwork: true,
    ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
  };
  const replay: ReplayDeps = { events: repositories.events, queues: publisher, deliveryQueue: queue };

  return {
    customerId,
    endpointId,
    secret,
    secrets,
    receiver,
    deliver,
    replay,
    queue,
    /** Records an event as the connector does; with the id of a stored one, as a retry does. */
    record: (data: Record<string, unknown> = {}, stored: Pick<NewEvent, 'id' | 'occurredAt'> = {}) =>
      recordEvent(
        { events: repositories.events, endpoints: () => Promise.resolve([endpoint]), queues: publisher, deliveryQueue: queue },
        { type: 'connection.created', customerId, connectionId: newId('con'), data, ...stored },
      ),
    /** Points the endpoint somewhere else, as an admin would. */
    moveEndpoint: (url: string) =>
      repositories.webhookEndpoints.update(keys.webhookEndpoint(endpointId), (current) => {
        if (!current) throw new Error('the endpoint vanished');
        return { ...current, url };
      }),
    /** Drops every waiting message, as when they went to the poison queue or were never queued. */
    loseMessages: () => storage.queueService.getQueueClient(queue).clearMessages(),
    drain: (deps: DeliverEventDeps = deliver) => drainQueue(queue, deps),
    delivery: async (eventId: string): Promise<EventDelivery> => {
      const stored = await repositories.events.get(keys.event(customerId, eventId));
      const [delivery] = stored?.value.deliveries ?? [];
      if (!delivery) throw new Error(`event ${eventId} has no delivery`);
      return delivery;
    },
  };
}

/** Runs the queue as the Functions host would until no message is left, visible or delayed. */
async function drainQueue(queue: string, deps: DeliverEventDeps, timeoutMs = 20_000): Promise<Handled[]> {
  const client = storage.queueService.getQueueClient(queue);
  await client.createIfNotExists();
  const handled: Handled[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { receivedMessageItems } = await client.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
    for (const item of receivedMessageItems) {
      const message = decode(item.messageText);
      handled.push({ message, result: await deliverEvent(deps, message) });
      await client.deleteMessage(item.messageId, item.popReceipt);
    }
    if (receivedMessageItems.length > 0) continue;
    const { approximateMessagesCount = 0 } = await client.getProperties();
    if (approximateMessagesCount === 0) return handled;
    if (Date.now() > deadline) throw new Error(`${queue} still holds ${approximateMessagesCount} messages after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function decode(messageText: string): DeliveryMessage {
  return deliveryMessageSchema.parse(JSON.parse(Buffer.from(messageText, 'base64').toString('utf8')));
}

function webhookIds(receiver: WebhookReceiver): unknown[] {
  return receiver.requests.map((request) => request.headers['webhook-id']);
}

function attemptTimestamps(receiver: WebhookReceiver): number[] {
  return receiver.requests.map((request) => Number(request.headers['webhook-timestamp']));
}

describe('webhook delivery', () => {
  it('delivers a signed event that the receiver verifies', async () => {
    const s = await scenario();
    const event = await s.record({ state: 'pending' });
    const handled = await s.drain();

    expect(handled.map((h) => h.result.outcome)).toEqual(['delivered']);
    const [request] = s.receiver.requests;
    expect(request?.verifiedBy).toEqual([s.secret]);
    expect(request?.body).toBe(JSON.stringify(webhookPayload(event)));
    expect(request?.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': expect.stringMatching(/^m365-connector-webhooks\//) as unknown,
      'webhook-id': event.id,
      'webhook-signature': expect.stringMatching(/^v1,\S+$/) as unknown,
    });
    const delivery = await s.delivery(event.id);
    expect(delivery).toMatchObject({ status: 'delivered', round: 0 });
    expect(delivery.nextAttemptAt).toBeUndefined();
    expect(delivery.attempts).toEqual([
      { number: 1, at: expect.any(String) as unknown, outcome: 'delivered', latencyMs: expect.any(Number) as unknown, httpStatus: 204 },
    ]);
  });

  it('retries after each failure until the receiver takes the event, recording every attempt', async () => {
    const s = await scenario({ reply: (_request, index) => ({ status: index < 3 ? 503 : 200 }) });
    const event = await s.record();
    const handled = await s.drain();

    expect(s.receiver.requests).toHaveLength(4);
    expect(webhookIds(s.receiver)).toEqual([event.id, event.id, event.id, event.id]);
    expect(s.receiver.requests.every((request) => request.verifiedBy.length === 1)).toBe(true);
    const timestamps = attemptTimestamps(s.receiver);
    expect(timestamps).toEqual([...timestamps].sort((a, b) => a - b));
    expect(new Set(timestamps).size).toBe(4);

    const delivery = await s.delivery(event.id);
    expect(delivery.status).toBe('delivered');
    expect(delivery.nextAttemptAt).toBeUndefined();
    expect(delivery.attempts.map((a) => [a.number, a.outcome, a.httpStatus, a.error])).toEqual([
      [1, 'retry', 503, 'HTTP 503'],
      [2, 'retry', 503, 'HTTP 503'],
      [3, 'retry', 503, 'HTTP 503'],
      [4, 'delivered', 200, undefined],
    ]);
    const times = delivery.attempts.map((a) => Date.parse(a.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(delivery.attempts.every((a) => Number.isInteger(a.latencyMs) && a.latencyMs >= 0)).toBe(true);

    // Each retry waited for its queue delay, and the delivery said when it would come.
    for (const [index, { result }] of handled.slice(0, 3).entries()) {
      if (result.outcome !== 'retry') throw new Error(`attempt ${index + 1} was ${result.outcome}`);
      expect(Date.parse(result.nextAttemptAt ?? '') - Date.parse(result.attempt.at)).toBeGreaterThanOrEqual(1000);
      const gap = (s.receiver.requests[index + 1]?.receivedAt ?? 0) - (s.receiver.requests[index]?.receivedAt ?? 0);
      expect(gap).toBeGreaterThanOrEqual(900);
    }
  });

  it('stops at once when the receiver refuses the event with a 4xx', async () => {
    const s = await scenario({ reply: () => ({ status: 400 }) });
    const event = await s.record();
    const handled = await s.drain();

    expect(handled).toHaveLength(1);
    expect(s.receiver.requests).toHaveLength(1);
    const delivery = await s.delivery(event.id);
    expect(delivery.status).toBe('failed');
    expect(delivery.attempts).toHaveLength(1);
    expect(delivery.attempts[0]).toMatchObject({ outcome: 'failed', httpStatus: 400, error: expect.stringMatching(/^HTTP 400/) as unknown });
  });

  it('counts a timeout as a failure to retry', async () => {
    const s = await scenario({ timeoutMs: 300, reply: (_request, index) => (index === 0 ? 'no-answer' : { status: 200 }) });
    const event = await s.record();
    await s.drain();

    expect(webhookIds(s.receiver)).toEqual([event.id, event.id]);
    const delivery = await s.delivery(event.id);
    expect(delivery.status).toBe('delivered');
    expect(delivery.attempts.map((a) => a.outcome)).toEqual(['retry', 'delivered']);
    expect(delivery.attempts[0]?.error).toBe('timeout after 300 ms');
    expect(delivery.attempts[0]?.httpStatus).toBeUndefined();
    expect(delivery.attempts[0]?.latencyMs).toBeGreaterThanOrEqual(250);
  });

  it('marks the delivery failed, and keeps the event, when the schedule is exhausted', async () => {
    const s = await scenario({ retryScheduleMs: [200, 200], reply: () => ({ status: 500 }) });
    const event = await s.record();
    await s.drain();

    expect(s.receiver.requests).toHaveLength(3);
    const stored = await repositories.events.get(keys.event(s.customerId, event.id));
    expect(stored?.value.type).toBe('connection.created');
    const delivery = await s.delivery(event.id);
    expect(delivery.status).toBe('failed');
    expect(delivery.attempts.map((a) => a.outcome)).toEqual(['retry', 'retry', 'failed']);
    expect(delivery.attempts[2]?.error).toBe('HTTP 500; no retries left after 3 attempts');
  });

  it('waits as long as a 429 Retry-After asks when that is longer than the schedule', async () => {
    const s = await scenario({
      retryScheduleMs: [200, 5000],
      reply: (_request, index) => (index === 0 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200 }),
    });
    const event = await s.record();
    const [first] = await s.drain();

    if (first?.result.outcome !== 'retry') throw new Error('the first attempt should be retried');
    expect(Date.parse(first.result.nextAttemptAt ?? '') - Date.parse(first.result.attempt.at)).toBeGreaterThanOrEqual(2000);
    const [one, two] = s.receiver.requests;
    expect((two?.receivedAt ?? 0) - (one?.receivedAt ?? 0)).toBeGreaterThanOrEqual(1900);
    expect((await s.delivery(event.id)).attempts.map((a) => a.httpStatus)).toEqual([429, 200]);
  });

  it('sends nothing for stale messages: an earlier round, a finished delivery, an attempt already made', async () => {
    const s = await scenario({ reply: (_request, index) => ({ status: index === 0 ? 503 : 200 }) });

    // A duplicate of a handled message, as at-least-once queues deliver now and then.
    const event = await s.record();
    const client = storage.queueService.getQueueClient(s.queue);
    const { receivedMessageItems: [item] } = await client.receiveMessages();
    if (!item) throw new Error('no delivery message');
    const message = decode(item.messageText);
    expect((await deliverEvent(s.deliver, message)).outcome).toBe('retry');
    expect(await deliverEvent(s.deliver, message)).toEqual({ outcome: 'stale', reason: 'attempt 1 was already made' });
    await client.deleteMessage(item.messageId, item.popReceipt);
    await s.drain();
    expect(s.receiver.requests).toHaveLength(2);
    expect((await s.delivery(event.id)).status).toBe('delivered');

    // The same message once more, after the delivery is done.
    await publisher.publish(s.queue, message);
    expect((await s.drain()).map((h) => h.result)).toEqual([{ outcome: 'stale', reason: 'the delivery is already delivered' }]);
    expect(s.receiver.requests).toHaveLength(2);

    // A replay before the first round was handled: the round-0 message is stale.
    const second = await s.record();
    await replayEvent(s.replay, s.customerId, second.id);
    const handled = await s.drain();
    expect(handled.map((h) => [h.message.round, h.result.outcome]).sort()).toEqual([[0, 'stale'], [1, 'delivered']]);
    expect(webhookIds(s.receiver).slice(2)).toEqual([second.id]);
  });

  it('replays one event with the same webhook-id in a new round', async () => {
    const s = await scenario();
    const event = await s.record();
    await s.drain();

    const queued = await replayEvent(s.replay, s.customerId, event.id);
    expect(queued).toEqual([{ customerId: s.customerId, eventId: event.id, endpointId: s.endpointId, round: 1, attempt: 1 }]);
    expect(await s.delivery(event.id)).toEqual({ endpointId: s.endpointId, status: 'pending', round: 1, attempts: [], queuedAt: expect.any(String) as unknown });
    await s.drain();

    expect(webhookIds(s.receiver)).toEqual([event.id, event.id]);
    expect(s.receiver.requests.map((r) => r.body)).toEqual([JSON.stringify(webhookPayload(event)), JSON.stringify(webhookPayload(event))]);
    expect(s.receiver.requests.every((request) => request.verifiedBy.length === 1)).toBe(true);
    expect(await s.delivery(event.id)).toMatchObject({ status: 'delivered', round: 1, attempts: [{ number: 1, outcome: 'delivered' }] });

    await expect(replayEvent(s.replay, s.customerId, newId('evt'))).rejects.toThrow(ReplayNotFoundError);
    await expect(replayEvent(s.replay, s.customerId, event.id, newId('whk'))).rejects.toThrow(/not addressed to webhook endpoint/);
    await expect(replayEvent(s.replay, uniqueName('other-'), event.id)).rejects.toThrow(ReplayNotFoundError);
  });

  it('replays the failed events of a customer since a time, and only those', async () => {
    const s = await scenario({ reply: (request) => ({ status: request.body.includes('"refuse":true') ? 422 : 200 }) });
    const earlier = await s.record({ refuse: true });
    // Event ids carry their creation time in milliseconds: the next one must be of a later one.
    const since = await waitFor(() => Date.now() > Date.parse(earlier.occurredAt) && new Date());
    const failedEvents = [await s.record({ refuse: true }), await s.record({ refuse: true })];
    const delivered = await s.record({ refuse: false });
    await s.drain();
    for (const event of [earlier, ...failedEvents]) expect((await s.delivery(event.id)).status).toBe('failed');
    expect((await s.delivery(delivered.id)).status).toBe('delivered');

    s.receiver.reply = () => ({ status: 200 });
    const replayed = await replayFailedEvents(s.replay, s.customerId, since, { pageSize: 1 });
    expect(replayed.scannedEvents).toBe(3);
    expect(replayed.replayedEvents).toBe(2);
    expect(replayed.queued.map((m) => [m.eventId, m.round, m.attempt])).toEqual(failedEvents.map((e) => [e.id, 1, 1]));
    await s.drain();

    for (const event of failedEvents) expect(await s.delivery(event.id)).toMatchObject({ status: 'delivered', round: 1 });
    expect(await s.delivery(earlier.id)).toMatchObject({ status: 'failed', round: 0 });
    expect(await s.delivery(delivered.id)).toMatchObject({ status: 'delivered', round: 0 });
    expect(webhookIds(s.receiver).slice(4)).toEqual(failedEvents.map((e) => e.id));
  });

  it('signs with both secrets during a rotation grace period, and with the new one after it', async () => {
    let reads = 0;
    const counting: Pick<SecretStore, 'get' | 'set' | 'delete'> = {
      get: (name, version) => {
        reads++;
        return secretStore.get(name, version);
      },
      set: (name, value, options) => secretStore.set(name, value, options),
      delete: (name) => secretStore.delete(name),
    };
    const s = await scenario({ secretStore: counting });
    const before = await s.record();
    const another = await s.record();
    reads = 0;
    await s.drain();
    expect(webhookIds(s.receiver).sort()).toEqual([before.id, another.id].sort());
    expect(reads).toBe(1);

    const rotated = await s.secrets.rotateEndpointSecret(s.endpointId);
    expect(rotated.secret).not.toBe(s.secret);
    expect(rotated.previousActiveUntil?.getTime()).toBeGreaterThan(Date.now() + 23 * 3600_000);
    s.receiver.secrets = [s.secret, rotated.secret];
    await s.record();
    await s.drain();
    const during = s.receiver.requests[2];
    expect(String(during?.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(during?.verifiedBy).toEqual([s.secret, rotated.secret]);

    // A day later (another process's clock) the old secret no longer signs.
    const dayLater = new WebhookSecrets({ store: secretStore, now: () => new Date(Date.now() + 25 * 3600_000) });
    expect(await dayLater.activeSecrets(s.endpointId)).toEqual([rotated.secret]);
    await s.record();
    await s.drain({ ...s.deliver, secrets: dayLater });
    expect(s.receiver.requests[3]?.verifiedBy).toEqual([rotated.secret]);

    // A secret that leaked is replaced at once.
    const replaced = await s.secrets.rotateEndpointSecret(s.endpointId, { gracePeriodMs: 0 });
    expect(replaced.previousActiveUntil).toBeUndefined();
    expect(await s.secrets.activeSecrets(s.endpointId)).toEqual([replaced.secret]);

    // A new endpoint gets a secret once; a damaged one is reported without its value and repaired by a rotation.
    await expect(s.secrets.createEndpointSecret(s.endpointId)).rejects.toThrow(WebhookSecretExistsError);
    await secretStore.set(webhookSecretName(s.endpointId), `{"leaked":"${replaced.secret}"}`);
    const error: unknown = await new WebhookSecrets({ store: secretStore }).activeSecrets(s.endpointId).catch((e: unknown) => e);
    expect(String(error)).toMatch(/is not a webhook secret document; rotate/);
    expect(String(error)).not.toContain(replaced.secret.slice(6));
    const repaired = await s.secrets.rotateEndpointSecret(s.endpointId);
    expect(repaired.previousActiveUntil).toBeUndefined();
    expect(await s.secrets.activeSecrets(s.endpointId)).toEqual([repaired.secret]);
  });

  it('fails the delivery without a request when the endpoint was removed or disabled', async () => {
    const s = await scenario();
    const removed = await s.record();
    await repositories.webhookEndpoints.delete(keys.webhookEndpoint(s.endpointId));
    await s.drain();

    expect(s.receiver.requests).toHaveLength(0);
    const delivery = await s.delivery(removed.id);
    expect(delivery.status).toBe('failed');
    expect(delivery.attempts).toEqual([
      {
        number: 1,
        at: expect.any(String) as unknown,
        outcome: 'failed',
        latencyMs: 0,
        error: `webhook endpoint ${s.endpointId} was removed; nothing was sent`,
      },
    ]);

    const other = await scenario();
    const disabled = await other.record();
    await repositories.webhookEndpoints.update(keys.webhookEndpoint(other.endpointId), (endpoint) => {
      if (!endpoint) throw new Error('the endpoint vanished');
      return { ...endpoint, enabled: false };
    });
    await other.drain();
    expect(other.receiver.requests).toHaveLength(0);
    expect((await other.delivery(disabled.id)).attempts[0]?.error).toMatch(/is disabled/);
  });

  it('refuses a loopback endpoint outside local development, however its address is written', async () => {
    const s = await scenario();
    const { port } = new URL(s.receiver.url);
    for (const [url, host] of [[`https://127.0.0.1:${port}/hook`, '127.0.0.1'], ['https://[::ffff:7f00:1]/hook', '::ffff:7f00:1']] as const) {
      await s.moveEndpoint(url);
      const event = await s.record();
      await s.drain({ ...s.deliver, allowPrivateNetwork: false });

      const delivery = await s.delivery(event.id);
      expect(delivery.status).toBe('failed');
      expect(delivery.attempts[0]?.error).toBe(`${host} is not a public address; fix the endpoint URL, then replay the event`);
    }
    expect(s.receiver.requests).toHaveLength(0);
  });

  it('counts a 2xx with a body over the response limit as delivered', async () => {
    const s = await scenario();
    const talkative = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'text/html' }).end('<p>thanks</p>'.repeat(80_000));
      });
    });
    await new Promise<void>((resolve) => talkative.listen(0, '127.0.0.1', resolve));
    try {
      await s.moveEndpoint(`http://127.0.0.1:${(talkative.address() as AddressInfo).port}/hook`);
      const event = await s.record();
      await s.drain();
      expect(await s.delivery(event.id)).toMatchObject({ status: 'delivered', attempts: [{ outcome: 'delivered', httpStatus: 200 }] });
    } finally {
      talkative.closeAllConnections();
      await new Promise((resolve) => talkative.close(resolve));
    }
  });

  it('fails the delivery with advice when the signing secret is damaged; a rotation and a replay deliver it', async () => {
    const s = await scenario();
    await secretStore.set(webhookSecretName(s.endpointId), '{"format":2}');
    const event = await s.record();
    expect((await s.drain()).map((h) => h.result.outcome)).toEqual(['failed']);

    expect(s.receiver.requests).toHaveLength(0);
    const delivery = await s.delivery(event.id);
    expect(delivery.status).toBe('failed');
    expect(delivery.attempts[0]?.error).toBe(
      `the endpoint's signing secret is damaged; rotate it with npm run connector -- webhooks rotate-secret ${s.endpointId}, then replay the event`,
    );

    const rotated = await s.secrets.rotateEndpointSecret(s.endpointId);
    s.receiver.secrets = [rotated.secret];
    await replayEvent(s.replay, s.customerId, event.id);
    await s.drain();
    expect(s.receiver.requests.map((request) => request.verifiedBy)).toEqual([[rotated.secret]]);
  });

  it('queues first attempts, retries and replays as messages that never expire', async () => {
    const s = await scenario({ reply: (_request, index) => ({ status: index === 0 ? 503 : 200 }) });
    const client = storage.queueService.getQueueClient(s.queue);
    const inAYear = Date.now() + 365 * 24 * 3600_000;
    const expiries = async () => (await client.peekMessages({ numberOfMessages: 32 })).peekedMessageItems.map((m) => m.expiresOn.getTime());

    const event = await s.record();
    expect(await expiries()).toEqual([expect.toSatisfy((t: number) => t > inAYear) as unknown]);
    const { receivedMessageItems: [first] } = await client.receiveMessages();
    if (!first) throw new Error('no delivery message');
    expect((await deliverEvent(s.deliver, decode(first.messageText))).outcome).toBe('retry');
    await client.deleteMessage(first.messageId, first.popReceipt);
    await s.drain();

    await replayEvent(s.replay, s.customerId, event.id);
    expect(await expiries()).toEqual([expect.toSatisfy((t: number) => t > inAYear) as unknown]);
  });

  it('replays deliveries stuck in pending or retrying once they are an hour overdue, and not before', async () => {
    const s = await scenario();
    const since = new Date(Date.now() - 1000);
    const delivered = await s.record();
    await s.drain();
    const pending = await s.record();
    const retrying = await s.record();
    // Their messages went to the poison queue; one of them after a first attempt.
    await s.loseMessages();
    const attemptedAt = new Date();
    await repositories.events.update(keys.event(s.customerId, retrying.id), (current) => {
      if (!current) throw new Error('the event vanished');
      const [delivery] = current.deliveries;
      if (!delivery) throw new Error('the event has no delivery');
      return {
        ...current,
        deliveries: [{
          ...delivery,
          status: 'retrying',
          attempts: [{ number: 1, at: attemptedAt.toISOString(), outcome: 'retry', latencyMs: 5, httpStatus: 503, error: 'HTTP 503' }],
          nextAttemptAt: new Date(attemptedAt.getTime() + 5000).toISOString(),
        }],
      };
    });

    const later = (minutes: number) => () => new Date(attemptedAt.getTime() + minutes * 60_000);
    const nothing = { scannedEvents: 3, replayedEvents: 0, queued: [] };
    expect(await replayFailedEvents(s.replay, s.customerId, since, { now: later(59) })).toEqual(nothing);
    const replayed = await replayFailedEvents(s.replay, s.customerId, since, { now: later(61) });
    expect(replayed.replayedEvents).toBe(2);
    expect(replayed.queued.map((m) => [m.eventId, m.round, m.attempt])).toEqual([[pending.id, 1, 1], [retrying.id, 1, 1]]);
    await s.drain();

    for (const event of [pending, retrying]) expect(await s.delivery(event.id)).toMatchObject({ status: 'delivered', round: 1 });
    expect(await s.delivery(delivered.id)).toMatchObject({ status: 'delivered', round: 0 });
    expect(webhookIds(s.receiver)[0]).toBe(delivered.id);
    expect(webhookIds(s.receiver).slice(1).sort()).toEqual([pending.id, retrying.id].sort());
    expect(await replayFailedEvents(s.replay, s.customerId, since, { now: later(61) })).toEqual(nothing);
  });

  it('queues unstarted deliveries again when an event is recorded again, unless it is less than a minute old', async () => {
    const s = await scenario();
    // A quick repeat: the first message is still waiting, and the receiver gets the event once.
    const quick = await s.record();
    expect(await s.record({}, { id: quick.id, occurredAt: quick.occurredAt })).toEqual(quick);
    expect((await s.drain()).map((h) => h.result.outcome)).toEqual(['delivered']);

    // A retry after the first attempt failed to queue: the delivery would wait forever.
    const twoMinutesAgo = new Date(Date.now() - 120_000).toISOString();
    const leftover = await s.record({}, { occurredAt: twoMinutesAgo });
    await s.loseMessages();
    await s.record({}, { id: leftover.id, occurredAt: leftover.occurredAt });
    expect((await s.drain()).map((h) => [h.message.eventId, h.result.outcome])).toEqual([[leftover.id, 'delivered']]);

    // Deliveries that started are left to their own messages.
    await s.record({}, { id: leftover.id, occurredAt: leftover.occurredAt });
    expect(await s.drain()).toEqual([]);
    expect(webhookIds(s.receiver)).toEqual([quick.id, leftover.id]);
  });
});

describe('the delivery sweep', () => {
  const MINUTE = 60_000;
  /** The sweep on this scenario's tables and queue, at `now`. */
  const sweepAt = (s: Awaited<ReturnType<typeof scenario>>, now: Date) =>
    requeueStuckDeliveries({ events: repositories.events, queues: publisher, deliveryQueue: s.queue, now: () => now }, s.customerId);
  /**
   * An event recorded `minutesAgo`, its id made then as a real one's would be (newId keeps its ids in order within
   * the process, so it would not go back in time).
   */
  const recordedAgo = (s: Awaited<ReturnType<typeof scenario>>, minutesAgo: number) => {
    const at = Date.now() - minutesAgo * MINUTE;
    return s.record({}, { id: `evt_${ulid(at)}`, occurredAt: new Date(at).toISOString() });
  };

  it('queues a delivery left without a queue message once it has waited 10 minutes, once however many sweeps run at once', async () => {
    const s = await scenario();
    const stuck = await recordedAgo(s, 11);
    const young = await recordedAgo(s, 9);
    // A crash between storing the events and queueing their messages.
    await s.loseMessages();

    const sweeps = await Promise.all(Array.from({ length: 5 }, () => sweepAt(s, new Date())));
    expect(sweeps.flatMap((sweep) => sweep.queued)).toEqual([{ customerId: s.customerId, eventId: stuck.id, endpointId: s.endpointId, round: 0, attempt: 1 }]);
    expect(sweeps.map((sweep) => sweep.scannedEvents)).toEqual([1, 1, 1, 1, 1]);
    expect((await s.delivery(stuck.id)).queuedAt).toEqual(expect.any(String));
    expect((await s.drain()).map((h) => [h.message.eventId, h.result.outcome])).toEqual([[stuck.id, 'delivered']]);
    expect(webhookIds(s.receiver)).toEqual([stuck.id]);

    // The younger one is queued once it has waited as long; the delivered one never again.
    const later = await sweepAt(s, new Date(Date.now() + 2 * MINUTE));
    expect(later.queued.map((message) => message.eventId)).toEqual([young.id]);
    await s.drain();
    expect(webhookIds(s.receiver)).toEqual([stuck.id, young.id]);
    expect((await sweepAt(s, new Date(Date.now() + 30 * MINUTE))).queued).toEqual([]);
  });

  it('a delivery whose message is merely slow is sent once: the sweep queues the same attempt, and the later message finds it made', async () => {
    const s = await scenario();
    const event = await s.record();
    // The queue is backed up: the first message still waits when the sweep runs 11 minutes later.
    const swept = await sweepAt(s, new Date(Date.now() + 11 * MINUTE));
    expect(swept.queued).toEqual([{ customerId: s.customerId, eventId: event.id, endpointId: s.endpointId, round: 0, attempt: 1 }]);
    expect((await s.drain()).map((h) => h.result.outcome)).toEqual(['delivered', 'stale']);
    expect(webhookIds(s.receiver)).toEqual([event.id]);
    // Queued again, it waits another 10 minutes before the next sweep queues it once more.
    expect((await sweepAt(s, new Date(Date.now() + 15 * MINUTE))).queued).toEqual([]);
  });

  it('queues the due retry of a delivery whose retry message was lost, in the same round', async () => {
    const s = await scenario({ reply: (_request, index) => ({ status: index === 0 ? 503 : 200 }), retryScheduleMs: [60_000] });
    const event = await s.record();
    const { receivedMessageItems: [first] } = await storage.queueService.getQueueClient(s.queue).receiveMessages();
    if (!first) throw new Error('no delivery message');
    expect((await deliverEvent(s.deliver, decode(first.messageText))).outcome).toBe('retry');
    // The first message is done with, and the retry (due in a minute) goes to the poison queue.
    await s.loseMessages();
    const retrying = await s.delivery(event.id);
    expect(retrying.status).toBe('retrying');
    const nextAttemptAt = Date.parse(retrying.nextAttemptAt ?? '');

    expect((await sweepAt(s, new Date(nextAttemptAt + 9 * MINUTE))).queued).toEqual([]);
    const swept = await sweepAt(s, new Date(nextAttemptAt + 11 * MINUTE));
    expect(swept.queued).toEqual([{ customerId: s.customerId, eventId: event.id, endpointId: s.endpointId, round: 0, attempt: 2 }]);
    await s.drain();
    expect(await s.delivery(event.id)).toMatchObject({ status: 'delivered', round: 0, attempts: [{ number: 1, outcome: 'retry' }, { number: 2, outcome: 'delivered' }] });
  });

  it('leaves failed deliveries, rounds a replay just queued, and events older than its window alone', async () => {
    const s = await scenario({ reply: () => ({ status: 400 }) });
    const failed = await recordedAgo(s, 20);
    await s.drain();
    expect((await s.delivery(failed.id)).status).toBe('failed');
    const old = await recordedAgo(s, 7 * 60);
    const replayed = await recordedAgo(s, 2 * 60);
    await s.loseMessages();
    // A replay whose queue message was lost (the API answered 500).
    expect(await replayEvent(s.replay, s.customerId, replayed.id)).toHaveLength(1);
    await s.loseMessages();

    // The replayed round was queued just now; the 7-hour-old event is outside the sweep's window.
    expect(await sweepAt(s, new Date())).toEqual({ scannedEvents: 2, queued: [] });
    // replay-failed, which reaches back further, does not take the round just queued for stuck either.
    const replayedAgain = await replayFailedEvents(s.replay, s.customerId, new Date(Date.now() - 8 * 3_600_000));
    expect(replayedAgain.queued.map((message) => message.eventId).sort()).toEqual([failed.id, old.id].sort());
    await s.drain();
    // Ten minutes after the replay queued its round, the sweep queues it again.
    expect((await sweepAt(s, new Date(Date.now() + 11 * MINUTE))).queued.map((message) => [message.eventId, message.round])).toEqual([[replayed.id, 1]]);
  });
});
