/**
 * Everything the sandbox knows, as plain JSON-able records: the directory (tenants, users,
 * mailboxes), the vendor's app registrations and their credentials, what each tenant consented
 * to, and what was issued (sessions, codes, refresh tokens, device codes). Records keep times as
 * milliseconds since the epoch. SandboxState adds the look-ups the endpoints share; it never
 * decides policy, the flows do.
 */

export interface TenantPolicies {
  /** "Do not allow user consent": only administrators may consent (AADSTS90094 for others). */
  userConsentBlocked: boolean;
  /** A Conditional Access policy that blocks token issuance to users (AADSTS53003). */
  conditionalAccessBlocked: boolean;
}

export interface Tenant {
  id: string;
  displayName: string;
  /** Verified domains; the first is the initial `*.onmicrosoft.com` one. */
  domains: string[];
  policies: TenantPolicies;
}

export interface User {
  /** Object id (`oid`), unique per tenant. */
  id: string;
  tenantId: string;
  userPrincipalName: string;
  displayName: string;
  /** A Global Administrator: may consent for the whole organization. */
  isAdmin: boolean;
  /** Refresh tokens from sign-ins before this time are revoked (AADSTS50173). 0 = never revoked. */
  tokensValidFrom: number;
  /**
   * For the password grant (ROPC) only: `scrypt$<salt>$<hash>` (user-passwords.ts), so neither the
   * state file nor a control API answer holds the password. Without one, every password is wrong.
   */
  passwordHash?: string;
}

export interface Mailbox {
  tenantId: string;
  address: string;
  displayName: string;
  kind: 'user' | 'shared';
  /** Users (object ids) with FullAccess to it. */
  fullAccess: string[];
  /**
   * Users (object ids) with Exchange's Send As permission on it: they may send mail from its
   * address. Its owner needs none. Absent in state files from before it was kept.
   */
  sendAs?: string[];
}

export interface ClientSecret {
  keyId: string;
  displayName: string;
  /** The first three characters, as the portal shows them. */
  hint: string;
  value: string;
  /** When it was added; absent in state files written before it was recorded. */
  startDateTime?: number;
  endDateTime: number;
}

export interface CertificateCredential {
  keyId: string;
  displayName: string;
  certificatePem: string;
  /** Upper-case hex, as the portal shows it (the `x5t` a client sends is its base64url form). */
  thumbprintSha1: string;
  /** Upper-case hex (`x5t#S256`, what msal-node 7's `thumbprintSha256` holds). */
  thumbprintSha256: string;
  /** The certificate's notBefore; absent in state files written before it was recorded. */
  startDateTime?: number;
  /** The certificate's notAfter, or an earlier end chosen when it was added. */
  endDateTime: number;
}

export interface FederatedCredential {
  id: string;
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
  /** The issuer's signing keys: a JWKS, or one SPKI PEM. */
  jwks?: { keys: Record<string, unknown>[] };
  publicKeyPem?: string;
}

/** A permission an app registration declares (required resource access). */
export interface RequiredPermission {
  resourceAppId: string;
  name: string;
}

export interface AppRegistration {
  clientId: string;
  displayName: string;
  redirectUris: string[];
  /** "Allow public client flows": device code without a client credential. */
  publicClient: boolean;
  /**
   * The tenant the registration lives in, where Graph's /applications finds it. Every app made by
   * the control API has one; only state files written before that lack it.
   */
  homeTenantId?: string;
  delegatedPermissions: RequiredPermission[];
  appRoles: RequiredPermission[];
  secrets: ClientSecret[];
  certificates: CertificateCredential[];
  federatedCredentials: FederatedCredential[];
}

/** The app's enterprise application in a tenant: exists once anyone there consented. */
export interface ServicePrincipal {
  id: string;
  tenantId: string;
  clientId: string;
}

/** An OAuth2PermissionGrant: delegated scopes for everyone (principalId null) or for one user. */
export interface DelegatedGrant {
  tenantId: string;
  clientId: string;
  resourceAppId: string;
  principalId: string | null;
  scopes: string[];
}

/** App roles (application permissions) granted to the app's service principal. */
export interface AppRoleGrant {
  tenantId: string;
  clientId: string;
  resourceAppId: string;
  roles: string[];
}

/** Where a request came in: a tenant, or the multi-tenant `organizations` / `common`. */
export type AuthorityRef = { kind: 'tenant'; tenantId: string } | { kind: 'organizations' | 'common' };

/** One interactive sign-in of a user to an app; its refresh tokens share it. */
export interface SignInSession {
  id: string;
  userId: string;
  tenantId: string;
  clientId: string;
  authenticatedAt: number;
  /** Refresh tokens slide a 90-day inactivity window from here (AADSTS700082). */
  lastUsedAt: number;
}

export interface AuthorizationCode {
  code: string;
  clientId: string;
  userId: string;
  sessionId: string;
  authority: AuthorityRef;
  redirectUri: string;
  scope: string;
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: 'S256' | 'plain';
  issuedAt: number;
  expiresAt: number;
  redeemedAt?: number;
}

export interface IssuedRefreshToken {
  token: string;
  sessionId: string;
  clientId: string;
  userId: string;
  issuedAt: number;
  /** Set when it was redeemed; it still works afterwards, as Entra's do. */
  lastRedeemedAt?: number;
  /**
   * Issued to a public client (no client credential, e.g. device code): only a public client may
   * redeem it (AADSTS700025 otherwise). Absent in state files written before this was recorded.
   */
  publicClient?: boolean;
}

export interface DeviceCode {
  deviceCode: string;
  userCode: string;
  clientId: string;
  authority: AuthorityRef;
  scope: string;
  issuedAt: number;
  expiresAt: number;
  status: 'pending' | 'approved' | 'declined' | 'redeemed';
  userId?: string;
  sessionId?: string;
}

export interface SandboxData {
  tenants: Tenant[];
  users: User[];
  mailboxes: Mailbox[];
  apps: AppRegistration[];
  servicePrincipals: ServicePrincipal[];
  delegatedGrants: DelegatedGrant[];
  appRoleGrants: AppRoleGrant[];
  sessions: SignInSession[];
  codes: AuthorizationCode[];
  refreshTokens: IssuedRefreshToken[];
  deviceCodes: DeviceCode[];
}

export function emptySandboxData(): SandboxData {
  return {
    tenants: [],
    users: [],
    mailboxes: [],
    apps: [],
    servicePrincipals: [],
    delegatedGrants: [],
    appRoleGrants: [],
    sessions: [],
    codes: [],
    refreshTokens: [],
    deviceCodes: [],
  };
}

const sameText = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export class SandboxState {
  constructor(readonly data: SandboxData) {}

  tenant(id: string): Tenant | undefined {
    return this.data.tenants.find((t) => sameText(t.id, id));
  }

  /** A tenant by id or by one of its verified domains, as the path segment names it. */
  tenantByIdOrDomain(idOrDomain: string): Tenant | undefined {
    return this.tenant(idOrDomain) ?? this.data.tenants.find((t) => t.domains.some((d) => sameText(d, idOrDomain)));
  }

  user(id: string): User | undefined {
    return this.data.users.find((u) => u.id === id);
  }

  userByIdOrUpn(tenantId: string, idOrUpn: string): User | undefined {
    return this.data.users.find((u) => u.tenantId === tenantId && (u.id === idOrUpn || sameText(u.userPrincipalName, idOrUpn)));
  }

  /** The user's own mailbox: the tenant's mailbox at their user principal name. Unlicensed users have none. */
  mailboxOf(user: User): Mailbox | undefined {
    return this.mailboxByAddress(user.tenantId, user.userPrincipalName);
  }

  mailboxByAddress(tenantId: string, address: string): Mailbox | undefined {
    return this.data.mailboxes.find((m) => m.tenantId === tenantId && sameText(m.address, address));
  }

  usersOf(tenantId: string | undefined): User[] {
    return tenantId === undefined ? this.data.users : this.data.users.filter((u) => u.tenantId === tenantId);
  }

  app(clientId: string): AppRegistration | undefined {
    return this.data.apps.find((a) => sameText(a.clientId, clientId));
  }

  servicePrincipal(tenantId: string, clientId: string): ServicePrincipal | undefined {
    return this.data.servicePrincipals.find((sp) => sp.tenantId === tenantId && sp.clientId === clientId);
  }

  /** Delegated scopes of one resource the user may use with the app: the organization's grant plus their own. */
  grantedScopes(tenantId: string, clientId: string, resourceAppId: string, userId: string): Set<string> {
    const scopes = new Set<string>();
    if (!this.servicePrincipal(tenantId, clientId)) return scopes;
    for (const grant of this.data.delegatedGrants) {
      if (grant.tenantId !== tenantId || grant.clientId !== clientId || grant.resourceAppId !== resourceAppId) continue;
      if (grant.principalId === null || grant.principalId === userId) grant.scopes.forEach((s) => scopes.add(s));
    }
    return scopes;
  }

  grantedRoles(tenantId: string, clientId: string, resourceAppId: string): string[] {
    return this.data.appRoleGrants.find((g) => g.tenantId === tenantId && g.clientId === clientId && g.resourceAppId === resourceAppId)?.roles ?? [];
  }

  session(id: string): SignInSession | undefined {
    return this.data.sessions.find((s) => s.id === id);
  }
}
