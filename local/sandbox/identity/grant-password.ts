import { randomUUID } from 'node:crypto';
import { aadsts } from './aadsts.js';
import { directoryName, tenantScope } from './authority.js';
import type { SignInSession } from './sandbox-state.js';
import type { GrantInput } from './token-endpoint.js';
import { passwordMatches } from './user-passwords.js';
import { userTokenResponse } from './user-token-response.js';

/**
 * grant_type=password (resource owner password credentials, RFC 6749 §4.3) as Entra's ROPC page
 * describes it: `username`, `password` and `scope`, with the client's credential when it is a
 * confidential client (a public client needs "allow public client flows"). There is no page, so
 * nothing can be consented here: a permission nobody granted is AADSTS65001 `consent_required`,
 * whatever the tenant's consent policy. Not at `common` or `consumers`. A wrong password, and a
 * user who has none, are AADSTS50126; an unknown user is AADSTS50034. Conditional Access still
 * applies (AADSTS53003); MFA is not modelled, which is exactly what ROPC gets around in Entra.
 */
export async function passwordGrant({ context, authority, app, form, client }: GrantInput): Promise<Record<string, unknown>> {
  if (authority.kind === 'common') throw aadsts.grantNotSupportedOverCommon();
  const username = form.get('username');
  if (!username) throw aadsts.missingParameter('username');
  const password = form.get('password');
  if (password === null) throw aadsts.missingParameter('password');
  const scope = form.get('scope');
  if (!scope) throw aadsts.missingParameter('scope');
  const { state } = context;
  const limit = tenantScope(authority);
  const user = state.usersOf(limit).find((u) => u.userPrincipalName.toLowerCase() === username.toLowerCase());
  if (!user) throw aadsts.userNotFound(directoryName(authority));
  if (!passwordMatches(user.passwordHash, password)) throw aadsts.invalidUsernameOrPassword();
  const now = context.now();
  const session: SignInSession = { id: randomUUID(), userId: user.id, tenantId: user.tenantId, clientId: app.clientId, authenticatedAt: now, lastUsedAt: now };
  const body = await userTokenResponse(context, {
    app,
    user,
    session,
    scope,
    client,
    clientInfoRequested: form.get('client_info') === '1',
    rotateRefreshToken: false,
  });
  // Kept only once tokens were issued: a refused request leaves no session behind.
  state.data.sessions.push(session);
  return body;
}
