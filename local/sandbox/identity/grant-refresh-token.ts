import { aadsts } from './aadsts.js';
import type { GrantInput } from './token-endpoint.js';
import { userTokenResponse } from './user-token-response.js';

/**
 * grant_type=refresh_token. A refresh token belongs to one user and one app, not to a resource:
 * it buys a token for any resource the user consented to. Every use returns a new one and the old
 * one keeps working (Entra's refresh-tokens page), until the user's sessions are revoked
 * (AADSTS50173) or it goes unused for the inactivity window (AADSTS700082). One issued to a public
 * client must be redeemed as a public client (AADSTS700025).
 */
export async function refreshTokenGrant({ context, authority, app, form, client }: GrantInput): Promise<Record<string, unknown>> {
  const value = form.get('refresh_token');
  if (!value) throw aadsts.missingParameter('refresh_token');
  const scope = form.get('scope');
  if (!scope) throw aadsts.missingParameter('scope');
  const { state } = context;
  const record = state.data.refreshTokens.find((t) => t.token === value);
  if (!record || record.clientId !== app.clientId) throw aadsts.malformedGrant();
  // Entra binds a refresh token to the kind of client it was issued to: one a public client got
  // (device code, or any flow without a credential) cannot be redeemed with a secret or assertion.
  if (record.publicClient === true && client !== '0') throw aadsts.publicClientPresentedCredential();
  const session = state.session(record.sessionId);
  const user = state.user(record.userId);
  if (!session || !user) throw aadsts.malformedGrant();
  if (authority.kind === 'tenant' && authority.tenant.id !== user.tenantId) throw aadsts.userNotInTenant(user.userPrincipalName, authority.tenant.id);
  if (user.tokensValidFrom > session.authenticatedAt) throw aadsts.sessionRevoked(session.authenticatedAt, user.tokensValidFrom);
  const now = context.now();
  const inactivityDays = context.lifetimes.refreshTokenInactivityDays;
  if (now - session.lastUsedAt > inactivityDays * 86_400_000) throw aadsts.refreshTokenInactive(session.authenticatedAt, inactivityDays);
  record.lastRedeemedAt = now;
  return userTokenResponse(context, {
    app,
    user,
    session,
    scope,
    client,
    clientInfoRequested: form.get('client_info') === '1',
    rotateRefreshToken: true,
  });
}
