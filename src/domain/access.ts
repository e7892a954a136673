import { z } from 'zod';
import { customerIdSchema } from './customer.js';

/**
 * Who may call the API for which customers. An API key or a registered token issuer is scoped to
 * one customer or to all of them ("*"); a caller never learns that another customer exists.
 */

export const customerScopeSchema = z.union([z.literal('*'), customerIdSchema]);
export type CustomerScope = z.infer<typeof customerScopeSchema>;

export function inScope(scope: CustomerScope, customerId: string): boolean {
  return scope === '*' || scope === customerId;
}

/** An API key as stored: the lookup prefix and a hash of the secret part, never the key itself. */
export const apiKeyRecordSchema = z.object({
  prefix: z.string().regex(/^[a-z0-9]{12}$/),
  /** SHA-256 of the secret part, hex. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  customerScope: customerScopeSchema,
  name: z.string().max(128).optional(),
  createdAt: z.iso.datetime(),
  revokedAt: z.iso.datetime().optional(),
});
export type ApiKeyRecord = z.infer<typeof apiKeyRecordSchema>;

/** A vendor service that signs JWTs for the API, and where its public keys are published. */
export const jwtIssuerSchema = z.object({
  // The row key is the issuer in base64url, and row keys hold 1024 characters: 768 bytes at most.
  issuer: z
    .string()
    .min(1)
    .max(512)
    .refine((issuer) => Buffer.byteLength(issuer, 'utf8') <= 768, 'issuers are at most 768 bytes of UTF-8'),
  keyUrl: z.url(),
  customerScope: customerScopeSchema,
  /** When set, tokens must carry it in `aud`. */
  audience: z.string().max(512).optional(),
  createdAt: z.iso.datetime(),
});
export type JwtIssuer = z.infer<typeof jwtIssuerSchema>;
