import type { AuthenticationResult } from '@azure/msal-node';

/**
 * The id token claims the flow reads. The connector redeemed the token itself over TLS, so its
 * signature is not checked; msal checked the nonce, and signedInIdentity the audience, the issuer
 * and the expiry (msal does not).
 */
export interface SignedInIdentity {
  tenantId: string;
  oid: string;
  upn: string;
  displayName?: string;
  email?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Clock skew allowed on the id token's expiry, as Entra's own libraries allow. */
const ID_TOKEN_SKEW_SECONDS = 300;

export function signedInIdentity(result: AuthenticationResult, expected: { clientId: string; loginUrl: string; now: Date }): SignedInIdentity | undefined {
  const claims = result.idTokenClaims as Record<string, unknown>;
  const tenantId = typeof claims.tid === 'string' ? claims.tid : undefined;
  const oid = typeof claims.oid === 'string' ? claims.oid : undefined;
  if (!tenantId || !oid || !GUID.test(tenantId) || !GUID.test(oid)) return undefined;
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(expected.clientId)) return undefined;
  // The v2.0 endpoint's issuer: the cloud's login host and the tenant that signed the person in.
  if (typeof claims.iss !== 'string' || claims.iss.toLowerCase() !== `${expected.loginUrl}/${tenantId}/v2.0`.toLowerCase()) return undefined;
  if (typeof claims.exp !== 'number' || claims.exp + ID_TOKEN_SKEW_SECONDS < expected.now.getTime() / 1000) return undefined;
  const upn = [claims.preferred_username, claims.upn, claims.email, result.account?.username].find((v): v is string => typeof v === 'string' && v !== '');
  if (!upn) return undefined;
  return {
    tenantId: tenantId.toLowerCase(),
    oid: oid.toLowerCase(),
    upn,
    ...(typeof claims.name === 'string' && claims.name !== '' && { displayName: claims.name }),
    ...(typeof claims.email === 'string' && claims.email.includes('@') && { email: claims.email }),
  };
}
