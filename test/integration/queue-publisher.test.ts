import { describe, expect, it } from 'vitest';
import { PayloadStore } from '../../src/store/payload-store.js';
import {
  QUEUE_MESSAGE_LIMIT_BYTES,
  QueuePublisher,
  isBlobPayloadEnvelope,
  resolveQueuePayload,
} from '../../src/store/queue-publisher.js';
import { testStorage, uniqueName } from '../support/storage.js';

describe('QueuePublisher on Azurite', () => {
  const storage = testStorage();
  const payloads = new PayloadStore(storage.blobService, uniqueName('payloads-'));
  const publisher = new QueuePublisher(storage.queueService, payloads);

  async function receiveOne(queueName: string): Promise<string> {
    const { receivedMessageItems } = await storage.queueService.getQueueClient(queueName).receiveMessages();
    const [message] = receivedMessageItems;
    if (!message) throw new Error(`no message on ${queueName}`);
    return message.messageText;
  }

  it('creates the queue on first use and encodes JSON as base64, as the queue trigger expects', async () => {
    const queue = uniqueName('small-');
    const payload = { kind: 'send', id: 'm-1', unicode: 'Grüße ✉' };
    const published = await publisher.publish(queue, payload);
    expect(published.payloadRef).toBeUndefined();
    const text = await receiveOne(queue);
    expect(text).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(JSON.parse(Buffer.from(text, 'base64').toString('utf8'))).toEqual(payload);
  });

  it('keeps a payload over the 64 KiB limit in Blob storage and resolves it back', async () => {
    const queue = uniqueName('large-');
    const payload = { kind: 'send', body: 'x'.repeat(60_000), list: Array.from({ length: 500 }, (_, i) => `item-${i}`) };
    const published = await publisher.publish(queue, payload);
    expect(published.payloadRef?.bytes).toBeGreaterThan(QUEUE_MESSAGE_LIMIT_BYTES * 0.75);

    const text = await receiveOne(queue);
    expect(text.length).toBeLessThan(1024);
    const message: unknown = JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
    expect(isBlobPayloadEnvelope(message)).toBe(true);
    const resolved = await resolveQueuePayload(message, payloads);
    expect(resolved.payload).toEqual(payload);
    expect(resolved.payloadRef).toEqual(published.payloadRef);

    // The blob stays for retries until the handler deletes it after success; deleting twice is fine.
    if (!resolved.payloadRef) throw new Error('no payload reference');
    await payloads.delete(resolved.payloadRef);
    await payloads.delete(resolved.payloadRef);
    await expect(payloads.get(resolved.payloadRef)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('passes an ordinary message through resolveQueuePayload untouched', async () => {
    expect(await resolveQueuePayload({ kind: 'poll', mailbox: 'x' }, payloads)).toEqual({ payload: { kind: 'poll', mailbox: 'x' } });
  });

  it('sends exactly at the limit inline and one byte over to Blob storage', async () => {
    const queue = uniqueName('edge-');
    // base64 of the JSON text {"p":"…"} is 4/3 of its length: find the longest inline payload.
    const maxJson = (QUEUE_MESSAGE_LIMIT_BYTES / 4) * 3;
    const inline = { p: 'a'.repeat(maxJson - '{"p":""}'.length) };
    expect((await publisher.publish(queue, inline)).payloadRef).toBeUndefined();
    const over = { p: 'a'.repeat(maxJson - '{"p":""}'.length + 1) };
    expect((await publisher.publish(queue, over)).payloadRef).toBeDefined();
  });

  it('refuses what JSON cannot carry and references outside its container', async () => {
    await expect(publisher.publish(uniqueName('bad-'), undefined)).rejects.toThrow(TypeError);
    await expect(payloads.get({ container: 'elsewhere', name: 'x', bytes: 1 })).rejects.toThrow(RangeError);
  });

  it('lets a delayed message stay invisible until its time', async () => {
    const queue = uniqueName('later-');
    await publisher.publish(queue, { n: 1 }, { delaySeconds: 60 });
    const { receivedMessageItems } = await storage.queueService.getQueueClient(queue).receiveMessages();
    expect(receivedMessageItems).toHaveLength(0);
    const { approximateMessagesCount } = await storage.queueService.getQueueClient(queue).getProperties();
    expect(approximateMessagesCount).toBe(1);
  });
});
