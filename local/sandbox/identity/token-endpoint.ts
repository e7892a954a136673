import { AadstsError, aadsts, errorBody } from './aadsts.js';
import { directoryName, resolveAuthority, type ResolvedAuthority } from './authority.js';
import { authenticateClient, basicCredentials, type AuthenticatedClient } from './client-authentication.js';
import { errorIdsFor, type SandboxContext } from './context.js';
import { authorizationCodeGrant } from './grant-authorization-code.js';
import { clientCredentialsGrant } from './grant-client-credentials.js';
import { deviceCodeGrant } from './grant-device-code.js';
import { passwordGrant } from './grant-password.js';
import { refreshTokenGrant } from './grant-refresh-token.js';
import { jsonResponse, type Handler, type SandboxRequest } from './http.js';
import type { SandboxFaults } from './request-faults.js';
import type { AppRegistration } from './sandbox-state.js';

/**
 * POST /{tenant}/oauth2/v2.0/token. Order of checks, as Entra's answers suggest: injected faults,
 * the tenant, the grant type and client, the client's credential, then the grant itself. Errors
 * are JSON with Entra's fields; `invalid_client` answers 401, throttling 429, outages 503, the
 * rest 400.
 */

export interface GrantInput {
  context: SandboxContext;
  authority: ResolvedAuthority;
  app: AppRegistration;
  form: URLSearchParams;
  client: AuthenticatedClient;
}

const GRANTS: Readonly<Record<string, (input: GrantInput) => Promise<Record<string, unknown>>>> = {
  authorization_code: authorizationCodeGrant,
  refresh_token: refreshTokenGrant,
  client_credentials: clientCredentialsGrant,
  // RFC 8628's name, which Entra documents, and the short one msal-node 7 sends (GrantType.DEVICE_CODE_GRANT).
  'urn:ietf:params:oauth:grant-type:device_code': deviceCodeGrant,
  device_code: deviceCodeGrant,
  password: passwordGrant,
};

/** The URLs an assertion may name as audience: the token endpoint as called, and by tenant id and domains. */
function tokenEndpointUrls(context: SandboxContext, request: SandboxRequest, authority: ResolvedAuthority): string[] {
  const segments = authority.kind === 'tenant' ? [authority.segment, authority.tenant.id, ...authority.tenant.domains] : [authority.segment];
  return [`${context.httpsBase}${request.url.pathname}`, ...segments.map((s) => `${context.httpsBase}/${s}/oauth2/v2.0/token`)];
}

export function tokenEndpoint(context: SandboxContext, faults: SandboxFaults): Handler {
  return async (request) => {
    const ids = errorIdsFor(context, request);
    const fault = faults.token.take();
    if (fault) {
      const error = fault.status === 429 ? aadsts.tooManyRequests() : aadsts.serviceUnavailable();
      const retryAfter: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) };
      return jsonResponse(fault.status, errorBody(error, ids), retryAfter);
    }
    try {
      const authority = resolveAuthority(context.state, request.params[0] ?? '');
      const { form } = request;
      const grantType = form.get('grant_type');
      if (!grantType) throw aadsts.missingParameter('grant_type');
      const clientId = form.get('client_id') ?? basicCredentials(request.headers)?.clientId;
      if (!clientId) throw aadsts.missingParameter('client_id');
      const app = context.state.app(clientId);
      if (!app) throw aadsts.applicationNotFound(clientId, directoryName(authority));
      if (authority.kind === 'consumers') throw aadsts.consumersNotSupported(app.clientId, app.displayName);
      const grant = GRANTS[grantType];
      if (!grant) throw aadsts.unsupportedGrantType(grantType);
      const client = await authenticateClient({
        app,
        form,
        headers: request.headers,
        tokenEndpoints: tokenEndpointUrls(context, request, authority),
        publicClientAllowed: grantType !== 'client_credentials',
        now: context.now(),
      });
      return jsonResponse(200, await grant({ context, authority, app, form, client }));
    } catch (error) {
      if (error instanceof AadstsError) return jsonResponse(error.status, errorBody(error, ids));
      throw error;
    }
  };
}
