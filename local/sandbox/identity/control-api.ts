import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { certificateThumbprints } from './client-authentication.js';
import { ensureServicePrincipal, grantAppRoles, grantDelegated, removeAppFromTenant, type PermissionsByResource } from './consent.js';
import type { SandboxContext } from './context.js';
import {
  addCertificateInput,
  addFederatedCredentialInput,
  addSecretInput,
  createAppInput,
  createMailboxInput,
  createTenantInput,
  createUserInput,
  grantConsentInput,
  graphFaultInput,
  revokeSessionsInput,
  tenantPoliciesInput,
  tokenFaultInput,
  type AddedCertificate,
  type AddedSecret,
  type AppView,
  type ConsentView,
  type IssuedView,
  type MailboxView,
  type UserView,
} from './control-schemas.js';
import { jsonResponse, type Handler, type Route, type SandboxResponse } from './http.js';
import type { SandboxFaults } from './request-faults.js';
import { parsePermissionReference, resourceByAppId } from './resources.js';
import type { AppRegistration, FederatedCredential, Mailbox, SandboxState, Tenant, User } from './sandbox-state.js';
import { hashPassword } from './user-passwords.js';

/**
 * The control API, JSON under /_sandbox/ on the HTTPS listener: what a test or a demo needs to set
 * up a directory (tenants, users, mailboxes), register the vendor's apps and their credentials,
 * switch tenant policies, break things on purpose (revoked sessions, removed consent, expired
 * secrets, token endpoint and Graph outages) and read back what was consented and issued. Answers
 * are the records themselves, except that secret values are shown only when created.
 * control-client.ts is the typed client for these routes.
 */

export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The control call's input, or 400 with what is wrong with it. */
export function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (!result.success) throw new ControlError(400, z.prettifyError(result.error));
  return result.data;
}

const SECRET_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Entra's secrets look like `abc8Q~` followed by 34 characters. */
function newSecretValue(): string {
  const random = (n: number) => Array.from(randomBytes(n), (b) => SECRET_ALPHABET[b % SECRET_ALPHABET.length]).join('');
  return `${random(3)}8Q~${random(34)}`;
}

function initialDomain(displayName: string): string {
  const slug = displayName.toLowerCase().replace(/[^a-z0-9]+/g, '').slice(0, 27) || 'tenant';
  return `${slug}${randomBytes(2).toString('hex')}.onmicrosoft.com`;
}

function userView(user: User): UserView {
  const { passwordHash, ...view } = user;
  return { ...view, hasPassword: passwordHash !== undefined };
}

function appView(app: AppRegistration): AppView {
  return { ...app, secrets: app.secrets.map(({ value: _value, ...shown }) => shown) };
}

function permissions(references: string[], kind: 'delegated' | 'appRole'): PermissionsByResource {
  const grouped: PermissionsByResource = new Map();
  for (const reference of references) {
    const { resource, name } = parsePermissionReference(reference, kind);
    grouped.set(resource, [...(grouped.get(resource) ?? []), name]);
  }
  return grouped;
}

function declared(app: AppRegistration, kind: 'delegated' | 'appRole'): string[] {
  return (kind === 'delegated' ? app.delegatedPermissions : app.appRoles).map((p) => `${resourceByAppId(p.resourceAppId)?.appId ?? p.resourceAppId}/${p.name}`);
}

class ControlOperations {
  constructor(
    private readonly state: SandboxState,
    private readonly context: SandboxContext,
    private readonly faults: SandboxFaults,
  ) {}

  private tenant(id: string): Tenant {
    const tenant = this.state.tenantByIdOrDomain(id);
    if (!tenant) throw new ControlError(404, `No tenant ${id}.`);
    return tenant;
  }

  private user(tenant: Tenant, idOrUpn: string): User {
    const user = this.state.userByIdOrUpn(tenant.id, idOrUpn);
    if (!user) throw new ControlError(404, `No user ${idOrUpn} in tenant ${tenant.id}.`);
    return user;
  }

  private app(clientId: string): AppRegistration {
    const app = this.state.app(clientId);
    if (!app) throw new ControlError(404, `No app registration ${clientId}.`);
    return app;
  }

  createTenant(body: unknown): Tenant {
    const input = parse(createTenantInput, body);
    const id = input.id ?? randomUUID();
    const domains = input.domains ?? [initialDomain(input.displayName)];
    const taken = domains.find((d) => this.state.tenantByIdOrDomain(d)) ?? (this.state.tenant(id) ? id : undefined);
    if (taken) throw new ControlError(409, `${taken} already belongs to a tenant.`);
    const tenant: Tenant = { id, displayName: input.displayName, domains, policies: { userConsentBlocked: false, conditionalAccessBlocked: false } };
    this.state.data.tenants.push(tenant);
    return tenant;
  }

  setPolicies(tenantId: string, body: unknown): Tenant {
    const tenant = this.tenant(tenantId);
    const input = parse(tenantPoliciesInput, body);
    if (input.userConsentBlocked !== undefined) tenant.policies.userConsentBlocked = input.userConsentBlocked;
    if (input.conditionalAccessBlocked !== undefined) tenant.policies.conditionalAccessBlocked = input.conditionalAccessBlocked;
    return tenant;
  }

  createUser(tenantId: string, body: unknown): UserView {
    const tenant = this.tenant(tenantId);
    const input = parse(createUserInput, body);
    if (this.state.userByIdOrUpn(tenant.id, input.userPrincipalName)) throw new ControlError(409, `${input.userPrincipalName} already exists.`);
    const user: User = {
      id: input.id ?? randomUUID(),
      tenantId: tenant.id,
      userPrincipalName: input.userPrincipalName,
      displayName: input.displayName ?? input.userPrincipalName.replace(/@.*/, ''),
      isAdmin: input.isAdmin ?? false,
      tokensValidFrom: 0,
      ...(input.password !== undefined && { passwordHash: hashPassword(input.password) }),
    };
    this.state.data.users.push(user);
    if (input.mailbox ?? true) this.state.data.mailboxes.push({ tenantId: tenant.id, address: user.userPrincipalName, displayName: user.displayName, kind: 'user', fullAccess: [user.id] });
    return userView(user);
  }

  listUsers(tenantId: string): UserView[] {
    return this.state.usersOf(this.tenant(tenantId).id).map(userView);
  }

  /** "Revoke sessions" (AADSTS50173), or the inactivity window passing for the user's sessions (AADSTS700082). */
  revokeSessions(tenantId: string, userId: string, body: unknown): void {
    const user = this.user(this.tenant(tenantId), userId);
    const { reason } = parse(revokeSessionsInput, body);
    const now = this.context.now();
    if (reason === 'inactive') {
      const idle = (this.context.lifetimes.refreshTokenInactivityDays + 1) * 86_400_000;
      for (const session of this.state.data.sessions) if (session.userId === user.id) session.lastUsedAt = Math.min(session.lastUsedAt, now - idle);
    } else {
      user.tokensValidFrom = now;
    }
  }

  mailboxView(mailbox: Mailbox): MailboxView {
    const upns = (ids: string[]) => ids.map((id) => this.state.user(id)?.userPrincipalName ?? id);
    return { ...mailbox, fullAccess: upns(mailbox.fullAccess), sendAs: upns(mailbox.sendAs ?? []) };
  }

  createMailbox(tenantId: string, body: unknown): MailboxView {
    const tenant = this.tenant(tenantId);
    const input = parse(createMailboxInput, body);
    if (this.state.data.mailboxes.some((m) => m.address.toLowerCase() === input.address.toLowerCase())) throw new ControlError(409, `${input.address} already exists.`);
    const mailbox: Mailbox = {
      tenantId: tenant.id,
      address: input.address,
      displayName: input.displayName ?? input.address,
      kind: input.kind ?? 'shared',
      fullAccess: (input.fullAccess ?? []).map((u) => this.user(tenant, u).id),
      sendAs: (input.sendAs ?? []).map((u) => this.user(tenant, u).id),
    };
    this.state.data.mailboxes.push(mailbox);
    return this.mailboxView(mailbox);
  }

  listMailboxes(tenantId: string): MailboxView[] {
    const tenant = this.tenant(tenantId);
    return this.state.data.mailboxes.filter((m) => m.tenantId === tenant.id).map((m) => this.mailboxView(m));
  }

  grantConsent(tenantId: string, body: unknown): ConsentView {
    const tenant = this.tenant(tenantId);
    const input = parse(grantConsentInput, body);
    const app = this.app(input.clientId);
    const principal = input.user === undefined ? null : this.user(tenant, input.user).id;
    try {
      grantDelegated(this.state, tenant.id, app.clientId, principal, permissions(input.delegated ?? declared(app, 'delegated'), 'delegated'));
      if (principal === null) grantAppRoles(this.state, tenant.id, app.clientId, permissions(input.appRoles ?? declared(app, 'appRole'), 'appRole'));
    } catch (error) {
      throw new ControlError(400, (error as Error).message);
    }
    return this.consentView(tenant.id, app.clientId);
  }

  consentView(tenantId: string, clientId: string): ConsentView {
    const sp = this.state.servicePrincipal(tenantId, clientId);
    if (!sp) throw new ControlError(404, `The app ${clientId} has no service principal in tenant ${tenantId}.`);
    const name = (appId: string) => resourceByAppId(appId)?.displayName ?? appId;
    return {
      clientId,
      servicePrincipalId: sp.id,
      delegated: this.state.data.delegatedGrants
        .filter((g) => g.tenantId === tenantId && g.clientId === clientId)
        .map((g) => ({ resource: name(g.resourceAppId), principal: g.principalId === null ? 'AllPrincipals' : (this.state.user(g.principalId)?.userPrincipalName ?? g.principalId), scopes: g.scopes })),
      appRoles: this.state.data.appRoleGrants.filter((g) => g.tenantId === tenantId && g.clientId === clientId).map((g) => ({ resource: name(g.resourceAppId), roles: g.roles })),
    };
  }

  listConsents(tenantId: string): ConsentView[] {
    const tenant = this.tenant(tenantId);
    return this.state.data.servicePrincipals.filter((sp) => sp.tenantId === tenant.id).map((sp) => this.consentView(tenant.id, sp.clientId));
  }

  removeApp(tenantId: string, clientId: string): void {
    removeAppFromTenant(this.state, this.tenant(tenantId).id, this.app(clientId).clientId);
  }

  createApp(body: unknown): AppView {
    const input = parse(createAppInput, body);
    const clientId = input.clientId ?? randomUUID();
    if (this.state.app(clientId)) throw new ControlError(409, `App ${clientId} already exists.`);
    if (input.homeTenantId !== undefined) this.tenant(input.homeTenantId);
    let delegated: PermissionsByResource;
    let roles: PermissionsByResource;
    try {
      delegated = permissions(input.delegatedPermissions ?? [], 'delegated');
      roles = permissions(input.appRoles ?? [], 'appRole');
    } catch (error) {
      throw new ControlError(400, (error as Error).message);
    }
    // Every registration lives in a tenant; without one named, the vendor gets a tenant of its own.
    const homeTenantId = input.homeTenantId ?? this.createTenant({ displayName: `${input.displayName} (home tenant)` }).id;
    const flatten = (p: PermissionsByResource) => [...p].flatMap(([resource, names]) => names.map((name) => ({ resourceAppId: resource.appId, name })));
    const app: AppRegistration = {
      clientId,
      displayName: input.displayName,
      redirectUris: input.redirectUris ?? [],
      publicClient: input.publicClient ?? false,
      homeTenantId,
      delegatedPermissions: flatten(delegated),
      appRoles: flatten(roles),
      secrets: [],
      certificates: [],
      federatedCredentials: [],
    };
    this.state.data.apps.push(app);
    // The portal creates the app's service principal in its home tenant with the registration.
    ensureServicePrincipal(this.state, homeTenantId, clientId);
    return appView(app);
  }

  getApp(clientId: string): AppView {
    return appView(this.app(clientId));
  }

  addSecret(clientId: string, body: unknown): AddedSecret {
    const app = this.app(clientId);
    const input = parse(addSecretInput, body);
    const value = input.value ?? newSecretValue();
    const now = this.context.now();
    // 180 days: the portal's recommended (default) expiry for a new client secret.
    const secret = { keyId: randomUUID(), displayName: input.displayName ?? 'sandbox secret', hint: value.slice(0, 3), value, startDateTime: now, endDateTime: input.expiresAt ?? now + 180 * 86_400_000 };
    app.secrets.push(secret);
    return { keyId: secret.keyId, value, hint: secret.hint, startDateTime: secret.startDateTime, endDateTime: secret.endDateTime };
  }

  expireSecret(clientId: string, keyId: string): void {
    const secret = this.app(clientId).secrets.find((s) => s.keyId === keyId);
    if (!secret) throw new ControlError(404, `App ${clientId} has no secret ${keyId}.`);
    secret.endDateTime = Math.min(secret.endDateTime, this.context.now() - 1000);
  }

  addCertificate(clientId: string, body: unknown): AddedCertificate {
    const app = this.app(clientId);
    const input = parse(addCertificateInput, body);
    let thumbprints;
    try {
      thumbprints = certificateThumbprints(input.certificatePem);
    } catch (error) {
      throw new ControlError(400, `certificatePem is not a readable X.509 certificate: ${(error as Error).message}`);
    }
    if (input.expiresAt !== undefined && input.expiresAt > thumbprints.notAfter) {
      throw new ControlError(400, `expiresAt is after the certificate's notAfter (${new Date(thumbprints.notAfter).toISOString()}).`);
    }
    const certificate = {
      keyId: randomUUID(),
      displayName: input.displayName ?? 'sandbox certificate',
      certificatePem: input.certificatePem,
      thumbprintSha1: thumbprints.sha1,
      thumbprintSha256: thumbprints.sha256,
      startDateTime: thumbprints.notBefore,
      endDateTime: input.expiresAt ?? thumbprints.notAfter,
    };
    app.certificates.push(certificate);
    const { keyId, thumbprintSha1, thumbprintSha256, startDateTime, endDateTime } = certificate;
    return { keyId, thumbprintSha1, thumbprintSha256, startDateTime, endDateTime };
  }

  addFederatedCredential(clientId: string, body: unknown): FederatedCredential {
    const app = this.app(clientId);
    const input = parse(addFederatedCredentialInput, body);
    const credential: FederatedCredential = {
      id: randomUUID(),
      name: input.name,
      issuer: input.issuer,
      subject: input.subject,
      audiences: input.audiences ?? ['api://AzureADTokenExchange'],
      ...(input.jwks === undefined ? {} : { jwks: input.jwks }),
      ...(input.publicKeyPem === undefined ? {} : { publicKeyPem: input.publicKeyPem }),
    };
    app.federatedCredentials.push(credential);
    return credential;
  }

  failTokenRequests(body: unknown): void {
    this.faults.token.inject(parse(tokenFaultInput, body));
  }

  failGraphRequests(body: unknown): void {
    this.faults.graph.inject(parse(graphFaultInput, body));
  }

  issued(clientId: string | null): IssuedView {
    const mine = (r: { clientId: string }) => clientId === null || r.clientId.toLowerCase() === clientId.toLowerCase();
    const upn = (id: string | undefined) => (id === undefined ? undefined : (this.state.user(id)?.userPrincipalName ?? id));
    const { codes, refreshTokens, deviceCodes } = this.state.data;
    return {
      codes: codes.filter(mine).map((c) => ({ clientId: c.clientId, user: upn(c.userId) ?? c.userId, scope: c.scope, issuedAt: c.issuedAt, expiresAt: c.expiresAt, ...(c.redeemedAt === undefined ? {} : { redeemedAt: c.redeemedAt }) })),
      refreshTokens: refreshTokens.filter(mine).map((t) => ({
        clientId: t.clientId,
        user: upn(t.userId) ?? t.userId,
        issuedAt: t.issuedAt,
        ...(t.lastRedeemedAt === undefined ? {} : { lastRedeemedAt: t.lastRedeemedAt }),
        ...(t.publicClient === undefined ? {} : { publicClient: t.publicClient }),
      })),
      deviceCodes: deviceCodes.filter(mine).map((d) => ({ clientId: d.clientId, userCode: d.userCode, status: d.status, ...(d.userId === undefined ? {} : { user: upn(d.userId) }) })),
    };
  }
}

/** A control route's handler: the operation's result (or what its promise resolves to) as JSON (204 for none), a ControlError as `{ error, message }`. */
export function answering(operation: (request: Parameters<Handler>[0]) => unknown, status = 200): Handler {
  return async (request): Promise<SandboxResponse> => {
    try {
      const result: unknown = await operation(request);
      return result === undefined ? { status: 204, headers: {}, body: '' } : jsonResponse(status, result);
    } catch (error) {
      if (error instanceof ControlError) return jsonResponse(error.status, { error: error.status === 404 ? 'not_found' : error.status === 409 ? 'conflict' : 'invalid_request', message: error.message });
      throw error;
    }
  };
}

export const CONTROL_PREFIX = '/_sandbox';

export function controlRoutes(context: SandboxContext, faults: SandboxFaults): Route[] {
  const ops = new ControlOperations(context.state, context, faults);
  const route = (method: string, path: string, handler: Handler): Route => ({
    method,
    path: new RegExp(`^${CONTROL_PREFIX}${path.replace(/:\w+/g, '([^/]+)')}$`),
    handler,
  });
  const at = (request: Parameters<Handler>[0], index: number) => request.params[index] ?? '';
  return [
    route('POST', '/tenants', answering((r) => ops.createTenant(r.json), 201)),
    route('GET', '/tenants', answering(() => context.state.data.tenants)),
    route('PATCH', '/tenants/:tenant/policies', answering((r) => ops.setPolicies(at(r, 0), r.json))),
    route('POST', '/tenants/:tenant/users', answering((r) => ops.createUser(at(r, 0), r.json), 201)),
    route('GET', '/tenants/:tenant/users', answering((r) => ops.listUsers(at(r, 0)))),
    route('POST', '/tenants/:tenant/users/:user/revoke-sessions', answering((r) => {
      ops.revokeSessions(at(r, 0), at(r, 1), r.json);
    })),
    route('POST', '/tenants/:tenant/mailboxes', answering((r) => ops.createMailbox(at(r, 0), r.json), 201)),
    route('GET', '/tenants/:tenant/mailboxes', answering((r) => ops.listMailboxes(at(r, 0)))),
    route('POST', '/tenants/:tenant/consents', answering((r) => ops.grantConsent(at(r, 0), r.json))),
    route('GET', '/tenants/:tenant/consents', answering((r) => ops.listConsents(at(r, 0)))),
    route('DELETE', '/tenants/:tenant/apps/:clientId', answering((r) => {
      ops.removeApp(at(r, 0), at(r, 1));
    })),
    route('POST', '/apps', answering((r) => ops.createApp(r.json), 201)),
    route('GET', '/apps/:clientId', answering((r) => ops.getApp(at(r, 0)))),
    route('POST', '/apps/:clientId/secrets', answering((r) => ops.addSecret(at(r, 0), r.json), 201)),
    route('POST', '/apps/:clientId/secrets/:keyId/expire', answering((r) => {
      ops.expireSecret(at(r, 0), at(r, 1));
    })),
    route('POST', '/apps/:clientId/certificates', answering((r) => ops.addCertificate(at(r, 0), r.json), 201)),
    route('POST', '/apps/:clientId/federated-credentials', answering((r) => ops.addFederatedCredential(at(r, 0), r.json), 201)),
    route('PUT', '/faults/token', answering((r) => {
      ops.failTokenRequests(r.json);
    })),
    route('PUT', '/faults/graph', answering((r) => {
      ops.failGraphRequests(r.json);
    })),
    route('GET', '/issued', answering((r) => ops.issued(r.url.searchParams.get('clientId')))),
  ];
}
