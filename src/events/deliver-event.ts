import { webhookPayload, type DeliveryAttempt, type StoredEvent } from '../domain/events.js';
import { endpointWants, type WebhookEndpoint } from '../domain/webhook-endpoint.js';
import {
  OutboundRequestError,
  outboundRequest,
  type OutboundRequest,
  type OutboundResponse,
} from '../net/outbound-request.js';
import { keys } from '../store/repositories.js';
import type { Metrics } from '../telemetry/metrics.js';
import { UNCHANGED, type TableRepository } from '../store/table-repository.js';
import type { DeliveryMessage } from './delivery-message.js';
import { queueDelivery, type QueueDeliveryDeps } from './queue-delivery.js';
import { DamagedSecretError, type WebhookSecrets } from './webhook-secrets.js';
import { signWebhook } from './webhook-signing.js';

/**
 * The deliver-event queue handler's use-case: one attempt to deliver one event to one webhook
 * endpoint, and what follows from it: delivered, another attempt queued for later, or failed.
 *
 * Queue messages arrive at least once and a replay can overtake them, so the event is read fresh
 * and a message is only acted on when it is the next attempt of the delivery's current round.
 * Only storage or the secret store being out of reach (or a bug) makes this throw, so the queue
 * retries the message; whatever the receiver does is recorded as the attempt's outcome.
 *
 * Order of effects. An attempt has up to three: the POST, queueing the next attempt, and recording
 * the attempt in the event. The next attempt is queued before the attempt is recorded:
 * - a crash after queueing leaves a stored delivery that does not show the attempt, and the
 *   message is handled again: the receiver may get the event twice (it dedupes by webhook-id) and
 *   one more next-attempt message is queued, which the attempt check turns away;
 * - recording first would turn a crash between the two into a lost event: the redelivered
 *   message would find its attempt recorded and stop, and nothing would be queued to go on.
 * A next attempt that runs before the previous one is recorded (its queue delay makes that rare)
 * is still the next attempt; the late record is then dropped, never the event.
 *
 * Delivery order is best-effort: retries and parallel queue workers let a later event of a
 * connection arrive before an earlier one. Receivers order by the payload's `timestamp`.
 */

/** Issue 3 asks for 10 s; Standard Webhooks suggests 15-30 s, so receivers should answer quickly. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/**
 * A receiver only needs to say yes or no; its response body is not used, so a longer one is cut
 * off here and the status still counts.
 */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Jitter only lengthens a delay, by up to this share, so the retries span at least the schedule's sum. */
const RETRY_JITTER = 0.2;
/** Azure Queue Storage's longest visibility delay. */
const MAX_QUEUE_DELAY_SECONDS = 7 * 24 * 60 * 60;
const MAX_ERROR_LENGTH = 200;
const USER_AGENT = 'm365-connector-webhooks/1';

/** The next attempts go to `deliveryQueue`, the deliver-event queue unless a test names its own. */
export interface DeliverEventDeps extends QueueDeliveryDeps {
  events: Pick<TableRepository<StoredEvent>, 'get' | 'update'>;
  endpoints: Pick<TableRepository<WebhookEndpoint>, 'get'>;
  secrets: Pick<WebhookSecrets, 'activeSecrets'>;
  /** Delays before each retry (config.webhookRetryScheduleMs); the delivery fails after the last. */
  retryScheduleMs: readonly number[];
  /** config.allowPrivateNetworkUrls: loopback and plain http, local development only. */
  allowPrivateNetwork: boolean;
  send?: (request: OutboundRequest) => Promise<OutboundResponse>;
  timeoutMs?: number;
  metrics?: Metrics;
  now?: () => Date;
  /** A number in [0, 1), for the jitter. */
  random?: () => number;
}

export type DeliveryResult =
  | { outcome: 'stale'; reason: string }
  | { outcome: DeliveryAttempt['outcome']; attempt: DeliveryAttempt; nextAttemptAt?: string };

/** What one try came to, before the retry schedule has its say. */
interface TryResult {
  outcome: DeliveryAttempt['outcome'];
  latencyMs: number;
  httpStatus?: number;
  error?: string;
  /** The receiver's Retry-After, in milliseconds from now. */
  retryAfterMs?: number;
}

export async function deliverEvent(deps: DeliverEventDeps, message: DeliveryMessage): Promise<DeliveryResult> {
  const now = deps.now ?? (() => new Date());
  const eventKey = keys.event(message.customerId, message.eventId);
  const event = (await deps.events.get(eventKey))?.value;
  if (!event) return { outcome: 'stale', reason: 'the event no longer exists' };
  const stale = staleReason(event, message);
  if (stale !== undefined) return { outcome: 'stale', reason: stale };

  const startedAt = now();
  const endpoint = (await deps.endpoints.get(keys.webhookEndpoint(message.endpointId)))?.value;
  const tried = await tryDelivery(deps, event, message.endpointId, endpoint, startedAt, now);

  let outcome = tried.outcome;
  let error = tried.error;
  let nextAttemptAt: string | undefined;
  if (outcome === 'retry') {
    const scheduledMs = deps.retryScheduleMs[message.attempt - 1];
    if (scheduledMs === undefined) {
      outcome = 'failed';
      error = `${error ?? 'failed'}; no retries left after ${message.attempt} attempts`;
    } else {
      const delaySeconds = retryDelaySeconds(deps, scheduledMs, tried.retryAfterMs);
      nextAttemptAt = new Date(now().getTime() + delaySeconds * 1000).toISOString();
      await queueDelivery(deps, { ...message, attempt: message.attempt + 1 }, delaySeconds);
    }
  }

  const attempt: DeliveryAttempt = {
    number: message.attempt,
    at: startedAt.toISOString(),
    outcome,
    latencyMs: tried.latencyMs,
    ...(tried.httpStatus !== undefined && { httpStatus: tried.httpStatus }),
    ...(error !== undefined && { error: error.slice(0, MAX_ERROR_LENGTH) }),
  };
  await deps.events.update(eventKey, (current) => {
    if (!current || staleReason(current, message) !== undefined) return UNCHANGED;
    return {
      ...current,
      deliveries: current.deliveries.map((delivery) => {
        if (delivery.endpointId !== message.endpointId) return delivery;
        const { nextAttemptAt: _replaced, ...rest } = delivery;
        return {
          ...rest,
          status: STATUS_AFTER[outcome],
          attempts: [...delivery.attempts, attempt],
          ...(nextAttemptAt !== undefined && { nextAttemptAt }),
        };
      }),
    };
  });
  const dimensions = { customerId: message.customerId, connectionId: event.connectionId, endpointId: message.endpointId, outcome };
  deps.metrics?.count('webhook.deliveries', { ...dimensions, status: tried.httpStatus ?? 'none' });
  deps.metrics?.record('webhook.delivery_duration', tried.latencyMs, dimensions);
  return { outcome, attempt, ...(nextAttemptAt !== undefined && { nextAttemptAt }) };
}

const STATUS_AFTER = { delivered: 'delivered', retry: 'retrying', failed: 'failed' } as const;

/** Why the message is not the next attempt of its delivery's current round; undefined when it is. */
function staleReason(event: StoredEvent, message: DeliveryMessage): string | undefined {
  const delivery = event.deliveries.find((d) => d.endpointId === message.endpointId);
  if (!delivery) return `the event is not addressed to endpoint ${message.endpointId}`;
  if (delivery.round !== message.round) return `round ${message.round} was replaced by round ${delivery.round}`;
  if (delivery.status === 'delivered' || delivery.status === 'failed') return `the delivery is already ${delivery.status}`;
  if ((delivery.attempts.at(-1)?.number ?? 0) >= message.attempt) return `attempt ${message.attempt} was already made`;
  return undefined;
}

async function tryDelivery(
  deps: DeliverEventDeps,
  event: StoredEvent,
  endpointId: string,
  endpoint: WebhookEndpoint | undefined,
  at: Date,
  now: () => Date,
): Promise<TryResult> {
  if (!endpoint) {
    return { outcome: 'failed', latencyMs: 0, error: `webhook endpoint ${endpointId} was removed; nothing was sent` };
  }
  // The endpoint may have been disabled or re-scoped since the event was recorded.
  if (!endpointWants(endpoint, event.customerId, event.type)) {
    return {
      outcome: 'failed',
      latencyMs: 0,
      error: `webhook endpoint ${endpointId} is disabled or no longer subscribed to this customer or event type; nothing was sent`,
    };
  }
  let secrets: string[];
  try {
    secrets = await deps.secrets.activeSecrets(endpoint.id);
  } catch (error) {
    // Only a person can repair it, so retrying the message would just end in the poison queue.
    if (!(error instanceof DamagedSecretError)) throw error;
    return {
      outcome: 'failed',
      latencyMs: 0,
      error: `the endpoint's signing secret is damaged; rotate it with npm run connector -- webhooks rotate-secret ${endpointId}, then replay the event`,
    };
  }
  if (secrets.length === 0) {
    return {
      outcome: 'failed',
      latencyMs: 0,
      error: `webhook endpoint ${endpointId} has no signing secret; rotate its secret, then replay the event`,
    };
  }

  const body = JSON.stringify(webhookPayload(event));
  const timeoutMs = deps.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const started = performance.now();
  try {
    const response = await (deps.send ?? outboundRequest)({
      url: endpoint.url,
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        ...signWebhook({ id: event.id, timestamp: at, body, secrets }),
      },
      body: Buffer.from(body, 'utf8'),
      timeoutMs,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      oversizedBody: 'truncate',
      allowPrivateNetwork: deps.allowPrivateNetwork,
    });
    return fromResponse(response, Math.round(performance.now() - started), now());
  } catch (error) {
    if (!(error instanceof OutboundRequestError)) throw error;
    return fromFailure(error, Math.round(performance.now() - started), timeoutMs);
  }
}

function fromResponse(response: OutboundResponse, latencyMs: number, now: Date): TryResult {
  const { status } = response;
  const result = { latencyMs, httpStatus: status };
  if (status >= 200 && status < 300) return { ...result, outcome: 'delivered' };
  if (status === 408 || status === 429 || status >= 500) {
    const header = response.headers['retry-after'];
    const retryAfterMs = status === 429 || status === 503 ? retryAfterToMs(header, now) : undefined;
    return { ...result, outcome: 'retry', error: `HTTP ${status}`, ...(retryAfterMs !== undefined && { retryAfterMs }) };
  }
  if (status >= 300 && status < 400) {
    return { ...result, outcome: 'failed', error: `HTTP ${status}: redirects are not followed; set the endpoint to the final URL` };
  }
  // The receiver understood the request and refused it: sending it again would not change that.
  return { ...result, outcome: 'failed', error: `HTTP ${status}: the receiver refused the event` };
}

function fromFailure(error: OutboundRequestError, latencyMs: number, timeoutMs: number): TryResult {
  switch (error.kind) {
    case 'timeout':
      return { outcome: 'retry', latencyMs, error: `timeout after ${timeoutMs} ms` };
    case 'network':
      // The code alone: Node's message names the address, and a vendor's URL may carry a token.
      return { outcome: 'retry', latencyMs, error: error.code ? `network error ${error.code}` : 'network error' };
    case 'too-large':
      // Only a send that ignores oversizedBody: 'truncate' reports this one.
      return { outcome: 'failed', latencyMs, error: error.message };
    case 'invalid-url':
    case 'blocked-address':
      // These messages name the scheme or the host, never the path or the query.
      return { outcome: 'failed', latencyMs, error: `${error.message}; fix the endpoint URL, then replay the event` };
  }
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
function retryAfterToMs(header: string | undefined, now: Date): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now.getTime());
}

/**
 * The scheduled delay with jitter, so receivers recovering from an outage are not hit by every
 * retry at once; a longer Retry-After wins, up to the schedule's longest step. The jitter only
 * adds: the schedule is what promises retries for at least 24 hours, and shortening steps could
 * break that. Whole seconds, rounded up: queue delays have that resolution, and a retry never
 * comes earlier than planned.
 */
function retryDelaySeconds(deps: DeliverEventDeps, scheduledMs: number, retryAfterMs: number | undefined): number {
  const random = deps.random ?? Math.random;
  const jittered = scheduledMs * (1 + RETRY_JITTER * random());
  const asked = Math.min(retryAfterMs ?? 0, Math.max(...deps.retryScheduleMs));
  return Math.min(MAX_QUEUE_DELAY_SECONDS, Math.ceil(Math.max(jittered, asked) / 1000));
}
