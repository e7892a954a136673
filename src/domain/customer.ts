import { z } from 'zod';
import { CUSTOMER_ID_PATTERN } from './ids.js';
import { tagsSchema } from './tags.js';

/** A customer of the vendor, under the vendor's own id; everything else of it hangs below it. */
export const customerIdSchema = z
  .string()
  .regex(CUSTOMER_ID_PATTERN, 'customer ids are 1-128 letters, digits and . _ -, starting with a letter or digit')
  .meta({ description: 'Your id for the customer.', example: 'acme-corp' });

export const customerSchema = z.object({
  id: customerIdSchema,
  displayName: z.string().max(256).optional(),
  tags: tagsSchema,
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export type Customer = z.infer<typeof customerSchema>;
