import { z } from 'zod';
import { ID_PATTERN } from './ids.js';
import { tagsSchema } from './tags.js';

/**
 * Events: what happened to a customer's connections and mail, kept in Table Storage and delivered
 * to the vendor's webhook endpoints. The id never changes, across retries and replays, so the
 * vendor can drop duplicates.
 */

export const EVENT_TYPES = [
  'connection.created',
  'connection.state_changed',
  'connection.reconnected',
  'app.misconfigured',
  'app.recovered',
  'app.credential_expiring',
  'message.sent',
  'message.deferred',
  'message.failed',
  'message.received',
] as const;

/**
 * Events about one of the vendor's app registrations concern every customer: they are kept under
 * this partition instead of a customer's (customer ids start with a letter or digit, so it cannot
 * be one) and go to the endpoints that take every customer's events.
 */
export const VENDOR_EVENTS = '_vendor';
export type EventType = (typeof EVENT_TYPES)[number];

export const connectorEventSchema = z.object({
  id: z.string().regex(ID_PATTERN.evt),
  type: z.enum(EVENT_TYPES),
  customerId: z.string(),
  connectionId: z.string().optional(),
  occurredAt: z.iso.datetime(),
  /** The connection's tags when it happened, so the vendor can route the event without a lookup. */
  tags: tagsSchema.optional(),
  data: z.record(z.string(), z.unknown()),
});
export type ConnectorEvent = z.infer<typeof connectorEventSchema>;

export const DELIVERY_STATUSES = ['pending', 'retrying', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const deliveryAttemptSchema = z.object({
  number: z.int().positive(),
  at: z.iso.datetime(),
  outcome: z.enum(['delivered', 'retry', 'failed']),
  latencyMs: z.int().nonnegative(),
  httpStatus: z.int().optional(),
  error: z.string().optional().meta({ description: 'Short description of a failure: "timeout after 10000 ms", "HTTP 503", "ECONNREFUSED".' }),
});
export type DeliveryAttempt = z.infer<typeof deliveryAttemptSchema>;

export const eventDeliverySchema = z.object({
  endpointId: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  /** Raised by every replay; queue messages of an earlier round are stale and ignored. */
  round: z.int().nonnegative(),
  attempts: z.array(deliveryAttemptSchema),
  nextAttemptAt: z.iso.datetime().optional(),
  /** When a replay or the delivery sweep last queued the delivery's next attempt. */
  queuedAt: z.iso.datetime().optional(),
});
export type EventDelivery = z.infer<typeof eventDeliverySchema>;

/** An event with how far its delivery to each endpoint has come, as stored. */
export const storedEventSchema = connectorEventSchema.extend({ deliveries: z.array(eventDeliverySchema) });
export type StoredEvent = z.infer<typeof storedEventSchema>;

/** The JSON body a webhook endpoint receives (Standard Webhooks style: type, timestamp, data). */
export const webhookPayloadSchema = z
  .object({
    id: z.string().regex(ID_PATTERN.evt).meta({ description: 'The event id; also the webhook-id header, the same on every retry and replay.' }),
    type: z.enum(EVENT_TYPES),
    timestamp: z.iso.datetime().meta({ description: 'When it happened.' }),
    customerId: z.string(),
    connectionId: z.string().optional(),
    tags: tagsSchema.optional(),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'WebhookPayload' });

export function webhookPayload(event: ConnectorEvent): Record<string, unknown> {
  return {
    id: event.id,
    type: event.type,
    timestamp: event.occurredAt,
    customerId: event.customerId,
    ...(event.connectionId !== undefined && { connectionId: event.connectionId }),
    ...(event.tags !== undefined && { tags: event.tags }),
    data: event.data,
  };
}
