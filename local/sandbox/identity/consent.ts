import { randomUUID } from 'node:crypto';
import { resourceByAppId, type ParsedScopes, type ResourceApi } from './resources.js';
import type { AppRegistration, SandboxState, User } from './sandbox-state.js';

/**
 * Consent as Entra records it: consenting creates the app's service principal in the tenant, and
 * delegated permissions become grants for one user or for all users (admin consent); app roles
 * are granted only by an administrator, to the service principal. `/.default` means "what the app
 * registration declares".
 */

export type PermissionsByResource = Map<ResourceApi, string[]>;

/** The delegated permissions a sign-in asks for, with `.default` expanded from the registration. */
export function requestedDelegated(app: AppRegistration, scopes: ParsedScopes): PermissionsByResource {
  const requested: PermissionsByResource = new Map();
  for (const entry of scopes.resources) {
    const declared = entry.isDefault ? app.delegatedPermissions.filter((p) => p.resourceAppId === entry.resource.appId).map((p) => p.name) : [];
    requested.set(entry.resource, [...new Set([...entry.names, ...declared])]);
  }
  return requested;
}

/** What the registration declares, by resource: what admin consent with `.default` grants. */
export function declaredPermissions(app: AppRegistration, kind: 'delegated' | 'appRole'): PermissionsByResource {
  const declared: PermissionsByResource = new Map();
  for (const permission of kind === 'delegated' ? app.delegatedPermissions : app.appRoles) {
    const resource = resourceByAppId(permission.resourceAppId);
    if (!resource) continue;
    declared.set(resource, [...(declared.get(resource) ?? []), permission.name]);
  }
  return declared;
}

export function missingDelegated(state: SandboxState, app: AppRegistration, user: User, requested: PermissionsByResource): PermissionsByResource {
  const missing: PermissionsByResource = new Map();
  for (const [resource, names] of requested) {
    const granted = state.grantedScopes(user.tenantId, app.clientId, resource.appId, user.id);
    const absent = names.filter((name) => !granted.has(name));
    if (absent.length > 0) missing.set(resource, absent);
  }
  return missing;
}

export function ensureServicePrincipal(state: SandboxState, tenantId: string, clientId: string): string {
  const existing = state.servicePrincipal(tenantId, clientId);
  if (existing) return existing.id;
  const id = randomUUID();
  state.data.servicePrincipals.push({ id, tenantId, clientId });
  return id;
}

/** Grants delegated permissions to one user (principalId) or to everyone in the tenant (null). */
export function grantDelegated(state: SandboxState, tenantId: string, clientId: string, principalId: string | null, permissions: PermissionsByResource): void {
  ensureServicePrincipal(state, tenantId, clientId);
  for (const [resource, names] of permissions) {
    const grants = state.data.delegatedGrants;
    let grant = grants.find((g) => g.tenantId === tenantId && g.clientId === clientId && g.resourceAppId === resource.appId && g.principalId === principalId);
    if (!grant) {
      grant = { tenantId, clientId, resourceAppId: resource.appId, principalId, scopes: [] };
      grants.push(grant);
    }
    grant.scopes = [...new Set([...grant.scopes, ...names])];
  }
}

export function grantAppRoles(state: SandboxState, tenantId: string, clientId: string, roles: PermissionsByResource): void {
  ensureServicePrincipal(state, tenantId, clientId);
  for (const [resource, names] of roles) {
    const grants = state.data.appRoleGrants;
    let grant = grants.find((g) => g.tenantId === tenantId && g.clientId === clientId && g.resourceAppId === resource.appId);
    if (!grant) {
      grant = { tenantId, clientId, resourceAppId: resource.appId, roles: [] };
      grants.push(grant);
    }
    grant.roles = [...new Set([...grant.roles, ...names])];
  }
}

/** "Delete the enterprise application": the service principal and every grant go. */
export function removeAppFromTenant(state: SandboxState, tenantId: string, clientId: string): void {
  const other = (r: { tenantId: string; clientId: string }) => r.tenantId !== tenantId || r.clientId !== clientId;
  state.data.servicePrincipals = state.data.servicePrincipals.filter(other);
  state.data.delegatedGrants = state.data.delegatedGrants.filter(other);
  state.data.appRoleGrants = state.data.appRoleGrants.filter(other);
}
