import { aadsts } from './aadsts.js';
import type { AuthenticatedClient } from './client-authentication.js';
import { accessTokenLifetime, type SandboxContext } from './context.js';
import { MICROSOFT_GRAPH, parseScopes, qualifiedScope, type ResourceScopes } from './resources.js';
import type { AppRegistration, SignInSession, User } from './sandbox-state.js';
import { clientInfo, mintIdToken, mintUserAccessToken, opaqueToken, v2Issuer } from './tokens.js';

/**
 * The token response of every grant that acts for a user (code, refresh token, device code):
 * one access token for one resource (Entra refuses scopes of two resources at the token
 * endpoint, AADSTS700022), a refresh token when `offline_access` was asked for or a refresh token
 * was redeemed (Entra rotates them; the old one keeps working), an ID token for `openid`, and
 * `client_info` when asked for. The access token may use any delegated permission the user or
 * the organization granted for that resource, whichever resource the sign-in was for: refresh
 * tokens are not bound to a resource. Conditional Access is evaluated on every issuance.
 */

export interface UserTokenRequest {
  app: AppRegistration;
  user: User;
  session: SignInSession;
  scope: string;
  client: AuthenticatedClient;
  clientInfoRequested: boolean;
  nonce?: string;
  /** A refresh token grant always returns a new refresh token. */
  rotateRefreshToken: boolean;
}

const OIDC_RESPONSE_SCOPES = ['openid', 'profile', 'email'];

export async function userTokenResponse(context: SandboxContext, request: UserTokenRequest): Promise<Record<string, unknown>> {
  const { state } = context;
  const { app, user, session } = request;
  const tenant = state.tenant(user.tenantId);
  if (!tenant) throw aadsts.userNotInTenant(user.userPrincipalName, user.tenantId);
  if (tenant.policies.conditionalAccessBlocked) throw aadsts.blockedByConditionalAccess();

  const scopes = parseScopes(request.scope, tenant.displayName);
  if (scopes.resources.length > 1) throw aadsts.multipleResources(request.scope);
  const target: ResourceScopes = scopes.resources[0] ?? { resource: MICROSOFT_GRAPH, audience: MICROSOFT_GRAPH.appId, names: [], isDefault: false };
  const granted = state.grantedScopes(tenant.id, app.clientId, target.resource.appId, user.id);
  const notGranted = target.names.some((name) => !granted.has(name)) || (target.isDefault && granted.size === 0);
  if (notGranted) throw aadsts.consentMissing(app.clientId, app.displayName);

  const now = context.now();
  session.lastUsedAt = now;
  const lifetime = accessTokenLifetime(context);
  const scp = granted.size > 0 ? [...granted] : OIDC_RESPONSE_SCOPES;
  const body: Record<string, unknown> = {
    token_type: 'Bearer',
    scope: [...[...granted].map((name) => qualifiedScope(target.resource, target.audience, name)), ...(scopes.oidc.has('openid') ? OIDC_RESPONSE_SCOPES : [])].join(' '),
    expires_in: lifetime,
    ext_expires_in: lifetime,
    access_token: await mintUserAccessToken(context.signer, {
      now,
      lifetimeSeconds: lifetime,
      audience: target.audience,
      user,
      client: { clientId: app.clientId, displayName: app.displayName, appidacr: request.client },
      scopes: scp,
      sessionId: session.id,
    }),
  };
  if (scopes.oidc.has('offline_access') || request.rotateRefreshToken) {
    const token = opaqueToken(192);
    state.data.refreshTokens.push({ token, sessionId: session.id, clientId: app.clientId, userId: user.id, issuedAt: now, publicClient: request.client === '0' });
    body.refresh_token = token;
  }
  if (scopes.oidc.has('openid')) {
    body.id_token = await mintIdToken(context.signer, {
      now,
      lifetimeSeconds: 3600,
      issuer: v2Issuer(context.httpsBase, user.tenantId),
      clientId: app.clientId,
      user,
      sessionId: session.id,
      nonce: request.nonce,
    });
  }
  if (request.clientInfoRequested) body.client_info = clientInfo(user.id, user.tenantId);
  return body;
}
