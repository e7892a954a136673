import { randomUUID } from 'node:crypto';
import { AadstsError, aadsts } from './aadsts.js';
import { authorityRef, directoryName, resolveAuthority, type ResolvedAuthority } from './authority.js';
import { authorizationResponse, errorPageResponse, errorParams, isResponseMode, type ResponseMode } from './authorization-response.js';
import { requestedDelegated } from './consent.js';
import { errorIdsFor, type SandboxContext } from './context.js';
import { htmlResponse, type Handler, type SandboxRequest, type SandboxResponse } from './http.js';
import { signedOutPage } from './pages.js';
import { parseScopes } from './resources.js';
import type { AppRegistration, User } from './sandbox-state.js';
import type { Interactions } from './sign-in-flow.js';
import { clientInfo, opaqueToken } from './tokens.js';

/**
 * GET /{tenant}/oauth2/v2.0/authorize: the start of the authorization code flow. Like Entra, it
 * shows an error page when it cannot trust where to send the answer (missing or unknown
 * client_id, a redirect_uri not registered exactly), and otherwise sends every error to the
 * redirect URI in the requested response mode. On success the answer carries `code`, `state`,
 * `session_state`, and `client_info` when the client asked for it (`client_info=1`, as msal does).
 */

const PROMPTS = new Set(['login', 'none', 'consent', 'select_account', 'create']);
const CODE_CHALLENGE = /^[A-Za-z0-9._~-]{43,128}$/;

interface ValidatedRequest {
  authority: ResolvedAuthority;
  app: AppRegistration;
  redirectUri: string;
  mode: ResponseMode;
}

/** Checks that decide whether errors may go back to the app at all. */
function validateClient(context: SandboxContext, query: URLSearchParams, segment: string): ValidatedRequest {
  const authority = resolveAuthority(context.state, segment);
  const clientId = query.get('client_id');
  if (!clientId) throw aadsts.missingParameter('client_id');
  const app = context.state.app(clientId);
  if (!app) throw aadsts.applicationNotFound(clientId, directoryName(authority));
  if (authority.kind === 'consumers') throw aadsts.consumersNotSupported(app.clientId, app.displayName);
  const redirectUri = query.get('redirect_uri');
  if (!redirectUri) throw aadsts.missingParameter('redirect_uri');
  if (!app.redirectUris.includes(redirectUri)) throw aadsts.redirectUriMismatch(redirectUri, app.clientId);
  const mode = query.get('response_mode') ?? 'query';
  return { authority, app, redirectUri, mode: isResponseMode(mode) ? mode : 'query' };
}

/** PKCE: without a method, a challenge is plain text (RFC 7636), which Entra also accepts. */
function challengeMethod(method: string | null, challenge: string | undefined): 'S256' | 'plain' | undefined {
  if (method === null) return challenge === undefined ? undefined : 'plain';
  if (method !== 'S256' && method !== 'plain') throw aadsts.invalidParameter('code_challenge_method', method);
  if (challenge === undefined) throw aadsts.missingParameter('code_challenge');
  return method;
}

export function startSession(context: SandboxContext, user: User, clientId: string): string {
  const id = randomUUID();
  const now = context.now();
  context.state.data.sessions.push({ id, userId: user.id, tenantId: user.tenantId, clientId, authenticatedAt: now, lastUsedAt: now });
  return id;
}

export function authorizeEndpoint(context: SandboxContext, interactions: Interactions): Handler {
  return (request: SandboxRequest): SandboxResponse => {
    const ids = errorIdsFor(context, request);
    const query = request.url.searchParams;
    let validated: ValidatedRequest;
    try {
      validated = validateClient(context, query, request.params[0] ?? '');
    } catch (error) {
      if (error instanceof AadstsError) return errorPageResponse(error, ids);
      throw error;
    }
    const { authority, app, redirectUri, mode } = validated;
    const state = query.get('state');
    const withState = (params: [string, string][]): [string, string][] => (state === null ? params : [...params, ['state', state]]);
    const fail = (error: AadstsError, subcode?: string) => authorizationResponse(mode, redirectUri, withState(errorParams(error, ids, subcode)));

    try {
      const requestedMode = query.get('response_mode');
      if (requestedMode !== null && !isResponseMode(requestedMode)) throw aadsts.unsupportedResponseMode(requestedMode);
      const responseType = query.get('response_type');
      if (!responseType) throw aadsts.missingParameter('response_type');
      if (responseType !== 'code') throw aadsts.unsupportedResponseType(responseType);
      const scope = query.get('scope');
      if (!scope) throw aadsts.missingParameter('scope');
      const scopes = parseScopes(scope, directoryName(authority));
      const challenge = query.get('code_challenge') ?? undefined;
      const method = challengeMethod(query.get('code_challenge_method'), challenge);
      if (challenge !== undefined && !CODE_CHALLENGE.test(challenge)) throw aadsts.invalidCodeChallenge();
      const prompt = query.get('prompt') ?? undefined;
      if (prompt !== undefined && !PROMPTS.has(prompt)) throw aadsts.invalidParameter('prompt', prompt);
      // The sandbox keeps no browser session, so nothing can be answered without a page.
      if (prompt === 'none') throw aadsts.loginRequired();

      const domainHint = query.get('domain_hint');
      const hintedTenant = domainHint === null ? undefined : context.state.tenantByIdOrDomain(domainHint);
      const nonce = query.get('nonce') ?? undefined;
      const wantsClientInfo = query.get('client_info') === '1';

      return interactions.begin({
        purpose: 'sign-in',
        authority,
        app,
        tenantHint: hintedTenant?.id,
        loginHint: query.get('login_hint') ?? undefined,
        requested: requestedDelegated(app, scopes),
        oidc: scopes.oidc,
        forceConsent: prompt === 'consent',
        endings: {
          approved: (user) => {
            const sessionId = startSession(context, user, app.clientId);
            const now = context.now();
            const code = opaqueToken();
            context.state.data.codes.push({
              code,
              clientId: app.clientId,
              userId: user.id,
              sessionId,
              authority: authorityRef(authority),
              redirectUri,
              scope,
              nonce,
              codeChallenge: challenge,
              codeChallengeMethod: method,
              issuedAt: now,
              expiresAt: now + context.lifetimes.authorizationCodeSeconds * 1000,
            });
            const params: [string, string][] = [['code', code]];
            if (wantsClientInfo) params.push(['client_info', clientInfo(user.id, user.tenantId)]);
            return authorizationResponse(mode, redirectUri, [...withState(params), ['session_state', sessionId]]);
          },
          declined: () => fail(aadsts.userDeclinedConsent(), 'cancel'),
          returned: (error, returnIds) => authorizationResponse(mode, redirectUri, withState(errorParams(error, returnIds))),
        },
      });
    } catch (error) {
      if (error instanceof AadstsError) return fail(error);
      throw error;
    }
  };
}

/** GET /{tenant}/oauth2/v2.0/logout: the sandbox keeps no browser session, so signing out only says so. */
export function logoutEndpoint(): Handler {
  return () => htmlResponse(200, signedOutPage());
}
