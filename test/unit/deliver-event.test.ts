import { describe, expect, it } from 'vitest';
import { DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS } from '../../src/config.js';
import type { StoredEvent } from '../../src/domain/events.js';
import type { WebhookEndpoint } from '../../src/domain/webhook-endpoint.js';
import { deliverEvent, type DeliverEventDeps } from '../../src/events/deliver-event.js';
import type { DeliveryMessage } from '../../src/events/delivery-message.js';
import { generateWebhookSecret } from '../../src/events/webhook-signing.js';
import type { OutboundRequest, OutboundResponse } from '../../src/net/outbound-request.js';
import type { PublishOptions } from '../../src/store/queue-publisher.js';
import { UNCHANGED } from '../../src/store/table-repository.js';

/** deliverEvent against one event kept in memory; every retry it queues is handled at once. */

const endpoint: WebhookEndpoint = {
  id: 'whk_1',
  url: 'https://hooks.example.com/m365',
  customerScope: 'acme',
  eventTypes: [],
  enabled: true,
  createdAt: '2025-01-01T00:00:00.000Z',
};

function harness(options: { reply: () => OutboundResponse; random?: () => number; retryScheduleMs?: readonly number[] }) {
  let event: StoredEvent = {
    id: 'evt_01J0000000000000000000000A',
    type: 'connection.created',
    customerId: 'acme',
    occurredAt: '2025-01-01T00:00:00.000Z',
    data: {},
    deliveries: [{ endpointId: endpoint.id, status: 'pending', round: 0, attempts: [] }],
  };
  const published: { message: DeliveryMessage; options: PublishOptions | undefined }[] = [];
  const requests: OutboundRequest[] = [];
  const deps: DeliverEventDeps = {
    events: {
      get: (key) => Promise.resolve({ key, value: event, etag: '*' }),
      update: (key, mutate) => {
        const next = mutate(event);
        if (next !== UNCHANGED) event = next;
        return Promise.resolve({ key, value: event, etag: '*' });
      },
    },
    endpoints: { get: (key) => Promise.resolve({ key, value: endpoint, etag: '*' }) },
    secrets: { activeSecrets: () => Promise.resolve([generateWebhookSecret()]) },
    queues: {
      publish: (_queue, payload, publishOptions) => {
        published.push({ message: payload as DeliveryMessage, options: publishOptions });
        return Promise.resolve({ messageId: String(published.length) });
      },
    },
    retryScheduleMs: options.retryScheduleMs ?? DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS,
    allowPrivateNetwork: false,
    send: (request) => {
      requests.push(request);
      return Promise.resolve(options.reply());
    },
    ...(options.random && { random: options.random }),
  };
  return {
    deps,
    published,
    requests,
    delivery: () => event.deliveries[0],
    /** Handles the first message and every retry it leads to; returns the queue delays, in seconds. */
    async run(): Promise<number[]> {
      let message: DeliveryMessage | undefined = { customerId: 'acme', eventId: event.id, endpointId: endpoint.id, round: 0, attempt: 1 };
      while (message) {
        const before = published.length;
        await deliverEvent(deps, message);
        message = published.length > before ? published.at(-1)?.message : undefined;
      }
      return published.map((p) => p.options?.delaySeconds ?? 0);
    },
  };
}

const unavailable = (): OutboundResponse => ({ status: 503, headers: {}, body: Buffer.alloc(0), latencyMs: 1 });
const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

describe('deliverEvent retries', () => {
  it('queues every retry as a never-expiring message with its delay', async () => {
    const h = harness({ reply: unavailable, random: () => 0 });
    await h.run();
    expect(h.published.map((p) => p.options)).toEqual(
      DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS.map((ms) => ({ delaySeconds: ms / 1000, timeToLiveSeconds: -1 })),
    );
    expect(h.delivery()?.status).toBe('failed');
  });

  it('never retries for less than the schedule: jitter only lengthens delays, by up to 20 %', async () => {
    const scheduleSeconds = sum(DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS) / 1000;
    expect(scheduleSeconds).toBeGreaterThanOrEqual(24 * 60 * 60);
    const sources: (() => number)[] = [() => 0, () => 0.999_999, ...Array.from({ length: 200 }, () => Math.random)];
    const totals: number[] = [];
    for (const random of sources) {
      const delays = await harness({ reply: unavailable, random }).run();
      for (const [index, delay] of delays.entries()) {
        const scheduled = (DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS[index] ?? 0) / 1000;
        expect(delay).toBeGreaterThanOrEqual(scheduled);
        expect(delay).toBeLessThanOrEqual(Math.ceil(scheduled * 1.2));
      }
      totals.push(sum(delays));
    }
    expect(Math.min(...totals)).toBe(scheduleSeconds);
    expect(Math.max(...totals)).toBeLessThanOrEqual(Math.ceil(scheduleSeconds * 1.2) + DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS.length);
  });

  it('waits as long as Retry-After asks, up to the longest step of the schedule', async () => {
    const asking = (retryAfter: string) => (): OutboundResponse => ({ status: 429, headers: { 'retry-after': retryAfter }, body: Buffer.alloc(0), latencyMs: 1 });
    expect(await harness({ reply: asking('120'), random: () => 0, retryScheduleMs: [5_000, 600_000] }).run()).toEqual([120, 600]);
    expect(await harness({ reply: asking('999999'), random: () => 0, retryScheduleMs: [5_000, 60_000] }).run()).toEqual([60, 60]);
  });
});

describe('deliverEvent responses', () => {
  it('asks for an oversized response body to be cut off, so a 2xx with a long body is delivered', async () => {
    const h = harness({ reply: () => ({ status: 200, headers: {}, body: Buffer.alloc(64 * 1024, 'x'), latencyMs: 3 }) });
    await h.run();
    expect(h.requests.map((r) => [r.oversizedBody, r.maxResponseBytes])).toEqual([['truncate', 64 * 1024]]);
    expect(h.delivery()).toMatchObject({ status: 'delivered', attempts: [{ outcome: 'delivered', httpStatus: 200 }] });
  });
});
