import { aadsts } from './aadsts.js';
import type { AuthorityRef, SandboxState, Tenant } from './sandbox-state.js';

/**
 * The `{tenant}` path segment every endpoint starts with: a tenant id or verified domain, or one of
 * Entra's aliases. `organizations` and `common` let any work account sign in (the sandbox has no
 * personal accounts, so both mean the same people); `consumers` is personal accounts only, which an
 * app for Microsoft 365 mailboxes cannot serve (AADSTS9002332), though its discovery documents
 * exist, as Entra's do.
 */

export type ResolvedAuthority =
  | { kind: 'tenant'; segment: string; tenant: Tenant }
  | { kind: 'organizations' | 'common' | 'consumers'; segment: string };

/** The tenant id Entra uses for personal Microsoft accounts. */
export const CONSUMERS_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';

export function resolveAuthority(state: SandboxState, segment: string): ResolvedAuthority {
  const alias = segment.toLowerCase();
  if (alias === 'organizations' || alias === 'common' || alias === 'consumers') return { kind: alias, segment: alias };
  const tenant = state.tenantByIdOrDomain(segment);
  if (!tenant) throw aadsts.tenantNotFound(segment);
  return { kind: 'tenant', segment, tenant };
}

export function authorityRef(authority: ResolvedAuthority): AuthorityRef {
  if (authority.kind === 'tenant') return { kind: 'tenant', tenantId: authority.tenant.id };
  if (authority.kind === 'consumers') throw new Error('consumers is refused before anything is recorded');
  return { kind: authority.kind };
}

/** The tenant a request is limited to, or undefined when anyone may sign in. */
export function tenantScope(authority: ResolvedAuthority): string | undefined {
  return authority.kind === 'tenant' ? authority.tenant.id : undefined;
}

/** How error messages name the directory, as Entra names it (display name, or the alias). */
export function directoryName(authority: ResolvedAuthority): string {
  return authority.kind === 'tenant' ? authority.tenant.displayName : authority.segment;
}

/** The authority a recorded request came in at, to continue it (device code sign-in). */
export function authorityFromRef(state: SandboxState, ref: AuthorityRef): ResolvedAuthority {
  if (ref.kind !== 'tenant') return { kind: ref.kind, segment: ref.kind };
  const tenant = state.tenant(ref.tenantId);
  if (!tenant) throw aadsts.tenantNotFound(ref.tenantId);
  return { kind: 'tenant', segment: tenant.id, tenant };
}
