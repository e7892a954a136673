import { z } from 'zod';

/** What the connector remembers of a sign-in or consent round trip to Microsoft (see identity/sign-in-states). */

export const LINK_PURPOSES = ['connect', 'admin-grant'] as const;
export type LinkPurpose = (typeof LINK_PURPOSES)[number];

export const signInStateSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  customerId: z.string(),
  connectionId: z.string(),
  purpose: z.enum(LINK_PURPOSES),
  /**
   * sign-in: the person is at Microsoft's sign-in page; admin-consent: an administrator who signed
   * in (and whose tenant the connector learned from its own token redemption) is at the
   * admin-consent page of that tenant.
   */
  step: z.enum(['sign-in', 'admin-consent']),
  /** The nonce the id token must carry (sign-in step). */
  nonce: z.string(),
  /** admin-consent step: the tenant of the administrator who signed in, the only one the consent may come from. */
  tenantId: z.uuid().optional(),
  /** admin-consent step: who signed in, recorded with the grant. */
  signedInOid: z.uuid().optional(),
  signedInUpn: z.string().optional(),
  /** The page language the person chose on the landing page, for the pages after Microsoft's. */
  lang: z.string().regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$/).optional(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  consumedAt: z.iso.datetime().optional(),
});
export type SignInState = z.infer<typeof signInStateSchema>;
