import { randomUUID } from 'node:crypto';
import { aadsts, type AadstsError, type ErrorIds } from './aadsts.js';
import { tenantScope, type ResolvedAuthority } from './authority.js';
import { grantAppRoles, grantDelegated, missingDelegated, type PermissionsByResource } from './consent.js';
import { errorIdsFor, type SandboxContext } from './context.js';
import { htmlResponse, type SandboxRequest, type SandboxResponse } from './http.js';
import { adminConsentPage, consentPage, errorPage, needAdminApprovalPage, pickAccountPage, type PermissionLine } from './pages.js';
import { OIDC_SCOPES, permissionWords } from './resources.js';
import type { AppRegistration, User } from './sandbox-state.js';

/**
 * The pages between "the app sent the browser here" and "the browser goes back to the app",
 * shared by /authorize, /adminconsent and the device code page. Each visit is an interaction,
 * kept in memory under an id the forms post back (`ctx`):
 *
 *   pick an account ─▶ Conditional Access blocks the tenant?  → error page (AADSTS53003), no way back
 *                    ─▶ sign-in: nothing left to consent (and no prompt=consent) → done
 *                                a non-admin, and user consent is blocked or a permission is admin-only
 *                                  → "Need admin approval" (AADSTS90094): another account, or return
 *                                otherwise → consent page (admins may tick "on behalf of your organization")
 *                    ─▶ admin consent: a non-admin → "Need admin approval" (AADSTS90093)
 *                                      an admin → admin consent page for the whole organization
 *
 * How each ending answers (redirect, form_post, device code status) is up to the endpoint.
 */

export interface InteractionEndings {
  /** Signed in, and every permission asked for is granted. */
  approved(user: User): Promise<SandboxResponse> | SandboxResponse;
  /** Cancel on a consent page. */
  declined(): SandboxResponse;
  /** "Return to the application without granting consent" from the admin-approval interrupt. */
  returned(error: AadstsError, ids: ErrorIds): SandboxResponse;
}

interface InteractionBase {
  authority: ResolvedAuthority;
  app: AppRegistration;
  /** Limits the accounts to one tenant (domain_hint), besides the authority's own limit. */
  tenantHint?: string;
  loginHint?: string;
  endings: InteractionEndings;
}

export interface SignInInteraction extends InteractionBase {
  purpose: 'sign-in';
  requested: PermissionsByResource;
  oidc: Set<string>;
  /** prompt=consent: show the consent page even when everything is granted. */
  forceConsent: boolean;
}

export interface AdminConsentInteraction extends InteractionBase {
  purpose: 'admin-consent';
  delegated: PermissionsByResource;
  appRoles: PermissionsByResource;
}

type Interaction = (SignInInteraction | AdminConsentInteraction) & { id: string; expiresAt: number; userId?: string };

export class Interactions {
  private readonly open = new Map<string, Interaction>();

  constructor(private readonly context: SandboxContext) {}

  /** Starts an interaction: the account picker. */
  begin(interaction: SignInInteraction | AdminConsentInteraction): SandboxResponse {
    const now = this.context.now();
    for (const [id, old] of this.open) if (old.expiresAt < now) this.open.delete(id);
    const started: Interaction = { ...interaction, id: randomUUID(), expiresAt: now + this.context.lifetimes.interactionSeconds * 1000 };
    this.open.set(started.id, started);
    return this.pickAccount(started);
  }

  /** A form post from one of the pages (POST /{tenant}/login). */
  async continue(request: SandboxRequest): Promise<SandboxResponse> {
    const interaction = this.open.get(request.form.get('ctx') ?? '');
    if (!interaction || interaction.expiresAt < this.context.now()) {
      const ids = errorIdsFor(this.context, request);
      return htmlResponse(400, errorPage({ heading: 'Sorry, but we’re having trouble signing you in.', explanation: 'This sign-in page has expired.', error: aadsts.flowExpired(), ids }));
    }
    const decision = request.form.get('decision');
    switch (request.form.get('step')) {
      case 'pick-account':
        return this.accountPicked(interaction, request);
      case 'need-admin':
        if (decision === 'switch-account') return this.pickAccount(interaction);
        this.open.delete(interaction.id);
        return interaction.endings.returned(
          interaction.purpose === 'sign-in' ? aadsts.adminConsentRequired() : aadsts.notAuthorizedToGrant(interaction.app.displayName),
          errorIdsFor(this.context, request),
        );
      case 'consent':
      case 'admin-consent':
        return this.consentDecided(interaction, request, decision === 'accept');
      default:
        return this.pickAccount(interaction);
    }
  }

  private action(interaction: Interaction): string {
    return `${this.context.browserBase}/${encodeURIComponent(interaction.authority.segment)}/login`;
  }

  private pickAccount(interaction: Interaction): SandboxResponse {
    const { state } = this.context;
    const accounts = this.eligibleUsers(interaction).map((user) => ({
      id: user.id,
      userPrincipalName: user.userPrincipalName,
      displayName: user.displayName,
      tenantName: state.tenant(user.tenantId)?.displayName ?? user.tenantId,
      isAdmin: user.isAdmin,
    }));
    const page = pickAccountPage({ action: this.action(interaction), ctx: interaction.id, appName: interaction.app.displayName, accounts, loginHint: interaction.loginHint });
    return htmlResponse(200, page);
  }

  private eligibleUsers(interaction: Interaction): User[] {
    const tenantId = tenantScope(interaction.authority);
    return this.context.state.usersOf(tenantId).filter((user) => interaction.tenantHint === undefined || user.tenantId === interaction.tenantHint);
  }

  private async accountPicked(interaction: Interaction, request: SandboxRequest): Promise<SandboxResponse> {
    const user = this.eligibleUsers(interaction).find((u) => u.id === request.form.get('user'));
    if (!user) return this.pickAccount(interaction);
    interaction.userId = user.id;
    const tenant = this.context.state.tenant(user.tenantId);
    const ids = errorIdsFor(this.context, request);
    if (tenant?.policies.conditionalAccessBlocked) {
      this.open.delete(interaction.id);
      return htmlResponse(
        403,
        errorPage({
          heading: 'You cannot access this right now',
          explanation: 'Your sign-in was successful but does not meet the criteria to access this resource. For example, you might be signing in from a browser, app, or location that is restricted by your admin.',
          error: aadsts.blockedByConditionalAccess(),
          ids,
        }),
      );
    }
    const app = interaction.app;
    if (interaction.purpose === 'admin-consent') {
      if (!user.isAdmin) return this.needAdmin(interaction, user, aadsts.notAuthorizedToGrant(app.displayName), ids);
      const page = adminConsentPage({
        action: this.action(interaction),
        ctx: interaction.id,
        appName: app.displayName,
        account: user.userPrincipalName,
        tenantName: tenant?.displayName ?? user.tenantId,
        delegated: lines(interaction.delegated, 'delegated'),
        appRoles: lines(interaction.appRoles, 'appRole'),
      });
      return htmlResponse(200, page);
    }
    const missing = missingDelegated(this.context.state, app, user, interaction.requested);
    if (missing.size === 0 && !interaction.forceConsent) return this.finish(interaction, user);
    const adminOnly = [...missing].some(([resource, names]) => names.some((name) => resource.delegated.find((p) => p.name === name)?.adminOnly));
    const mayGrant = user.isAdmin || (!tenant?.policies.userConsentBlocked && !adminOnly);
    if (missing.size > 0 && !mayGrant) return this.needAdmin(interaction, user, aadsts.adminConsentRequired(), ids);
    const shown = interaction.forceConsent ? interaction.requested : missing;
    const oidcLines = [...interaction.oidc].map((scope) => ({ words: OIDC_SCOPES[scope] ?? scope, scope }));
    const page = consentPage({
      action: this.action(interaction),
      ctx: interaction.id,
      appName: app.displayName,
      account: user.userPrincipalName,
      permissions: [...lines(shown, 'delegated'), ...oidcLines],
      canConsentForOrganization: user.isAdmin,
    });
    return htmlResponse(200, page);
  }

  private needAdmin(interaction: Interaction, user: User, error: AadstsError, ids: ErrorIds): SandboxResponse {
    const page = needAdminApprovalPage({ action: this.action(interaction), ctx: interaction.id, appName: interaction.app.displayName, account: user.userPrincipalName, error, ids });
    return htmlResponse(200, page);
  }

  private async consentDecided(interaction: Interaction, request: SandboxRequest, accepted: boolean): Promise<SandboxResponse> {
    const user = interaction.userId === undefined ? undefined : this.context.state.user(interaction.userId);
    if (!user) return this.pickAccount(interaction);
    if (!accepted) {
      this.open.delete(interaction.id);
      return interaction.endings.declined();
    }
    const { state } = this.context;
    const clientId = interaction.app.clientId;
    if (interaction.purpose === 'admin-consent') {
      if (!user.isAdmin) return this.pickAccount(interaction);
      grantDelegated(state, user.tenantId, clientId, null, interaction.delegated);
      grantAppRoles(state, user.tenantId, clientId, interaction.appRoles);
    } else {
      // An admin may grant for everyone; anyone else grants (only) what they lack, for themselves.
      if (user.isAdmin && request.form.get('consent_on_behalf_of_organization') === 'true') {
        grantDelegated(state, user.tenantId, clientId, null, interaction.requested);
      } else {
        grantDelegated(state, user.tenantId, clientId, user.id, missingDelegated(state, interaction.app, user, interaction.requested));
      }
    }
    return this.finish(interaction, user);
  }

  private finish(interaction: Interaction, user: User): Promise<SandboxResponse> | SandboxResponse {
    this.open.delete(interaction.id);
    return interaction.endings.approved(user);
  }
}

function lines(permissions: PermissionsByResource, kind: 'delegated' | 'appRole'): PermissionLine[] {
  return [...permissions].flatMap(([resource, names]) =>
    names.map((name) => ({ words: permissionWords(resource, name, kind), scope: `${resource.displayName}: ${name}` })),
  );
}
