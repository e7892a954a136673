import { AadstsError, errorBody } from './aadsts.js';
import { CONSUMERS_TENANT_ID, resolveAuthority, type ResolvedAuthority } from './authority.js';
import { errorIdsFor, type SandboxContext } from './context.js';
import { jsonResponse, type Handler } from './http.js';

/**
 * Discovery, as Entra serves it:
 * - GET /{tenant}/v2.0/.well-known/openid-configuration: for a tenant the endpoints carry its id
 *   (also when the path named a domain) and `issuer` is https://<host>/<tid>/v2.0; for
 *   `organizations`/`common` the endpoints keep the alias and `issuer` keeps the `{tenantid}`
 *   placeholder. `authorization_endpoint` is on the plain-http browser listener, which is how a
 *   person's browser never meets the sandbox's certificate while msal-node keeps an https authority.
 * - GET /{tenant}/discovery/v2.0/keys: the signing keys (kid, x5t, n, e, x5c, issuer).
 * - GET /common/discovery/instance: Entra's instance discovery answer. msal-node only ever asks
 *   login.microsoftonline.com for it, so a client gets it here to pass as `cloudDiscoveryMetadata`.
 */

function tenantSegmentAndIssuerId(authority: ResolvedAuthority): { segment: string; issuerTenant: string } {
  switch (authority.kind) {
    case 'tenant':
      return { segment: authority.tenant.id, issuerTenant: authority.tenant.id };
    case 'consumers':
      return { segment: 'consumers', issuerTenant: CONSUMERS_TENANT_ID };
    default:
      return { segment: authority.kind, issuerTenant: '{tenantid}' };
  }
}

function openIdConfiguration(context: SandboxContext, authority: ResolvedAuthority): Record<string, unknown> {
  const { segment, issuerTenant } = tenantSegmentAndIssuerId(authority);
  const https = `${context.httpsBase}/${segment}`;
  const browser = `${context.browserBase}/${segment}`;
  return {
    token_endpoint: `${https}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${https}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: `${context.httpsBase}/${issuerTenant}/v2.0`,
    request_uri_parameter_supported: false,
    authorization_endpoint: `${browser}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${https}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${browser}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
    tenant_region_scope: null,
    cloud_instance_name: 'sandbox.local',
    msgraph_host: 'graph.microsoft.com',
  };
}

/** Both discovery documents answer unknown tenants the way Entra does: 400, AADSTS90002. */
function discoveryHandler(context: SandboxContext, build: (authority: ResolvedAuthority) => unknown): Handler {
  return (request) => {
    try {
      return jsonResponse(200, build(resolveAuthority(context.state, request.params[0] ?? '')));
    } catch (error) {
      if (error instanceof AadstsError) return jsonResponse(error.status, errorBody(error, errorIdsFor(context, request)));
      throw error;
    }
  };
}

export function openIdConfigurationEndpoint(context: SandboxContext): Handler {
  return discoveryHandler(context, (authority) => openIdConfiguration(context, authority));
}

export function keysEndpoint(context: SandboxContext, jwk: Record<string, unknown>): Handler {
  return discoveryHandler(context, (authority) => ({
    keys: [{ ...jwk, issuer: `${context.httpsBase}/${tenantSegmentAndIssuerId(authority).issuerTenant}/v2.0` }],
  }));
}

/** The host msal-node uses as environment and cache key; the browser host is only an alias for pages. */
export function instanceDiscovery(context: SandboxContext): Record<string, unknown> {
  const host = new URL(context.httpsBase).host;
  return {
    tenant_discovery_endpoint: `${context.httpsBase}/{tenantid}/v2.0/.well-known/openid-configuration`,
    'api-version': '1.1',
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  };
}

export function instanceDiscoveryEndpoint(context: SandboxContext): Handler {
  return () => jsonResponse(200, instanceDiscovery(context));
}
