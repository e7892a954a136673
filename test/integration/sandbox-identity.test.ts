import { X509Certificate, createHash, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import {
  ConfidentialClientApplication,
  CryptoProvider,
  PublicClientApplication,
  type AuthenticationResult,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from '@azure/msal-node';
import { ImapFlow } from 'imapflow';
import { SignJWT, createRemoteJWKSet, decodeJwt, exportJWK, exportSPKI, generateKeyPair, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import { createSigningKeyMaterial } from '../../local/sandbox/identity/signing-key.js';
import type { Tenant, User } from '../../local/sandbox/identity/sandbox-state.js';
import { mailServerSupport, startMailServerOnFreePorts, writeSigningKeys } from '../../local/sandbox/mail-server/index.js';
import { SandboxBrowser, type ArrivedAtApp, type SandboxPage } from '../support/sandbox-browser.js';

/**
 * The sandbox identity platform (local/sandbox/identity) driven by the real @azure/msal-node,
 * as the connector drives Entra ID: authority https://127.0.0.1:<port>/<tenant> with the sandbox
 * host as a known authority, browser pages over plain http, tokens verified against the
 * published keys, and a delegated Outlook token logging in to a real Dovecot over IMAP.
 */

const REDIRECT_URI = 'https://connector.test/api/auth/callback';
const ADMIN_REDIRECT_URI = 'https://connector.test/api/auth/admin-callback';
const GRAPH_MAIL_SEND = 'https://graph.microsoft.com/Mail.Send';
const OUTLOOK_IMAP = 'https://outlook.office.com/IMAP.AccessAsUser.All';
const OUTLOOK_SMTP = 'https://outlook.office.com/SMTP.Send';

let sandbox: RunningSandboxIdentity;
let workDir: string;
/** Added to the sandbox's clock, to expire codes without waiting. */
let clockOffset = 0;
const browser = new SandboxBrowser([REDIRECT_URI, ADMIN_REDIRECT_URI]);

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'sandbox-identity-'));
  sandbox = await startSandboxIdentity({
    caDirectory: join(workDir, 'ca'),
    lifetimes: { accessTokenSeconds: 3600, deviceCodePollIntervalSeconds: 1 },
    now: () => Date.now() + clockOffset,
  });
  // msal-node's fetch, jose's JWKS fetch and this file's fetch all trust the sandbox's CA.
  setDefaultCACertificates([...getCACertificates('default'), sandbox.caPem]);
});

afterAll(async () => {
  await sandbox.stop();
  await rm(workDir, { recursive: true, force: true });
});

interface Directory {
  tenant: Tenant;
  admin: User;
  user: User;
}

async function createDirectory(name: string): Promise<Directory> {
  const tenant = await sandbox.control.createTenant({ displayName: name });
  const domain = tenant.domains[0] ?? '';
  const admin = await sandbox.control.createUser(tenant.id, { userPrincipalName: `admin@${domain}`, displayName: `${name} Admin`, isAdmin: true });
  const user = await sandbox.control.createUser(tenant.id, { userPrincipalName: `megan@${domain}`, displayName: 'Megan Bowen' });
  return { tenant, admin, user };
}

async function createApp(extra: { publicClient?: boolean } = {}) {
  const app = await sandbox.control.createApp({
    displayName: 'Contoso Mail Connector',
    redirectUris: [REDIRECT_URI, ADMIN_REDIRECT_URI],
    delegatedPermissions: [GRAPH_MAIL_SEND, OUTLOOK_IMAP, OUTLOOK_SMTP],
    appRoles: ['https://graph.microsoft.com/Mail.Send', 'https://outlook.office365.com/IMAP.AccessAsApp'],
    ...extra,
  });
  const secret = await sandbox.control.addClientSecret(app.clientId);
  return { clientId: app.clientId, secret: secret.value, keyId: secret.keyId };
}

/** What the connector configures: the sandbox host is a known authority, so msal reads its metadata. */
function confidentialClient(clientId: string, credential: { clientSecret: string } | { clientCertificate: { thumbprintSha256: string; privateKey: string } } | { clientAssertion: () => Promise<string> }, tenant = 'organizations') {
  const options = sandbox.msalAuthOptions(tenant);
  return new ConfidentialClientApplication({ auth: { clientId, authority: options.authority, knownAuthorities: options.knownAuthorities, ...credential } });
}

function expectPage(result: SandboxPage | ArrivedAtApp): SandboxPage {
  if (result.kind !== 'page') throw new Error(`expected a page, the browser went back to the app: ${result.url.toString()}`);
  return result;
}

function expectApp(result: SandboxPage | ArrivedAtApp): ArrivedAtApp {
  if (result.kind !== 'app') throw new Error(`expected the browser back at the app, it shows "${result.heading}": ${result.text}`);
  return result;
}

interface SignInOptions {
  scopes?: string[];
  extraScopesToConsent?: string[];
  prompt?: 'consent' | 'select_account';
  /** Tick "Consent on behalf of your organization" (admins). */
  forOrganization?: boolean;
}

/** The connector's delegated connect: auth code + PKCE + form_post at `organizations`, redeemed with msal. */
async function signIn(client: ConfidentialClientApplication, upn: string, options: SignInOptions = {}): Promise<AuthenticationResult> {
  const pkce = await new CryptoProvider().generatePkceCodes();
  const state = randomUUID();
  const nonce = randomUUID();
  const scopes = options.scopes ?? [GRAPH_MAIL_SEND, 'offline_access'];
  const url = await client.getAuthCodeUrl({
    scopes,
    extraScopesToConsent: options.extraScopesToConsent,
    redirectUri: REDIRECT_URI,
    responseMode: 'form_post',
    state,
    nonce,
    codeChallenge: pkce.challenge,
    codeChallengeMethod: 'S256',
    prompt: options.prompt,
  });
  let next = await expectPage(await browser.open(url)).click(upn);
  if (next.kind === 'page' && next.heading === 'Permissions requested') {
    next = await next.click('Accept', options.forOrganization ? { consent_on_behalf_of_organization: 'true' } : {});
  }
  const answer = expectApp(next);
  expect(answer.method).toBe('POST');
  expect(answer.params.get('state')).toBe(state);
  const code = answer.params.get('code') ?? '';
  return client.acquireTokenByCode({ code, redirectUri: REDIRECT_URI, scopes, codeVerifier: pkce.verifier, state, nonce }, { code, state });
}

/** The authorize URL the way any client builds it, for the checks msal-node would not let through. */
function authorizeUrl(segment: string, params: Record<string, string>): string {
  return `${sandbox.browserBase}/${segment}/oauth2/v2.0/authorize?${new URLSearchParams({ response_type: 'code', redirect_uri: REDIRECT_URI, ...params }).toString()}`;
}

async function postToken(segment: string, form: Record<string, string>): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(`${sandbox.httpsBase}/${segment}/oauth2/v2.0/token`, { method: 'POST', body: new URLSearchParams(form) });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

/** A code through the pages, without msal: for redemption checks msal-node cannot express. */
async function codeFor(segment: string, clientId: string, upn: string, extra: Record<string, string> = {}): Promise<string> {
  const url = authorizeUrl(segment, { client_id: clientId, scope: `${GRAPH_MAIL_SEND} offline_access openid`, ...extra });
  let next = await expectPage(await browser.open(url)).click(upn);
  if (next.kind === 'page' && next.heading === 'Permissions requested') next = await next.click('Accept');
  return expectApp(next).params.get('code') ?? '';
}

async function rejection(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected the call to fail');
}

function aadstsOf(description: unknown): string {
  return /^AADSTS(\d+):/.exec(String(description))?.[1] ?? `no AADSTS code in ${String(description)}`;
}

describe('discovery', () => {
  it('serves each tenant its openid-configuration, with the pages on plain http', async () => {
    const { tenant } = await createDirectory('Discovery');
    const byDomain = await (await fetch(`${sandbox.httpsBase}/${tenant.domains[0] ?? ''}/v2.0/.well-known/openid-configuration`)).json();
    expect(byDomain).toMatchObject({
      issuer: `${sandbox.httpsBase}/${tenant.id}/v2.0`,
      token_endpoint: `${sandbox.httpsBase}/${tenant.id}/oauth2/v2.0/token`,
      jwks_uri: `${sandbox.httpsBase}/${tenant.id}/discovery/v2.0/keys`,
      authorization_endpoint: `${sandbox.browserBase}/${tenant.id}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${sandbox.httpsBase}/${tenant.id}/oauth2/v2.0/devicecode`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    });
    expect(sandbox.browserBase).toMatch(/^http:\/\/localhost:\d+$/);
    const organizations = await (await fetch(`${sandbox.httpsBase}/organizations/v2.0/.well-known/openid-configuration`)).json();
    expect(organizations).toMatchObject({ issuer: `${sandbox.httpsBase}/{tenantid}/v2.0`, token_endpoint: `${sandbox.httpsBase}/organizations/oauth2/v2.0/token` });
  });

  it('publishes its signing key with kid and x5t, and answers an unknown tenant with AADSTS90002', async () => {
    const keys = (await (await fetch(`${sandbox.httpsBase}/common/discovery/v2.0/keys`)).json()) as { keys: Record<string, unknown>[] };
    expect(keys.keys).toHaveLength(1);
    const [key] = keys.keys;
    expect(key).toMatchObject({ kty: 'RSA', use: 'sig', kid: sandbox.signingKeys[0]?.kid, x5t: sandbox.signingKeys[0]?.kid });
    expect(key?.x5c).toHaveLength(1);

    const unknown = await fetch(`${sandbox.httpsBase}/no-such-tenant.example/v2.0/.well-known/openid-configuration`);
    expect(unknown.status).toBe(400);
    const body = (await unknown.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ error: 'invalid_tenant', error_codes: [90002] });
    expect(body.error_description).toMatch(/^AADSTS90002: Tenant 'no-such-tenant.example' not found\..*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/s);
  });

  it('works with msal-node given the metadata up front, without any discovery request', async () => {
    const { tenant } = await createDirectory('No Discovery');
    const { clientId, secret } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const requested: string[] = [];
    // Records msal's requests and makes them with fetch, as msal-node's own client does.
    const recording: INetworkModule = {
      async sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
        requested.push(`GET ${url}`);
        const response = await fetch(url, { headers: options?.headers });
        return { headers: Object.fromEntries(response.headers), body: (await response.json()) as T, status: response.status };
      },
      async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
        requested.push(`POST ${url}`);
        const response = await fetch(url, { method: 'POST', headers: options?.headers, body: options?.body });
        return { headers: Object.fromEntries(response.headers), body: (await response.json()) as T, status: response.status };
      },
    };
    const options = sandbox.msalAuthOptions(tenant.id);
    const client = new ConfidentialClientApplication({
      auth: { clientId, clientSecret: secret, authority: options.authority, authorityMetadata: options.authorityMetadata, cloudDiscoveryMetadata: options.cloudDiscoveryMetadata },
      system: { networkClient: recording },
    });
    const result = await client.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] });
    expect(result?.accessToken).toBeTruthy();
    expect(requested).toEqual([expect.stringMatching(new RegExp(`^POST ${sandbox.httpsBase}/${tenant.id}/oauth2/v2\\.0/token`))]);
  });
});

describe('authorization code with PKCE (delegated connect)', () => {
  it('signs a user in through the pages and form_post, and msal-node redeems the code', async () => {
    const { tenant, user } = await createDirectory('Fabrikam');
    const { clientId, secret } = await createApp();
    const client = confidentialClient(clientId, { clientSecret: secret });
    const result = await signIn(client, user.userPrincipalName, { extraScopesToConsent: [OUTLOOK_IMAP, OUTLOOK_SMTP] });

    expect(result.account?.homeAccountId).toBe(`${user.id}.${tenant.id}`);
    expect(result.tenantId).toBe(tenant.id);
    expect(result.idTokenClaims).toMatchObject({ aud: clientId, iss: `${sandbox.httpsBase}/${tenant.id}/v2.0`, tid: tenant.id, oid: user.id, preferred_username: user.userPrincipalName, name: 'Megan Bowen', ver: '2.0' });
    const keys = createRemoteJWKSet(new URL(`${sandbox.httpsBase}/${tenant.id}/discovery/v2.0/keys`));
    await jwtVerify(result.idToken, keys, { issuer: `${sandbox.httpsBase}/${tenant.id}/v2.0`, audience: clientId });
    const { payload, protectedHeader } = await jwtVerify(result.accessToken, keys, { issuer: `https://sts.windows.net/${tenant.id}/`, audience: 'https://graph.microsoft.com' });
    expect(protectedHeader).toMatchObject({ typ: 'JWT', alg: 'RS256', kid: sandbox.signingKeys[0]?.kid, x5t: sandbox.signingKeys[0]?.kid });
    expect(payload).toMatchObject({ tid: tenant.id, oid: user.id, upn: user.userPrincipalName, unique_name: user.userPrincipalName, appid: clientId, idtyp: 'user', ver: '1.0', scp: 'Mail.Send' });
    expect((payload.iat ?? 0) * 1000).toBeLessThan(Date.now() - 60_000);
    expect(result.scopes).toEqual([GRAPH_MAIL_SEND, 'openid', 'profile', 'email']);
  });

  it('gets an Outlook token silently from the same refresh token, for the resource consented up front', async () => {
    const { user } = await createDirectory('Northwind');
    const { clientId, secret } = await createApp();
    const client = confidentialClient(clientId, { clientSecret: secret });
    const first = await signIn(client, user.userPrincipalName, { extraScopesToConsent: [OUTLOOK_IMAP, OUTLOOK_SMTP] });
    if (!first.account) throw new Error('no account');
    const outlook = await client.acquireTokenSilent({ account: first.account, scopes: [OUTLOOK_IMAP, OUTLOOK_SMTP] });
    expect(decodeJwt(outlook.accessToken)).toMatchObject({ aud: 'https://outlook.office.com', scp: 'IMAP.AccessAsUser.All SMTP.Send', upn: user.userPrincipalName });

    // Rotation: each redemption returned a new refresh token, and the first one still works.
    const issued = await sandbox.control.issued(clientId);
    expect(issued.refreshTokens).toHaveLength(2);
    const cache = JSON.parse(client.getTokenCache().serialize()) as { RefreshToken: Record<string, { secret: string }> };
    const current = Object.values(cache.RefreshToken)[0]?.secret ?? '';
    const again = await postToken('organizations', { grant_type: 'refresh_token', client_id: clientId, client_secret: secret, refresh_token: current, scope: GRAPH_MAIL_SEND });
    expect(again.status).toBe(200);
    expect(again.body.refresh_token).not.toBe(current);
  });

  it('answers in the query or the fragment when asked', async () => {
    const { user } = await createDirectory('Modes');
    const { clientId } = await createApp();
    for (const mode of ['query', 'fragment'] as const) {
      const url = authorizeUrl('organizations', { client_id: clientId, scope: `${GRAPH_MAIL_SEND} openid`, response_mode: mode, state: mode });
      let next = await expectPage(await browser.open(url)).click(user.userPrincipalName);
      if (next.kind === 'page') next = await next.click('Accept');
      const answer = expectApp(next);
      expect(answer.method).toBe('GET');
      expect(mode === 'query' ? answer.url.search : answer.url.hash).toContain('code=');
      expect(answer.params.get('state')).toBe(mode);
      expect(answer.params.get('session_state')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('refuses a code redeemed with the wrong PKCE verifier (AADSTS501481) or twice (AADSTS54005)', async () => {
    const { user } = await createDirectory('Pkce');
    const { clientId, secret } = await createApp();
    const verifier = 'a-verifier-that-is-long-enough-for-pkce-0123456789';
    const challenge = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))).toString('base64url');
    const client = confidentialClient(clientId, { clientSecret: secret });
    const code = await codeFor('organizations', clientId, user.userPrincipalName, { code_challenge: challenge, code_challenge_method: 'S256' });

    const mismatch = await rejection(client.acquireTokenByCode({ code, redirectUri: REDIRECT_URI, scopes: [GRAPH_MAIL_SEND], codeVerifier: `${verifier}-wrong` }));
    expect(mismatch).toMatchObject({ errorCode: 'invalid_grant', errorNo: 501481 });
    await client.acquireTokenByCode({ code, redirectUri: REDIRECT_URI, scopes: [GRAPH_MAIL_SEND], codeVerifier: verifier });
    const reused = await rejection(client.acquireTokenByCode({ code, redirectUri: REDIRECT_URI, scopes: [GRAPH_MAIL_SEND], codeVerifier: verifier }));
    expect(reused).toMatchObject({ errorCode: 'invalid_grant', errorNo: 54005 });
  });

  it('checks where and how a code is redeemed: tenant (700005), redirect_uri (500112), expiry (70008)', async () => {
    const { tenant, user } = await createDirectory('Redeem');
    const { clientId, secret } = await createApp();
    const tenantCode = await codeFor(tenant.id, clientId, user.userPrincipalName);
    const elsewhere = await postToken('organizations', { grant_type: 'authorization_code', client_id: clientId, client_secret: secret, code: tenantCode, redirect_uri: REDIRECT_URI });
    expect([elsewhere.status, elsewhere.body.error, elsewhere.body.error_codes]).toEqual([400, 'invalid_grant', [700005]]);

    const code = await codeFor('organizations', clientId, user.userPrincipalName);
    const otherRedirect = await postToken('organizations', { grant_type: 'authorization_code', client_id: clientId, client_secret: secret, code, redirect_uri: ADMIN_REDIRECT_URI });
    expect([otherRedirect.status, otherRedirect.body.error, otherRedirect.body.error_codes]).toEqual([401, 'invalid_client', [500112]]);

    const late = await codeFor('organizations', clientId, user.userPrincipalName);
    clockOffset = 11 * 60_000;
    try {
      const expired = await postToken('organizations', { grant_type: 'authorization_code', client_id: clientId, client_secret: secret, code: late, redirect_uri: REDIRECT_URI });
      expect([expired.body.error, expired.body.error_codes]).toEqual(['invalid_grant', [70008]]);
    } finally {
      clockOffset = 0;
    }
  });

  it('shows an error page, and never redirects, for an unknown app, an unregistered redirect URI or /consumers', async () => {
    const { clientId } = await createApp();
    const unknownApp = expectPage(await browser.open(authorizeUrl('organizations', { client_id: randomUUID(), scope: GRAPH_MAIL_SEND })));
    expect(unknownApp.status).toBe(400);
    expect(unknownApp.text).toContain('AADSTS700016');
    const wrongRedirect = expectPage(await browser.open(authorizeUrl('organizations', { client_id: clientId, scope: GRAPH_MAIL_SEND, redirect_uri: 'https://evil.test/cb' })));
    expect(wrongRedirect.text).toContain("AADSTS50011: The redirect URI 'https://evil.test/cb' specified in the request does not match");
    const consumers = expectPage(await browser.open(authorizeUrl('consumers', { client_id: clientId, scope: GRAPH_MAIL_SEND })));
    expect(consumers.text).toContain('AADSTS9002332');
    // A bad scope is the app's error to hear about: it goes back to the redirect URI.
    const badScope = expectApp(await browser.open(authorizeUrl('organizations', { client_id: clientId, scope: 'https://graph.microsoft.com/Mail.Sendd', state: 's' })));
    expect(badScope.params.get('error')).toBe('invalid_scope');
    expect(aadstsOf(badScope.params.get('error_description'))).toBe('70011');
  });

  it('sends error=access_denied with error_subcode=cancel and AADSTS65004 when the user cancels consent', async () => {
    const { user } = await createDirectory('Cancel');
    const { clientId } = await createApp();
    const consent = expectPage(await expectPage(await browser.open(authorizeUrl('organizations', { client_id: clientId, scope: GRAPH_MAIL_SEND, state: 'st', response_mode: 'form_post' }))).click(user.userPrincipalName));
    expect(consent.heading).toBe('Permissions requested');
    expect(consent.text).toContain('Send mail as you');
    expect(consent.text).toContain('Contoso Mail Connector');
    const answer = expectApp(await consent.click('Cancel'));
    expect(answer.method).toBe('POST');
    expect(answer.params.get('error')).toBe('access_denied');
    expect(answer.params.get('error_subcode')).toBe('cancel');
    expect(answer.params.get('error_description')).toMatch(/^AADSTS65004: User declined to consent to access the app\.\r\nTrace ID:/);
    expect(answer.params.get('state')).toBe('st');
  });
});

describe('tenant policies and revocation', () => {
  it('blocks user consent with "Need admin approval" (AADSTS90094) until an admin consents for the organization', async () => {
    const { tenant, admin, user } = await createDirectory('Locked Down');
    await sandbox.control.setTenantPolicies(tenant.id, { userConsentBlocked: true });
    const { clientId, secret } = await createApp();
    const url = authorizeUrl('organizations', { client_id: clientId, scope: `${GRAPH_MAIL_SEND} offline_access`, state: 'blocked' });
    const interrupt = expectPage(await expectPage(await browser.open(url)).click(user.userPrincipalName));
    expect(interrupt.heading).toBe('Need admin approval');
    expect(interrupt.text).toContain('AADSTS90094');
    const answer = expectApp(await interrupt.click('Return to the application without granting consent'));
    expect(answer.params.get('error')).toBe('access_denied');
    expect(aadstsOf(answer.params.get('error_description'))).toBe('90094');
    expect(answer.params.get('state')).toBe('blocked');

    const client = confidentialClient(clientId, { clientSecret: secret });
    await signIn(client, admin.userPrincipalName, { forOrganization: true });
    expect((await sandbox.control.listConsents(tenant.id))[0]?.delegated).toContainEqual({ resource: 'Microsoft Graph', principal: 'AllPrincipals', scopes: ['Mail.Send'] });
    // Now the user signs in without any consent page.
    const result = await signIn(client, user.userPrincipalName);
    expect(result.account?.username).toBe(user.userPrincipalName);
  });

  it('blocks a tenant by Conditional Access (AADSTS53003): no sign-in, and refreshing fails', async () => {
    const { tenant, user } = await createDirectory('Conditional');
    const { clientId, secret } = await createApp();
    const client = confidentialClient(clientId, { clientSecret: secret });
    const signedIn = await signIn(client, user.userPrincipalName);
    if (!signedIn.account) throw new Error('no account');
    await sandbox.control.setTenantPolicies(tenant.id, { conditionalAccessBlocked: true });
    const refused = await rejection(client.acquireTokenSilent({ account: signedIn.account, scopes: [GRAPH_MAIL_SEND], forceRefresh: true }));
    expect(refused).toMatchObject({ name: 'InteractionRequiredAuthError', errorCode: 'invalid_grant', subError: 'message_only', errorNo: 53003 });
    const page = expectPage(await expectPage(await browser.open(authorizeUrl('organizations', { client_id: clientId, scope: GRAPH_MAIL_SEND }))).click(user.userPrincipalName));
    expect(page.heading).toBe('You cannot access this right now');
    expect(page.text).toContain('AADSTS53003');
  });

  it('fails refresh after sessions are revoked (AADSTS50173), after inactivity (700082), and after consent is removed (65001)', async () => {
    const { tenant, user, admin } = await createDirectory('Revoked');
    const { clientId, secret } = await createApp();
    const client = confidentialClient(clientId, { clientSecret: secret });
    const revoked = await signIn(client, user.userPrincipalName);
    const idle = await signIn(client, admin.userPrincipalName);
    if (!revoked.account || !idle.account) throw new Error('no account');

    await sandbox.control.revokeSessions(tenant.id, user.userPrincipalName);
    expect(await rejection(client.acquireTokenSilent({ account: revoked.account, scopes: [GRAPH_MAIL_SEND], forceRefresh: true }))).toMatchObject({
      name: 'InteractionRequiredAuthError',
      errorCode: 'invalid_grant',
      subError: 'bad_token',
      errorNo: 50173,
    });
    await sandbox.control.revokeSessions(tenant.id, admin.userPrincipalName, { reason: 'inactive' });
    expect(await rejection(client.acquireTokenSilent({ account: idle.account, scopes: [GRAPH_MAIL_SEND], forceRefresh: true }))).toMatchObject({ errorCode: 'invalid_grant', errorNo: 700082 });

    const fresh = await signIn(client, user.userPrincipalName);
    if (!fresh.account) throw new Error('no account');
    await sandbox.control.removeAppFromTenant(tenant.id, clientId);
    expect(await rejection(client.acquireTokenSilent({ account: fresh.account, scopes: [GRAPH_MAIL_SEND], forceRefresh: true }))).toMatchObject({
      name: 'InteractionRequiredAuthError',
      errorCode: 'invalid_grant',
      subError: 'consent_required',
      errorNo: 65001,
    });
  });
});

describe('admin consent', () => {
  async function adminConsent(segment: string, clientId: string, upn: string, decision: 'Accept' | 'Cancel') {
    const url = `${sandbox.browserBase}/${segment}/v2.0/adminconsent?${new URLSearchParams({ client_id: clientId, scope: 'https://graph.microsoft.com/.default', redirect_uri: ADMIN_REDIRECT_URI, state: 'admin-state' }).toString()}`;
    const page = expectPage(await expectPage(await browser.open(url)).click(upn));
    if (page.heading !== 'Permissions requested') return page;
    return expectApp(await page.click(decision));
  }

  it('grants the declared permissions for the organization and redirects with admin_consent=True&tenant&scope&state', async () => {
    const { tenant, admin } = await createDirectory('Admin Approves');
    const { clientId, secret } = await createApp();
    const answer = await adminConsent('organizations', clientId, admin.userPrincipalName, 'Accept');
    if (answer.kind !== 'app') throw new Error(answer.text);
    expect(Object.fromEntries(answer.params)).toEqual({ admin_consent: 'True', tenant: tenant.id, scope: 'https://graph.microsoft.com/.default', state: 'admin-state' });
    const [consent] = await sandbox.control.listConsents(tenant.id);
    expect(consent?.appRoles).toEqual([
      { resource: 'Microsoft Graph', roles: ['Mail.Send'] },
      { resource: 'Office 365 Exchange Online', roles: ['IMAP.AccessAsApp'] },
    ]);

    const client = confidentialClient(clientId, { clientSecret: secret }, tenant.id);
    const result = await client.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] });
    expect(decodeJwt(result?.accessToken ?? '')).toMatchObject({ aud: 'https://graph.microsoft.com', tid: tenant.id, idtyp: 'app', roles: ['Mail.Send'], appid: clientId, oid: consent?.servicePrincipalId });
  });

  it('redirects a declined consent with error=consent_required, AADSTS65004 and admin_consent=True', async () => {
    const { admin } = await createDirectory('Admin Declines');
    const { clientId } = await createApp();
    const answer = await adminConsent('organizations', clientId, admin.userPrincipalName, 'Cancel');
    if (answer.kind !== 'app') throw new Error(answer.text);
    expect(answer.params.get('error')).toBe('consent_required');
    expect(answer.params.get('error_description')).toMatch(/^AADSTS65004: The resource owner or authorization server denied the request\./);
    expect(answer.params.get('admin_consent')).toBe('True');
    expect(answer.params.get('state')).toBe('admin-state');
  });

  it('stops a non-admin with the admin-approval interrupt (AADSTS90093)', async () => {
    const { tenant, user } = await createDirectory('Not An Admin');
    const { clientId } = await createApp();
    const page = await adminConsent(tenant.id, clientId, user.userPrincipalName, 'Accept');
    if (page.kind !== 'page') throw new Error('a non-admin consented');
    expect(page.heading).toBe('Need admin approval');
    expect(page.text).toContain('AADSTS90093');
    const answer = expectApp(await page.click('Return to the application'));
    expect(answer.params.get('admin_consent')).toBe('True');
    expect(aadstsOf(answer.params.get('error_description'))).toBe('90093');
  });
});

describe('client credentials and client authentication', () => {
  it('issues app-only tokens only where the app was consented (else AADSTS7000229), and only for a tenant', async () => {
    const { tenant } = await createDirectory('Consented');
    const other = await createDirectory('Never Consented');
    const { clientId, secret } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const consented = confidentialClient(clientId, { clientSecret: secret }, tenant.id);
    const outlook = await consented.acquireTokenByClientCredential({ scopes: ['https://outlook.office365.com/.default'] });
    expect(decodeJwt(outlook?.accessToken ?? '')).toMatchObject({ aud: 'https://outlook.office365.com', roles: ['IMAP.AccessAsApp'], idtyp: 'app', iss: `https://sts.windows.net/${tenant.id}/` });

    const unconsented = confidentialClient(clientId, { clientSecret: secret }, other.tenant.id);
    expect(await rejection(unconsented.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }))).toMatchObject({ errorCode: 'invalid_client', errorNo: 7000229 });

    const common = await postToken('common', { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: 'https://graph.microsoft.com/.default' });
    expect(common.body.error_codes).toEqual([9001023]);
    const organizations = await postToken('organizations', { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: 'https://graph.microsoft.com/.default' });
    expect(organizations.body.error_codes).toEqual([50059]);
    const notDefault = await postToken(tenant.id, { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: GRAPH_MAIL_SEND });
    expect([notDefault.body.error, notDefault.body.error_codes]).toEqual(['invalid_scope', [1002012]]);
  });

  it('refuses a wrong client secret (AADSTS7000215) and an expired one (AADSTS7000222) with 401', async () => {
    const { tenant } = await createDirectory('Secrets');
    const { clientId, secret, keyId } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const wrong = await rejection(confidentialClient(clientId, { clientSecret: `${secret}x` }, tenant.id).acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }));
    expect(wrong).toMatchObject({ errorCode: 'invalid_client', errorNo: 7000215 });
    await sandbox.control.expireClientSecret(clientId, keyId);
    const expired = await postToken(tenant.id, { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: 'https://graph.microsoft.com/.default' });
    expect([expired.status, expired.body.error, expired.body.error_codes]).toEqual([401, 'invalid_client', [7000222]]);
  });

  it('accepts a certificate assertion as msal-node 7 builds it (PS256, x5t#S256) and refuses an unregistered certificate', async () => {
    const { tenant } = await createDirectory('Certificates');
    const { clientId } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const registered = await createSigningKeyMaterial();
    const certificate = await sandbox.control.addCertificate(clientId, { certificatePem: registered.certificatePem });
    const client = confidentialClient(clientId, { clientCertificate: { thumbprintSha256: certificate.thumbprintSha256, privateKey: registered.privateKeyPem } }, tenant.id);
    const result = await client.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] });
    expect(decodeJwt(result?.accessToken ?? '')).toMatchObject({ appidacr: '2', roles: ['Mail.Send'] });

    const stranger = await createSigningKeyMaterial();
    const strangerThumbprint = createHash('sha256').update(new X509Certificate(stranger.certificatePem).raw).digest('hex');
    const refused = confidentialClient(clientId, { clientCertificate: { thumbprintSha256: strangerThumbprint, privateKey: stranger.privateKeyPem } }, tenant.id);
    expect(await rejection(refused.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }))).toMatchObject({ errorCode: 'invalid_client', errorNo: 700027 });
  });

  it('accepts a federated credential (a managed identity token through clientAssertion) and refuses an unknown subject (AADSTS70021)', async () => {
    const { tenant } = await createDirectory('Federated');
    const { clientId } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const identity = await generateKeyPair('RS256', { extractable: true });
    const issuer = `https://login.microsoftonline.com/${randomUUID()}/v2.0`;
    const principalId = randomUUID();
    await sandbox.control.addFederatedCredential(clientId, { name: 'connector-managed-identity', issuer, subject: principalId, jwks: { keys: [{ ...(await exportJWK(identity.publicKey)), kid: 'mi-key', use: 'sig' }] } });
    const assertionFor = (subject: string) => () =>
      new SignJWT({ idtyp: 'app' })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'mi-key', x5t: 'mi-key' })
        .setIssuer(issuer)
        .setSubject(subject)
        .setAudience('api://AzureADTokenExchange')
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(identity.privateKey);

    const client = confidentialClient(clientId, { clientAssertion: assertionFor(principalId) }, tenant.id);
    const result = await client.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] });
    expect(decodeJwt(result?.accessToken ?? '')).toMatchObject({ appid: clientId, appidacr: '2', roles: ['Mail.Send'] });

    const stranger = confidentialClient(clientId, { clientAssertion: assertionFor(randomUUID()) }, tenant.id);
    expect(await rejection(stranger.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }))).toMatchObject({ errorCode: 'invalid_request', errorNo: 70021 });

    const pemCredential = await generateKeyPair('RS256', { extractable: true });
    await sandbox.control.addFederatedCredential(clientId, { name: 'pem', issuer: 'https://issuer.test', subject: 'workload', publicKeyPem: await exportSPKI(pemCredential.publicKey) });
    const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer('https://issuer.test').setSubject('workload').setAudience('api://AzureADTokenExchange').setIssuedAt().setExpirationTime('5m').sign(pemCredential.privateKey);
    const byPem = await postToken(tenant.id, { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, scope: 'https://graph.microsoft.com/.default' });
    expect(byPem.status).toBe(200);
  });
});

describe('token endpoint faults', () => {
  it('answers 503 and 429 (with Retry-After) for the next requests, as msal-node reports them', async () => {
    const { tenant } = await createDirectory('Flaky');
    const { clientId, secret } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    await sandbox.control.failTokenRequests({ status: 503, count: 1 });
    const unavailable = await rejection(confidentialClient(clientId, { clientSecret: secret }, tenant.id).acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }));
    expect(unavailable).toMatchObject({ name: 'ServerError', errorCode: 'temporarily_unavailable', status: 503 });

    await sandbox.control.failTokenRequests({ status: 429, count: 2, retryAfterSeconds: 7 });
    const throttled = await postToken(tenant.id, { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: 'https://graph.microsoft.com/.default' });
    expect([throttled.status, throttled.headers.get('retry-after'), throttled.body.error]).toEqual([429, '7', 'temporarily_unavailable']);
    const throttledAgain = await rejection(confidentialClient(clientId, { clientSecret: secret }, tenant.id).acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }));
    expect(throttledAgain).toMatchObject({ name: 'ServerError', status: 429 });
    const recovered = await confidentialClient(clientId, { clientSecret: secret }, tenant.id).acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] });
    expect(recovered?.accessToken).toBeTruthy();
  });
});

describe('device code', () => {
  it('signs in through the verification page while msal-node polls', async () => {
    const { user } = await createDirectory('Device');
    const { clientId } = await createApp({ publicClient: true });
    const options = sandbox.msalAuthOptions('organizations');
    const client = new PublicClientApplication({ auth: { clientId, authority: options.authority, knownAuthorities: options.knownAuthorities } });
    let approval: Promise<unknown> = Promise.resolve();
    const result = await client.acquireTokenByDeviceCode({
      scopes: [OUTLOOK_IMAP, 'offline_access'],
      deviceCodeCallback: (response) => {
        expect(response.message).toContain(response.userCode);
        approval = (async () => {
          const entry = expectPage(await browser.open(response.verificationUri));
          const picker = expectPage(await entry.click('Next', { otc: response.userCode }));
          const confirm = expectPage(await picker.click(user.userPrincipalName));
          const done = expectPage(await confirm.click('Accept'));
          expect(done.text).toContain('You have signed in to the Contoso Mail Connector application on your device');
        })();
      },
    });
    await approval;
    expect(decodeJwt(result?.accessToken ?? '')).toMatchObject({ aud: 'https://outlook.office.com', upn: user.userPrincipalName, appidacr: '0' });
  });

  it('answers authorization_pending, authorization_declined and expired_token while polling', async () => {
    const { user } = await createDirectory('Device Errors');
    const { clientId } = await createApp({ publicClient: true });
    const start = async () => {
      const response = await fetch(`${sandbox.httpsBase}/organizations/oauth2/v2.0/devicecode`, { method: 'POST', body: new URLSearchParams({ client_id: clientId, scope: `${OUTLOOK_IMAP} offline_access` }) });
      return (await response.json()) as { device_code: string; user_code: string; verification_uri: string };
    };
    const poll = (deviceCode: string) => postToken('organizations', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: clientId, device_code: deviceCode });

    const declined = await start();
    expect((await poll(declined.device_code)).body).toMatchObject({ error: 'authorization_pending', error_codes: [70016] });
    const picker = expectPage(await expectPage(await browser.open(declined.verification_uri)).click('Next', { otc: declined.user_code.toLowerCase() }));
    await expectPage(await picker.click(user.userPrincipalName)).click('Cancel');
    expect((await poll(declined.device_code)).body).toMatchObject({ error: 'authorization_declined' });

    const expired = await start();
    clockOffset = 16 * 60_000;
    try {
      expect((await poll(expired.device_code)).body).toMatchObject({ error: 'expired_token', error_codes: [70019] });
    } finally {
      clockOffset = 0;
    }
  });

  it('lets only a public client redeem the refresh token of a device code sign-in (else AADSTS700025)', async () => {
    const { tenant, user } = await createDirectory('Device Refresh');
    const { clientId, secret } = await createApp({ publicClient: true });
    const response = await fetch(`${sandbox.httpsBase}/organizations/oauth2/v2.0/devicecode`, { method: 'POST', body: new URLSearchParams({ client_id: clientId, scope: `${OUTLOOK_IMAP} offline_access` }) });
    const code = (await response.json()) as { device_code: string; user_code: string; verification_uri: string };
    const picker = expectPage(await expectPage(await browser.open(code.verification_uri)).click('Next', { otc: code.user_code }));
    await expectPage(await picker.click(user.userPrincipalName)).click('Accept');
    const signedIn = await postToken('organizations', { grant_type: 'device_code', client_id: clientId, device_code: code.device_code, scope: `${OUTLOOK_IMAP} offline_access` });
    const refreshToken = String(signedIn.body.refresh_token);

    const refresh = { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken, scope: OUTLOOK_IMAP };
    const withSecret = await postToken(tenant.id, { ...refresh, client_secret: secret });
    expect(withSecret.status).toBe(401);
    expect(withSecret.body).toMatchObject({ error: 'invalid_client', error_codes: [700025] });
    expect(aadstsOf(withSecret.body.error_description)).toBe('700025');
    const asPublicClient = await postToken(tenant.id, refresh);
    expect(asPublicClient.status).toBe(200);
    expect(decodeJwt(String(asPublicClient.body.access_token))).toMatchObject({ appidacr: '0' });
    // The rotated refresh token is a public client's too.
    expect((await postToken(tenant.id, { ...refresh, refresh_token: String(asPublicClient.body.refresh_token), client_secret: secret })).body).toMatchObject({ error_codes: [700025] });
    expect((await sandbox.control.issued(clientId)).refreshTokens.every((t) => t.publicClient === true)).toBe(true);
  });
});

describe('password grant (ROPC)', () => {
  const PASSWORD = 'correct horse battery staple';

  async function directoryWithPasswords(name: string) {
    const directory = await createDirectory(name);
    const domain = directory.tenant.domains[0] ?? '';
    const service = await sandbox.control.createUser(directory.tenant.id, { userPrincipalName: `svc@${domain}`, password: PASSWORD });
    return { ...directory, service };
  }

  const passwordForm = (clientId: string, username: string, password: string, extra: Record<string, string> = {}) => ({
    grant_type: 'password',
    client_id: clientId,
    username,
    password,
    scope: `${GRAPH_MAIL_SEND} openid profile offline_access`,
    ...extra,
  });

  it('signs a user in with name and password, as msal-node sends it for a confidential and a public client', async () => {
    const { tenant, service } = await directoryWithPasswords('Ropc');
    expect(service).toMatchObject({ hasPassword: true });
    expect(service).not.toHaveProperty('passwordHash');
    expect(JSON.stringify(await sandbox.control.listUsers(tenant.id))).not.toMatch(/scrypt|horse/);
    const { clientId, secret } = await createApp({ publicClient: true });
    await sandbox.control.grantConsent(tenant.id, { clientId });

    // eslint-disable-next-line @typescript-eslint/no-deprecated -- ROPC is what is tested
    const confidential = await confidentialClient(clientId, { clientSecret: secret }).acquireTokenByUsernamePassword({ scopes: [GRAPH_MAIL_SEND], username: service.userPrincipalName, password: PASSWORD });
    expect(decodeJwt(confidential?.accessToken ?? '')).toMatchObject({ aud: 'https://graph.microsoft.com', upn: service.userPrincipalName, appidacr: '1', tid: tenant.id });
    expect(confidential?.idTokenClaims).toMatchObject({ preferred_username: service.userPrincipalName, tid: tenant.id });

    const options = sandbox.msalAuthOptions(tenant.id);
    const publicClient = new PublicClientApplication({ auth: { clientId, authority: options.authority, knownAuthorities: options.knownAuthorities } });
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- ROPC is what is tested
    const viaPublic = await publicClient.acquireTokenByUsernamePassword({ scopes: [GRAPH_MAIL_SEND], username: service.userPrincipalName.toUpperCase(), password: PASSWORD });
    expect(decodeJwt(viaPublic?.accessToken ?? '')).toMatchObject({ appidacr: '0', oid: service.id });
    if (!viaPublic?.account) throw new Error('no account');
    const refreshed = await publicClient.acquireTokenSilent({ account: viaPublic.account, scopes: [GRAPH_MAIL_SEND], forceRefresh: true });
    expect(refreshed.accessToken).not.toBe(viaPublic.accessToken);
  });

  it('refuses a wrong or absent password (50126), an unknown user (50034), /common (9001023) and a public client the app does not allow (7000218)', async () => {
    const { tenant, admin, service } = await directoryWithPasswords('Ropc Refusals');
    const other = await directoryWithPasswords('Ropc Elsewhere');
    const { clientId, secret } = await createApp();
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const refusal = async (segment: string, form: Record<string, string>) => {
      const { status, body } = await postToken(segment, form);
      return { status, error: body.error, code: aadstsOf(body.error_description) };
    };
    const withSecret = { client_secret: secret };
    expect(await refusal('organizations', passwordForm(clientId, service.userPrincipalName, 'wrong', withSecret))).toEqual({ status: 400, error: 'invalid_grant', code: '50126' });
    expect(await refusal('organizations', passwordForm(clientId, service.userPrincipalName, '', withSecret))).toEqual({ status: 400, error: 'invalid_grant', code: '50126' });
    expect(await refusal(tenant.id, passwordForm(clientId, admin.userPrincipalName, PASSWORD, withSecret))).toEqual({ status: 400, error: 'invalid_grant', code: '50126' });
    expect(await refusal('organizations', passwordForm(clientId, `nobody@${tenant.domains[0] ?? ''}`, PASSWORD, withSecret))).toEqual({ status: 400, error: 'invalid_grant', code: '50034' });
    expect(await refusal(tenant.id, passwordForm(clientId, other.service.userPrincipalName, PASSWORD, withSecret))).toEqual({ status: 400, error: 'invalid_grant', code: '50034' });
    expect(await refusal('common', passwordForm(clientId, service.userPrincipalName, PASSWORD, withSecret))).toEqual({ status: 400, error: 'invalid_request', code: '9001023' });
    expect(await refusal('organizations', passwordForm(clientId, service.userPrincipalName, PASSWORD))).toEqual({ status: 401, error: 'invalid_client', code: '7000218' });
    const { username: _username, ...withoutUsername } = passwordForm(clientId, service.userPrincipalName, PASSWORD, withSecret);
    expect(await refusal('organizations', withoutUsername)).toEqual({ status: 400, error: 'invalid_request', code: '900144' });
    expect((await postToken('organizations', passwordForm(clientId, service.userPrincipalName, PASSWORD, withSecret))).status).toBe(200);
  });

  it('cannot consent: a permission nobody granted is AADSTS65001 consent_required, whatever the policy; Conditional Access still blocks (53003)', async () => {
    const { tenant, service } = await directoryWithPasswords('Ropc Consent');
    const { clientId, secret } = await createApp();
    const form = passwordForm(clientId, service.userPrincipalName, PASSWORD, { client_secret: secret });
    expect((await postToken(tenant.id, form)).body).toMatchObject({ error: 'invalid_grant', error_codes: [65001], suberror: 'consent_required' });
    await sandbox.control.setTenantPolicies(tenant.id, { userConsentBlocked: true });
    expect((await postToken(tenant.id, form)).body).toMatchObject({ error: 'invalid_grant', error_codes: [65001], suberror: 'consent_required' });
    await sandbox.control.grantConsent(tenant.id, { clientId });
    const issued = await postToken(tenant.id, form);
    expect(issued.status).toBe(200);
    expect(issued.body).toMatchObject({ token_type: 'Bearer', refresh_token: expect.stringMatching(/^1\.A/) as unknown, id_token: expect.any(String) as unknown });
    await sandbox.control.setTenantPolicies(tenant.id, { conditionalAccessBlocked: true });
    expect((await postToken(tenant.id, form)).body).toMatchObject({ error: 'invalid_grant', error_codes: [53003], suberror: 'message_only' });
  });
});

describe('control API', () => {
  it('keeps mailboxes with who has full access, and reads back what was issued', async () => {
    const { tenant, user, admin } = await createDirectory('Mailboxes');
    const shared = await sandbox.control.createMailbox(tenant.id, { address: `support@${tenant.domains[0] ?? ''}`, displayName: 'Support', fullAccess: [user.userPrincipalName, admin.id] });
    expect(shared).toMatchObject({ kind: 'shared', fullAccess: [user.userPrincipalName, admin.userPrincipalName] });
    const mailboxes = await sandbox.control.listMailboxes(tenant.id);
    expect(mailboxes.map((m) => m.address)).toEqual([admin.userPrincipalName, user.userPrincipalName, shared.address]);

    const { clientId } = await createApp();
    await codeFor('organizations', clientId, user.userPrincipalName);
    const issued = await sandbox.control.issued(clientId);
    expect(issued.codes).toEqual([expect.objectContaining({ user: user.userPrincipalName, clientId })]);

    await expect(sandbox.control.createUser(tenant.id, { userPrincipalName: user.userPrincipalName })).rejects.toMatchObject({ status: 409 });
    await expect(sandbox.control.createUser(randomUUID(), { userPrincipalName: 'x@y.test' })).rejects.toMatchObject({ status: 404 });
    await expect(sandbox.control.createApp({ displayName: 'Bad', delegatedPermissions: ['https://graph.microsoft.com/Nope'] })).rejects.toMatchObject({ status: 400 });
  });
});

describe('persistence', () => {
  it('keeps tenants, apps, consents, refresh tokens and the signing key across a restart', async () => {
    const dataDir = join(workDir, 'data');
    const first = await startSandboxIdentity({ caDirectory: join(workDir, 'ca'), dataDir });
    const tenant = await first.control.createTenant({ displayName: 'Persistent' });
    const user = await first.control.createUser(tenant.id, { userPrincipalName: `lee@${tenant.domains[0] ?? ''}` });
    const app = await first.control.createApp({ displayName: 'Persistent App', redirectUris: [REDIRECT_URI] });
    const secret = await first.control.addClientSecret(app.clientId);
    const url = `${first.browserBase}/organizations/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: app.clientId, response_type: 'code', redirect_uri: REDIRECT_URI, scope: `${GRAPH_MAIL_SEND} offline_access` }).toString()}`;
    const consent = expectPage(await expectPage(await browser.open(url)).click(user.userPrincipalName));
    const code = expectApp(await consent.click('Accept')).params.get('code') ?? '';
    const redeemed = await fetch(`${first.httpsBase}/organizations/oauth2/v2.0/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', client_id: app.clientId, client_secret: secret.value, code, redirect_uri: REDIRECT_URI }) });
    const { refresh_token: refreshToken } = (await redeemed.json()) as { refresh_token: string };
    await first.stop();

    const second = await startSandboxIdentity({ caDirectory: join(workDir, 'ca'), dataDir });
    try {
      expect(second.signingKeys).toEqual(first.signingKeys);
      expect((await second.control.listTenants()).map((t) => t.id)).toContain(tenant.id);
      const refreshed = await fetch(`${second.httpsBase}/organizations/oauth2/v2.0/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: app.clientId, client_secret: secret.value, refresh_token: refreshToken, scope: GRAPH_MAIL_SEND }) });
      expect(refreshed.status).toBe(200);
    } finally {
      await second.stop();
    }
  });
});

const mailSupport = mailServerSupport();

describe.skipIf(!mailSupport.runnable && !process.env.CI)('a delegated Outlook token on the real Dovecot', () => {
  it('logs in over IMAP with XOAUTH2 as the signed-in user', async () => {
    const tenantId = randomUUID();
    // mkdtemp makes a 0700 folder; Dovecot's unprivileged processes must get in.
    const stackDir = await mkdtemp(join(tmpdir(), 'm365-mail-'));
    await chmod(stackDir, 0o755);
    const server = await startMailServerOnFreePorts({ stackDir, tenants: [tenantId], mechanisms: ['xoauth2'] });
    try {
      await writeSigningKeys(server.keyDictPath, sandbox.signingKeys);
      const tenant = await sandbox.control.createTenant({ id: tenantId, displayName: 'Mail Tenant', domains: ['mail-tenant.test'] });
      const user = await sandbox.control.createUser(tenant.id, { userPrincipalName: 'adele@mail-tenant.test', displayName: 'Adele Vance' });
      const { clientId, secret } = await createApp();
      const client = confidentialClient(clientId, { clientSecret: secret });
      const signedIn = await signIn(client, user.userPrincipalName, { scopes: [OUTLOOK_IMAP, OUTLOOK_SMTP, 'offline_access'] });

      const imap = new ImapFlow({
        host: server.host,
        port: server.ports.imaps,
        secure: true,
        tls: { ca: server.caPem },
        auth: { user: user.userPrincipalName, accessToken: signedIn.accessToken },
        logger: false,
      });
      imap.on('error', () => undefined);
      await imap.connect();
      try {
        const inbox = await imap.mailboxOpen('INBOX');
        expect(inbox.path).toBe('INBOX');
      } finally {
        await imap.logout();
      }
    } finally {
      await server.stop();
      await rm(stackDir, { recursive: true, force: true });
    }
  });
});
