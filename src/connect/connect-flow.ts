import type { AuthenticationResult } from '@azure/msal-node';
import type { IdentityConfig } from '../config.js';
import { changeConnectionState, recordSignIn, type ConnectionDeps } from '../connections/connections.js';
import { addMailbox, listMailboxes, type MailboxDeps } from '../connections/mailboxes.js';
import { canTransition, type Connection, type SignInMethod } from '../domain/connection.js';
import type { LinkPurpose, SignInState } from '../domain/sign-in-state.js';
import type { BrowserEndpoints } from '../identity/browser-endpoints.js';
import type { ConsentLinks } from '../identity/consent-links.js';
import { classifySignInError, errorFromMsal, errorFromRedirect, errorLogFields, type MicrosoftError } from '../identity/microsoft-error.js';
import { canGrantConsent } from '../identity/admin-roles.js';
import { signedInIdentity, type SignedInIdentity } from '../identity/signed-in-identity.js';
import type { MsalClients } from '../identity/msal-clients.js';
import { adminConsentScope, allDelegatedScopes, delegatedScopes, requiredAppRoles } from '../identity/scopes.js';
import type { SignInStates } from '../identity/sign-in-states.js';
import { approverRoles } from '../pages/access.js';
import type { LinkInvalidReason, SupportReference } from '../pages/model.js';
import { keys, type Repositories } from '../store/repositories.js';
import type { Logger } from '../telemetry/logger.js';
import type { ConnectOutcome, ResultSubject } from './connect-results.js';
import { connectionExchangeSetup, exchangeProtocols } from './connection-exchange-setup.js';
import { verifyAppOnlyAccess, type AppOnlyAccess } from './verify-app-only-access.js';

/**
 * The connect flow: a customer's user or administrator opens a consent link, reads what is asked,
 * goes to Microsoft, and comes back to a result. Every step checks what it is handed — the link's
 * signature and expiry, the single-use state bound to one connection, PKCE, the id token's nonce,
 * the tenant of a token the connector redeemed itself — and a failed check stores nothing.
 *
 * Delegated: authorization code + PKCE at `organizations`; the code is redeemed into a fresh msal
 * cache that is saved as the connection's only when every check passed.
 *
 * Application: the administrator first signs in (openid/profile only), so the connector learns the
 * tenant from an id token it redeemed rather than from a query string; admin consent is then asked
 * at that tenant. The consent callback's `tenant` must be that tenant, and a client-credentials
 * token for it must carry the same `tid` (Microsoft warns the query value can be forged).
 */

export interface ConnectFlowDeps {
  repositories: Pick<Repositories, 'connections' | 'customers' | 'mailboxes'>;
  connections: ConnectionDeps;
  mailboxes: MailboxDeps;
  links: Pick<ConsentLinks, 'issue' | 'check'>;
  states: Pick<SignInStates, 'create' | 'consume'>;
  msal: MsalClients;
  browser: Pick<BrowserEndpoints, 'adminConsentUrl'>;
  /**
   * A sign-in connected the connection, with the msal cache of a delegated sign-in to keep (written
   * under the refresh lease, so a refresh in flight cannot overwrite it): instances drop the old
   * tokens, the refresh schedule starts over.
   */
  signedIn(connection: Connection, serializedCache?: string): Promise<void>;
  identity: IdentityConfig;
  logger: Logger;
  now(): Date;
}

/** What the landing page shows before the person goes to Microsoft. */
export interface Landing {
  customerName: string;
  mode: Connection['mode'];
  purpose: LinkPurpose;
  permissions: string[];
  expiresAt: Date;
  expectedAccount?: string;
}

export type LandingResult = { kind: 'landing'; landing: Landing } | { kind: 'link-invalid'; reason: LinkInvalidReason };

/** Where the person goes next; `lang` is the page language they chose before leaving for Microsoft. */
export type FlowStep = ({ kind: 'redirect'; url: string } | { kind: 'outcome'; outcome: ConnectOutcome; subject?: ResultSubject }) & { lang?: string };

/** The tenant of personal Microsoft accounts, which have no organization mailbox to connect. */
const CONSUMER_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';

export class ConnectFlow {
  constructor(private readonly deps: ConnectFlowDeps) {}

  get redirectUri(): string {
    return `${this.deps.identity.publicBaseUrl}/api/connect/callback`;
  }

  get adminRedirectUri(): string {
    return `${this.deps.identity.publicBaseUrl}/api/connect/admin-callback`;
  }

  async landing(token: string): Promise<LandingResult> {
    const opened = await this.open(token);
    if (opened.kind === 'link-invalid') return opened;
    const { connection, purpose, expiresAt } = opened;
    const customer = await this.deps.repositories.customers.get(keys.customer(connection.customerId));
    const expectedAccount = connection.mode === 'delegated' && purpose === 'connect' ? connection.account?.upn : undefined;
    return {
      kind: 'landing',
      landing: {
        customerName: customer?.value.displayName ?? connection.customerId,
        mode: purpose === 'admin-grant' ? 'delegated' : connection.mode,
        purpose,
        permissions: this.permissionsAsked(connection, purpose),
        expiresAt,
        ...(expectedAccount !== undefined && { expectedAccount }),
      },
    };
  }

  /** The person pressed the landing page's button: off to Microsoft. */
  async start(token: string, lang?: string): Promise<FlowStep | { kind: 'link-invalid'; reason: LinkInvalidReason }> {
    const opened = await this.open(token);
    if (opened.kind === 'link-invalid') return opened;
    const { connection, purpose } = opened;
    const chosen = lang === undefined ? {} : { lang };
    const app = this.deps.msal.app(connection.appId);
    const log = this.logFor(connection);

    if (purpose === 'admin-grant') {
      const { state } = await this.deps.states.create({ customerId: connection.customerId, connectionId: connection.id, purpose, step: 'admin-consent', ...chosen });
      const url = await this.deps.browser.adminConsentUrl(app, connection.tenantId ?? 'organizations', {
        scope: allDelegatedScopes(app.cloud, connection.transports).join(' '),
        redirectUri: this.adminRedirectUri,
        state: state.id,
      });
      log.info('connect: admin grant started');
      return { kind: 'redirect', url };
    }

    const signIn = await this.deps.states.create({ customerId: connection.customerId, connectionId: connection.id, purpose, step: 'sign-in', ...chosen });
    const scopes = this.signInScopes(connection);
    const client = await this.deps.msal.delegated(connection.appId, 'organizations');
    const reconnectAs = connection.mode === 'delegated' ? connection.account?.upn : undefined;
    const url = await client.getAuthCodeUrl({
      scopes: scopes.primary,
      ...(scopes.extra.length > 0 && { extraScopesToConsent: scopes.extra }),
      redirectUri: this.redirectUri,
      responseMode: 'form_post',
      state: signIn.state.id,
      nonce: signIn.state.nonce,
      codeChallenge: signIn.codeChallenge,
      codeChallengeMethod: 'S256',
      // Microsoft does not take a login hint together with select_account: on a reconnect the hint wins.
      ...(reconnectAs === undefined ? { prompt: 'select_account' } : { loginHint: reconnectAs }),
      ...(connection.tenantId !== undefined && { domainHint: connection.tenantId }),
    });
    log.info('connect: sign-in started', { mode: connection.mode });
    return { kind: 'redirect', url };
  }

  /** Microsoft's form_post to the redirect URI, after a sign-in. */
  async completeSignIn(form: Readonly<Record<string, string | undefined>>): Promise<FlowStep> {
    const consumed = await this.consumeState(form.state, 'sign-in');
    if (consumed.kind === 'outcome') return consumed;
    return inLanguage(await this.signedIn(form, consumed), consumed.state.lang);
  }

  private async signedIn(form: Readonly<Record<string, string | undefined>>, consumed: ConsumedSignIn): Promise<FlowStep> {
    const { state, codeVerifier, connection } = consumed;
    const log = this.logFor(connection);

    const error = errorFromRedirect(form);
    if (error) return this.signInFailed(connection, state, error, log);
    const code = form.code;
    if (!code) return outcome({ kind: 'sign-in-error', reference: { oauthError: 'invalid_request' } });

    let result: AuthenticationResult;
    const client = await this.deps.msal.delegated(connection.appId, 'organizations');
    try {
      result = await client.acquireTokenByCode(
        // The confidential client checks the id token's nonce against the request's, the state against the payload's.
        { code, redirectUri: this.redirectUri, scopes: this.signInScopes(connection).primary, codeVerifier, state: state.id, nonce: state.nonce },
        { code, state: form.state, nonce: state.nonce },
      );
    } catch (thrown) {
      const redeemError = errorFromMsal(thrown);
      if (!redeemError) throw thrown;
      return this.signInFailed(connection, state, redeemError, log);
    }

    if (connection.mode === 'delegated') {
      return this.finishDelegated(connection, result, client.getTokenCache().serialize(), 'authorization-code', state.purpose);
    }

    const identity = this.checkIdentity(connection, result, log);
    if ('outcome' in identity) return { kind: 'outcome', outcome: { ...identity.outcome, ...(await this.retry(connection, state.purpose)) } };
    // Only an administrator may go on: where the app already has consent in this tenant, the
    // admin-consent callback would otherwise be all that stands between any user and app-only access.
    const permissions = this.permissionsAsked(connection, state.purpose);
    if (!canGrantConsent(result.accessToken, approverRoles('application', permissions) === 'roles.privileged' ? 'privileged' : 'application')) {
      log.warn('connect: a user without an administrator role signed in to an application connection; nothing stored', { tenantId: identity.tenantId });
      const forward = await this.deps.links.issue(connection.customerId, connection.id, 'connect');
      return outcome({ kind: 'admin-approval-needed', adminConsentUrl: forward.url, permissions, reference: { oauthError: 'not_an_administrator' } });
    }
    // The administrator's tenant is now known from a token the connector redeemed: ask for consent there.
    const app = this.deps.msal.app(connection.appId);
    const next = await this.deps.states.create({
      customerId: connection.customerId,
      connectionId: connection.id,
      purpose: state.purpose,
      step: 'admin-consent',
      tenantId: identity.tenantId,
      signedInOid: identity.oid,
      signedInUpn: identity.upn,
      ...(state.lang !== undefined && { lang: state.lang }),
    });
    const url = await this.deps.browser.adminConsentUrl(app, identity.tenantId, {
      scope: adminConsentScope(app.cloud),
      redirectUri: this.adminRedirectUri,
      state: next.state.id,
    });
    log.info('connect: administrator signed in; admin consent started', { tenantId: identity.tenantId });
    return { kind: 'redirect', url };
  }

  /**
   * A delegated sign-in that Microsoft completed (by code, device code or password): checks who
   * signed in against the connection, and only then makes the tokens the connection's and
   * connects it with the user's own mailbox. `serializedCache` holds the tokens of this sign-in alone.
   */
  async finishDelegated(
    connection: Connection,
    result: AuthenticationResult,
    serializedCache: string,
    signInMethod: SignInMethod,
    purpose: LinkPurpose = 'connect',
  ): Promise<{ kind: 'outcome'; outcome: ConnectOutcome }> {
    const log = this.logFor(connection);
    const identity = this.checkIdentity(connection, result, log);
    if ('outcome' in identity) return { kind: 'outcome', outcome: { ...identity.outcome, ...(await this.retry(connection, purpose)) } };

    const granted = result.scopes;
    const connected = await recordSignIn(this.deps.connections, connection.customerId, connection.id, {
      tenantId: identity.tenantId,
      granted,
      account: { oid: identity.oid, upn: identity.upn, ...(identity.displayName !== undefined && { displayName: identity.displayName }) },
      signInMethod,
    });
    if (!connected) return this.gone();
    // The tokens are kept only once the connection took this sign-in: a refused one leaves none behind.
    await this.deps.signedIn(connected, serializedCache);
    await addMailbox(this.deps.mailboxes, connected, { address: identity.email ?? identity.upn, kind: 'user', ...(identity.displayName !== undefined && { displayName: identity.displayName }) });
    const mailboxes = await listMailboxes(this.deps.mailboxes, connected);
    log.info('connect: delegated connection connected', { tenantId: identity.tenantId, signInMethod });
    return outcome({
      kind: 'connected',
      mode: 'delegated',
      tenant: { id: identity.tenantId },
      account: identity.upn,
      permissions: granted,
      mailboxes: mailboxes.map((mailbox) => mailbox.address),
    });
  }

  /** Who signed in, if they may complete this connection; otherwise the page that says why not. Nothing is stored either way. */
  private checkIdentity(connection: Connection, result: AuthenticationResult, log: Logger): SignedInIdentity | { outcome: ConnectOutcome } {
    const app = this.deps.msal.app(connection.appId);
    const identity = signedInIdentity(result, { clientId: app.clientId, loginUrl: app.cloud.loginUrl, now: this.deps.now() });
    if (!identity) {
      log.warn('connect: the id token lacks tid/oid, or is not for this app, from this cloud and current; nothing stored');
      return { outcome: { kind: 'sign-in-error', reference: { oauthError: 'invalid_id_token' } } };
    }
    if (identity.tenantId === CONSUMER_TENANT) {
      return { outcome: { kind: 'wrong-account', reason: 'other-tenant', expected: 'Microsoft 365', actual: identity.upn } };
    }
    const mismatch = this.wrongAccount(connection, identity);
    if (mismatch) {
      log.warn('connect: signed in with another tenant or user than the connection has; nothing stored', { reason: mismatch.reason });
      return { outcome: mismatch };
    }
    return identity;
  }

  /** Microsoft's redirect back from the admin-consent page. */
  async completeAdminConsent(query: Readonly<Record<string, string | undefined>>): Promise<FlowStep> {
    const consumed = await this.consumeState(query.state, 'admin-consent');
    if (consumed.kind === 'outcome') return consumed;
    return inLanguage(await this.adminConsented(query, consumed), consumed.state.lang);
  }

  private async adminConsented(query: Readonly<Record<string, string | undefined>>, consumed: ConsumedSignIn): Promise<FlowStep> {
    const { state, connection } = consumed;
    const log = this.logFor(connection);

    // An error also comes with admin_consent=True: test the error first (microsoft.md §1.3).
    const error = errorFromRedirect(query);
    if (error) return this.signInFailed(connection, state, error, log);
    if (query.admin_consent?.toLowerCase() !== 'true') return outcome({ kind: 'sign-in-error', reference: { oauthError: 'invalid_request' } });

    if (state.purpose === 'admin-grant') {
      // Nothing to record: the user's own sign-in, which this grant allows, connects the connection.
      log.info('connect: administrator granted the delegated permissions for the organization');
      return outcome({ kind: 'admin-granted', retryUrl: (await this.deps.links.issue(connection.customerId, connection.id, 'connect')).url });
    }

    const tenantId = state.tenantId;
    if (!tenantId || query.tenant?.toLowerCase() !== tenantId.toLowerCase()) {
      log.warn('connect: the admin-consent callback names another tenant than the administrator signed in to; nothing stored');
      return outcome({ kind: 'link-invalid', reason: 'tampered' });
    }

    let access: AppOnlyAccess;
    try {
      access = await verifyAppOnlyAccess({ msal: this.deps.msal, logger: log }, connection, tenantId);
    } catch (thrown) {
      const tokenError = errorFromMsal(thrown);
      if (!tokenError) throw thrown;
      return this.signInFailed(connection, state, tokenError, log);
    }
    if (access.tenantId !== tenantId) {
      log.warn('connect: the app-only token is for another tenant than the consent; nothing stored');
      return outcome({ kind: 'link-invalid', reason: 'tampered' });
    }

    const required = requiredAppRoles(connection.transports);
    const missing = [...required.graph.filter((role) => !access.roles.graph.includes(role)), ...required.outlook.filter((role) => !access.roles.outlook.includes(role))];
    if (missing.length > 0) {
      log.error('connect: admin consent lacks app roles the connection needs; the app registration must list them', { missing: missing.join(' ') });
      await this.markAppMisconfigured(connection, missing);
      return outcome({ kind: 'sign-in-error', reference: { oauthError: 'missing_app_roles' }, missingPermissions: missing });
    }

    const granted = [...new Set([...access.roles.graph, ...access.roles.outlook])];
    const connected = await recordSignIn(this.deps.connections, connection.customerId, connection.id, {
      tenantId,
      granted,
      servicePrincipalId: access.servicePrincipalId,
      ...(state.signedInOid !== undefined && state.signedInUpn !== undefined && { grantedBy: { oid: state.signedInOid, upn: state.signedInUpn } }),
    });
    if (!connected) return this.gone();
    await this.deps.signedIn(connected);
    log.info('connect: application connection connected', { tenantId });

    if (exchangeProtocols(connected).length > 0) {
      const setup = await connectionExchangeSetup(
        { repositories: this.deps.repositories, clientIdOf: (appId) => this.deps.msal.app(appId).clientId, vendorName: this.deps.identity.vendorName },
        connected,
      );
      // The set-up page can check the connection again once the administrator has run the commands.
      return { ...outcome({ kind: 'exchange-app-setup', tenant: { id: tenantId }, setup }), subject: { customerId: connected.customerId, connectionId: connected.id } };
    }
    const mailboxes = await listMailboxes(this.deps.mailboxes, connected);
    return outcome({ kind: 'connected', mode: 'application', tenant: { id: tenantId }, permissions: granted, mailboxes: mailboxes.map((mailbox) => mailbox.address) });
  }

  /** The consent link's connection, if the link is genuine, current, and its connection can still connect. */
  private async open(
    token: string,
  ): Promise<{ kind: 'open'; connection: Connection; purpose: LinkPurpose; expiresAt: Date } | { kind: 'link-invalid'; reason: LinkInvalidReason }> {
    const check = await this.deps.links.check(token);
    if (!check.valid) return { kind: 'link-invalid', reason: check.reason };
    const found = await this.deps.repositories.connections.get(keys.connection(check.claims.customerId, check.claims.connectionId));
    if (!found || found.value.state === 'disconnected') return { kind: 'link-invalid', reason: 'unknown' };
    return { kind: 'open', connection: found.value, purpose: check.claims.purpose, expiresAt: check.claims.expiresAt };
  }

  private async consumeState(
    id: string | undefined,
    step: SignInState['step'],
  ): Promise<ConsumedSignIn | { kind: 'outcome'; outcome: ConnectOutcome }> {
    const consumed = await this.deps.states.consume(id ?? '');
    if (consumed.outcome !== 'valid') {
      this.deps.logger.warn('connect: callback with an unusable state; nothing stored', { stateOutcome: consumed.outcome });
      return outcome({ kind: 'link-invalid', reason: consumed.outcome });
    }
    if (consumed.state.step !== step) {
      this.deps.logger.warn('connect: a state came back to the wrong callback; nothing stored', { step: consumed.state.step });
      return outcome({ kind: 'link-invalid', reason: 'unknown' });
    }
    const found = await this.deps.repositories.connections.get(keys.connection(consumed.state.customerId, consumed.state.connectionId));
    if (!found || found.value.state === 'disconnected') return this.gone();
    return { kind: 'consumed', state: consumed.state, codeVerifier: consumed.codeVerifier, connection: found.value };
  }

  private async signInFailed(connection: Connection, state: SignInState, error: MicrosoftError, log: Logger): Promise<FlowStep> {
    const reference: SupportReference = {
      oauthError: error.error,
      ...(error.aadsts !== undefined && { aadsts: error.aadsts }),
      ...(error.traceId !== undefined && { traceId: error.traceId }),
      ...(error.correlationId !== undefined && { correlationId: error.correlationId }),
    };
    const kind = classifySignInError(error);
    const fields = { ...errorLogFields(error), errorClass: kind, step: state.step };
    if (kind === 'app-misconfigured') log.error('connect: Microsoft refused the vendor app; check its registration and credential', fields);
    else log.info('connect: sign-in did not complete', fields);

    if (kind === 'declined') return outcome({ kind: 'declined', reference, ...(await this.retry(connection, state.purpose)) });
    if (kind === 'admin-approval' && connection.mode === 'delegated' && state.purpose === 'connect') {
      await this.markNeedsAdmin(connection, error);
      const adminLink = await this.deps.links.issue(connection.customerId, connection.id, 'admin-grant');
      const app = this.deps.msal.app(connection.appId);
      return outcome({
        kind: 'admin-approval-needed',
        adminConsentUrl: adminLink.url,
        permissions: allDelegatedScopes(app.cloud, connection.transports),
        reference,
        ...(await this.retry(connection, 'connect')),
      });
    }
    return outcome({ kind: 'sign-in-error', reference, ...(await this.retry(connection, state.purpose)) });
  }

  /** A pending connection whose users may not consent waits for an administrator; the vendor hears it as a state change. */
  private async markNeedsAdmin(connection: Connection, error: MicrosoftError): Promise<void> {
    if (connection.state !== 'pending') return;
    await changeConnectionState(this.deps.connections, connection.customerId, connection.id, 'needs_admin', {
      code: error.aadsts !== undefined ? `AADSTS${error.aadsts}` : error.error,
      message: 'The organization does not let users consent to this app; an administrator must approve it.',
      nextStep: 'Send the administrator the admin-consent link shown to the user, or issue one with POST …/consent-link and "purpose": "admin-grant".',
    });
  }

  private async markAppMisconfigured(connection: Connection, missing: readonly string[]): Promise<void> {
    if (!canTransition(connection.state, 'app_misconfigured')) return;
    await changeConnectionState(this.deps.connections, connection.customerId, connection.id, 'app_misconfigured', {
      code: 'missing_app_roles',
      message: `The app registration does not list the application permissions ${missing.join(', ')}, so the administrator's consent did not grant them.`,
      nextStep: 'Add them under API permissions of the app registration, then send the customer a new consent link.',
    });
  }

  private wrongAccount(connection: Connection, identity: SignedInIdentity): Extract<ConnectOutcome, { kind: 'wrong-account' }> | undefined {
    if (connection.tenantId !== undefined && connection.tenantId.toLowerCase() !== identity.tenantId.toLowerCase()) {
      return { kind: 'wrong-account', reason: 'other-tenant', expected: connection.tenantId, actual: identity.tenantId };
    }
    if (connection.mode === 'delegated' && connection.account && connection.account.oid.toLowerCase() !== identity.oid.toLowerCase()) {
      return { kind: 'wrong-account', reason: 'other-user', expected: connection.account.upn, actual: identity.upn };
    }
    return undefined;
  }

  /** A fresh link to try again with, for pages that offer it. */
  private async retry(connection: Connection, purpose: LinkPurpose): Promise<{ retryUrl: string }> {
    return { retryUrl: (await this.deps.links.issue(connection.customerId, connection.id, purpose)).url };
  }

  private gone(): { kind: 'outcome'; outcome: ConnectOutcome } {
    return outcome({ kind: 'link-invalid', reason: 'unknown' });
  }

  /** Scopes of the sign-in: the mail scopes of one resource, the other's to consent at once; openid/profile only for an administrator. */
  private signInScopes(connection: Connection): { primary: string[]; extra: string[] } {
    // Application mode signs the administrator in for who they are: Graph's token carries their directory roles.
    if (connection.mode === 'application') return { primary: [`${this.deps.msal.app(connection.appId).cloud.graphResource}/User.Read`], extra: [] };
    const app = this.deps.msal.app(connection.appId);
    const scopes = delegatedScopes(app.cloud, connection.transports);
    const other = scopes.primary === 'graph' ? 'outlook' : 'graph';
    return { primary: scopes.byResource[scopes.primary] ?? [], extra: scopes.byResource[other] ?? [] };
  }

  private permissionsAsked(connection: Connection, purpose: LinkPurpose): string[] {
    const app = this.deps.msal.app(connection.appId);
    if (purpose === 'admin-grant' || connection.mode === 'delegated') return allDelegatedScopes(app.cloud, connection.transports);
    const roles = requiredAppRoles(connection.transports);
    return [...roles.graph, ...roles.outlook];
  }

  private logFor(connection: Connection): Logger {
    return this.deps.logger.child({ customerId: connection.customerId, connectionId: connection.id });
  }
}

interface ConsumedSignIn {
  kind: 'consumed';
  state: SignInState;
  codeVerifier: string;
  connection: Connection;
}

function inLanguage(step: FlowStep, lang: string | undefined): FlowStep {
  return lang === undefined ? step : { ...step, lang };
}

function outcome(value: ConnectOutcome): { kind: 'outcome'; outcome: ConnectOutcome } {
  return { kind: 'outcome', outcome: value };
}

