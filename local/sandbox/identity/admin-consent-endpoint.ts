import { AadstsError, aadsts } from './aadsts.js';
import { directoryName, resolveAuthority } from './authority.js';
import { authorizationResponse, errorPageResponse, errorParams } from './authorization-response.js';
import { declaredPermissions, requestedDelegated } from './consent.js';
import { errorIdsFor, type SandboxContext } from './context.js';
import type { Handler, SandboxRequest, SandboxResponse } from './http.js';
import { parseScopes, type ResourceApi } from './resources.js';
import type { Interactions } from './sign-in-flow.js';

/**
 * GET /{tenant}/v2.0/adminconsent: an administrator grants the app's permissions for the whole
 * tenant (microsoft.md §1, Entra's v2-admin-consent page). With `<resource>/.default` that is
 * everything the registration declares, delegated permissions and app roles alike; with named
 * scopes, those delegated permissions. Answers go to the redirect URI in the query:
 *   approved → admin_consent=True&tenant=<tid>&scope=<scope>&state=…
 *   declined → error=consent_required&error_description=AADSTS65004…&admin_consent=True&state=…
 * Errors carry admin_consent=True too, so an app must test `error` first, as the page warns.
 */
export function adminConsentEndpoint(context: SandboxContext, interactions: Interactions): Handler {
  return (request: SandboxRequest): SandboxResponse => {
    const ids = errorIdsFor(context, request);
    const query = request.url.searchParams;
    const clientId = query.get('client_id');
    const redirectUri = query.get('redirect_uri');
    let authority;
    let app;
    try {
      authority = resolveAuthority(context.state, request.params[0] ?? '');
      if (!clientId) throw aadsts.missingParameter('client_id');
      app = context.state.app(clientId);
      if (!app) throw aadsts.applicationNotFound(clientId, directoryName(authority));
      if (authority.kind === 'consumers') throw aadsts.consumersNotSupported(app.clientId, app.displayName);
      if (!redirectUri) throw aadsts.missingParameter('redirect_uri');
      if (!app.redirectUris.includes(redirectUri)) throw aadsts.redirectUriMismatch(redirectUri, app.clientId);
    } catch (error) {
      if (error instanceof AadstsError) return errorPageResponse(error, ids);
      throw error;
    }
    const state = query.get('state');
    const answer = (params: [string, string][]) =>
      authorizationResponse('query', redirectUri, [...params, ['admin_consent', 'True'], ...(state === null ? [] : ([['state', state]] as [string, string][]))]);

    try {
      const scope = query.get('scope');
      if (!scope) throw aadsts.missingParameter('scope');
      const scopes = parseScopes(scope, directoryName(authority));
      const everything = scopes.resources.some((r) => r.isDefault);
      const registered = app;
      return interactions.begin({
        purpose: 'admin-consent',
        authority,
        app: registered,
        delegated: everything ? declaredPermissions(registered, 'delegated') : requestedDelegated(registered, scopes),
        appRoles: everything ? declaredPermissions(registered, 'appRole') : new Map<ResourceApi, string[]>(),
        endings: {
          // Entra puts admin_consent first on success; the order carries no meaning.
          approved: (user) =>
            authorizationResponse('query', redirectUri, [
              ['admin_consent', 'True'],
              ['tenant', user.tenantId],
              ['scope', scope],
              ...(state === null ? [] : ([['state', state]] as [string, string][])),
            ]),
          declined: () => answer(errorParams(aadsts.adminDeclinedConsent(), errorIdsFor(context, request))),
          returned: (error, returnIds) => answer(errorParams(error, returnIds)),
        },
      });
    } catch (error) {
      if (error instanceof AadstsError) return answer(errorParams(error, ids));
      throw error;
    }
  };
}
