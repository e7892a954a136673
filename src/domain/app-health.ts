import { z } from 'zod';
import { EVENT_TYPES } from './events.js';
import { ID_PATTERN } from './ids.js';

/**
 * The health of one of the vendor's app registrations: whether Microsoft refuses its credential
 * (then every connection of the app is affected, and that is raised once for the app, not once per
 * connection), and how close its secret or certificate is to expiring.
 */

export const CREDENTIAL_LEVELS = ['ok', 'warning', 'critical', 'expired', 'unknown', 'not_applicable'] as const;
export type CredentialLevel = (typeof CREDENTIAL_LEVELS)[number];

export const appHealthSchema = z.object({
  appId: z.string(),
  misconfigured: z
    .object({
      since: z.iso.datetime(),
      code: z.string(),
      explanation: z.string(),
      nextStep: z.string(),
      /** Refreshes of the app's connections wait until then, so a broken credential is tried once per interval, not once per connection. */
      probeAt: z.iso.datetime(),
    })
    .optional(),
  credential: z
    .object({
      kind: z.enum(['secret', 'certificate', 'managed-identity']),
      expiresAt: z.iso.datetime().optional(),
      source: z.enum(['configuration', 'certificate', 'graph', 'none']),
      level: z.enum(CREDENTIAL_LEVELS),
      checkedAt: z.iso.datetime(),
    })
    .optional(),
  /** The event of the last change, saved with it (see connections.ts: recorded again if the first try failed). */
  lastEvent: z
    .object({ id: z.string().regex(ID_PATTERN.evt), type: z.enum(EVENT_TYPES), occurredAt: z.iso.datetime(), data: z.record(z.string(), z.unknown()) })
    .optional(),
  updatedAt: z.iso.datetime(),
});
export type AppHealth = z.infer<typeof appHealthSchema>;

export const CREDENTIAL_WARNING_DAYS = 30;
export const CREDENTIAL_CRITICAL_DAYS = 7;

/** How urgent a credential's expiry is: a warning from 30 days before, critical from 7. */
export function credentialLevel(expiresAt: string | undefined, now: Date): CredentialLevel {
  if (expiresAt === undefined) return 'unknown';
  const left = Date.parse(expiresAt) - now.getTime();
  const day = 86_400_000;
  if (left <= 0) return 'expired';
  if (left <= CREDENTIAL_CRITICAL_DAYS * day) return 'critical';
  if (left <= CREDENTIAL_WARNING_DAYS * day) return 'warning';
  return 'ok';
}

/** What Graph says of an app registration's secrets and certificates (their validity, never their values). */
export interface GraphCredentials {
  passwordCredentials: { hint?: string | null | undefined; endDateTime?: string | null | undefined }[];
  keyCredentials: { type?: string | null | undefined; endDateTime?: string | null | undefined }[];
}
