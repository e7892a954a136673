import { aadsts } from './aadsts.js';
import { accessTokenLifetime } from './context.js';
import { parseScopes } from './resources.js';
import type { GrantInput } from './token-endpoint.js';
import { mintAppAccessToken } from './tokens.js';

/**
 * grant_type=client_credentials: an app-only token for one tenant. The tenant must be named
 * (`common` → AADSTS9001023; `organizations` names no tenant → AADSTS50059), the scope must be
 * `<resource>/.default` (AADSTS1002012), and the app needs a service principal there, i.e. someone
 * consented (otherwise AADSTS7000229). The token's `roles` are the app roles an administrator
 * granted; with none granted Entra still issues a token, just without `roles`.
 */
export async function clientCredentialsGrant({ context, authority, app, form, client }: GrantInput): Promise<Record<string, unknown>> {
  if (authority.kind === 'common') throw aadsts.grantNotSupportedOverCommon();
  if (authority.kind !== 'tenant') throw aadsts.noTenantIdentifyingInformation();
  const scope = form.get('scope');
  if (!scope) throw aadsts.missingParameter('scope');
  for (const one of scope.split(/\s+/).filter((s) => s !== '')) {
    if (!one.toLowerCase().endsWith('/.default')) throw aadsts.defaultScopeRequired(one);
  }
  const { tenant } = authority;
  const scopes = parseScopes(scope, tenant.displayName);
  if (scopes.resources.length > 1) throw aadsts.multipleResources(scope);
  const target = scopes.resources[0];
  if (!target) throw aadsts.missingParameter('scope');
  const servicePrincipal = context.state.servicePrincipal(tenant.id, app.clientId);
  if (!servicePrincipal) throw aadsts.servicePrincipalMissing(app.clientId, tenant.id);
  const lifetime = accessTokenLifetime(context);
  return {
    token_type: 'Bearer',
    expires_in: lifetime,
    ext_expires_in: lifetime,
    access_token: await mintAppAccessToken(context.signer, {
      now: context.now(),
      lifetimeSeconds: lifetime,
      audience: target.audience,
      tenantId: tenant.id,
      servicePrincipalId: servicePrincipal.id,
      client: { clientId: app.clientId, displayName: app.displayName, appidacr: client },
      roles: context.state.grantedRoles(tenant.id, app.clientId, target.resource.appId),
    }),
  };
}
