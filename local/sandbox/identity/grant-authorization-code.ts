import { createHash } from 'node:crypto';
import { aadsts } from './aadsts.js';
import type { ResolvedAuthority } from './authority.js';
import { parseScopes, qualifiedScope } from './resources.js';
import type { AuthorityRef, AuthorizationCode } from './sandbox-state.js';
import type { GrantInput } from './token-endpoint.js';
import { userTokenResponse } from './user-token-response.js';

/**
 * grant_type=authorization_code. A code is single-use (AADSTS54005), lives ten minutes
 * (AADSTS70008), must be redeemed where it was issued — a tenant's code at that tenant, an
 * `organizations`/`common` code at those (AADSTS700005) —, with the same redirect_uri
 * (AADSTS500112) and, when it was issued with a PKCE challenge, the matching verifier (AADSTS501481).
 * Without a `scope` the token is for the first resource of the authorization request.
 */

function sameAuthority(issued: AuthorityRef, redeemed: ResolvedAuthority): boolean {
  if (issued.kind === 'tenant') return redeemed.kind === 'tenant' && redeemed.tenant.id === issued.tenantId;
  return redeemed.kind === 'organizations' || redeemed.kind === 'common';
}

function verifyPkce(code: AuthorizationCode, verifier: string | null): void {
  if (code.codeChallenge === undefined) return;
  if (!verifier) throw aadsts.pkceMismatch();
  const expected = code.codeChallengeMethod === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
  if (expected !== code.codeChallenge) throw aadsts.pkceMismatch();
}

export async function authorizationCodeGrant({ context, authority, app, form, client }: GrantInput): Promise<Record<string, unknown>> {
  const value = form.get('code');
  if (!value) throw aadsts.missingParameter('code');
  const code = context.state.data.codes.find((c) => c.code === value);
  if (!code || code.clientId !== app.clientId) throw aadsts.malformedGrant();
  if (code.redeemedAt !== undefined) throw aadsts.codeRedeemed();
  const now = context.now();
  if (code.expiresAt <= now) throw aadsts.codeExpired();
  if (!sameAuthority(code.authority, authority)) throw aadsts.codeForOtherTenant();
  const redirectUri = form.get('redirect_uri');
  if (!redirectUri) throw aadsts.missingParameter('redirect_uri');
  if (redirectUri !== code.redirectUri) throw aadsts.replyAddressMismatch(redirectUri, code.redirectUri);
  verifyPkce(code, form.get('code_verifier'));
  code.redeemedAt = now;
  const user = context.state.user(code.userId);
  const session = context.state.session(code.sessionId);
  if (!user || !session) throw aadsts.malformedGrant();
  return userTokenResponse(context, {
    app,
    user,
    session,
    scope: form.get('scope') ?? firstResourceOf(code.scope),
    client,
    clientInfoRequested: form.get('client_info') === '1',
    nonce: code.nonce,
    rotateRefreshToken: false,
  });
}

/** The authorization request's scopes may span resources; a token is for one (the first), plus the OIDC scopes. */
function firstResourceOf(scope: string): string {
  const parsed = parseScopes(scope, '');
  const first = parsed.resources[0];
  const resourceScopes = first ? [...first.names.map((name) => qualifiedScope(first.resource, first.audience, name)), ...(first.isDefault ? [`${first.audience}/.default`] : [])] : [];
  return [...parsed.oidc, ...resourceScopes].join(' ');
}
