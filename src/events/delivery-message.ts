import { z } from 'zod';

/**
 * The deliver-event queue message: deliver one event to one webhook endpoint, as attempt
 * `attempt` of delivery round `round`. Carries ids only; the event and the endpoint are read
 * fresh, so a retried or replayed message always sends what is stored.
 */
export const deliveryMessageSchema = z.object({
  customerId: z.string(),
  eventId: z.string(),
  endpointId: z.string(),
  round: z.int().nonnegative(),
  attempt: z.int().positive(),
});
export type DeliveryMessage = z.infer<typeof deliveryMessageSchema>;
