import { z } from 'zod';
import { customerScopeSchema } from './access.js';
import { EVENT_TYPES } from './events.js';
import { ID_PATTERN } from './ids.js';

/** Where the vendor wants events, for which customers and which event types. */
export const webhookEndpointSchema = z.object({
  id: z.string().regex(ID_PATTERN.whk),
  url: z.url(),
  customerScope: customerScopeSchema,
  /** Empty means every type. */
  eventTypes: z.array(z.enum(EVENT_TYPES)),
  enabled: z.boolean(),
  description: z.string().max(256).optional(),
  createdAt: z.iso.datetime(),
});
export type WebhookEndpoint = z.infer<typeof webhookEndpointSchema>;

export function endpointWants(endpoint: WebhookEndpoint, customerId: string, type: string): boolean {
  return (
    endpoint.enabled &&
    (endpoint.customerScope === '*' || endpoint.customerScope === customerId) &&
    (endpoint.eventTypes.length === 0 || (endpoint.eventTypes as readonly string[]).includes(type))
  );
}
