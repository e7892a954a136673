import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { LINK_PURPOSES, type LinkPurpose } from '../domain/sign-in-state.js';
import type { ConnectorKeys } from './connector-keys.js';

/**
 * Consent links: what the vendor sends its customer's user or administrator. A link names one
 * connection of one customer and what it is for, expires, and is signed with the connector's key,
 * so it cannot be altered or made up; everything else about the sign-in is decided server-side.
 */

const claimsSchema = z.object({
  v: z.literal(1),
  c: z.string(),
  n: z.string(),
  /** connect: sign in / consent as the connection's mode says; admin-grant: an admin consents for the organization. */
  p: z.enum(LINK_PURPOSES),
  /** Expiry, unix seconds. */
  e: z.int(),
});

export interface LinkClaims {
  customerId: string;
  connectionId: string;
  purpose: LinkPurpose;
  expiresAt: Date;
}

export type LinkCheck = { valid: true; claims: LinkClaims } | { valid: false; reason: 'tampered' | 'expired' };

export class ConsentLinks {
  constructor(
    private readonly keys: Pick<ConnectorKeys, 'derive'>,
    private readonly baseUrl: string,
    private readonly ttlMs: number,
    private readonly now: () => Date,
  ) {}

  async issue(customerId: string, connectionId: string, purpose: LinkPurpose): Promise<{ url: string; token: string; expiresAt: Date }> {
    const expiresAt = new Date(this.now().getTime() + this.ttlMs);
    const payload = Buffer.from(JSON.stringify({ v: 1, c: customerId, n: connectionId, p: purpose, e: Math.floor(expiresAt.getTime() / 1000) })).toString('base64url');
    const token = `${payload}.${(await this.sign(payload)).toString('base64url')}`;
    return { url: `${this.baseUrl}/api/connect/${token}`, token, expiresAt };
  }

  async check(token: string): Promise<LinkCheck> {
    const [payload, signature, extra] = token.split('.');
    if (!payload || !signature || extra !== undefined || token.length > 2048) return { valid: false, reason: 'tampered' };
    const expected = await this.sign(payload);
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { valid: false, reason: 'tampered' };
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return { valid: false, reason: 'tampered' };
    }
    const claims = claimsSchema.safeParse(decoded);
    if (!claims.success) return { valid: false, reason: 'tampered' };
    const expiresAt = new Date(claims.data.e * 1000);
    if (expiresAt.getTime() <= this.now().getTime()) return { valid: false, reason: 'expired' };
    return { valid: true, claims: { customerId: claims.data.c, connectionId: claims.data.n, purpose: claims.data.p, expiresAt } };
  }

  private async sign(payload: string): Promise<Buffer> {
    return createHmac('sha256', await this.keys.derive('consent-link')).update(payload).digest();
  }
}
