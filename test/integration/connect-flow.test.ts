import { ImapFlow } from 'imapflow';
import { decodeJwt } from 'jose';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey } from '../../src/api/auth/api-keys.js';
import { keys } from '../../src/store/repositories.js';
import type { Connection } from '../../src/domain/connection.js';
import type { StoredEvent } from '../../src/domain/events.js';
import { SandboxBrowser, type ArrivedAtApp, type SandboxPage, page, arrived } from '../support/sandbox-browser.js';
import { connectedByUser, startConnectEnvironment, VENDOR_NAME, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';

/**
 * The connect flow over HTTP, driven by a minimal browser (forms only, no JavaScript) through the
 * real function app in the local host and the sandbox identity platform: every outcome, and every
 * forged, replayed or mixed-up answer refused with a clear page and nothing stored.
 */

const mailServer = inject('mailServer');
let env: ConnectEnvironment;
let contoso: Directory;
let fabrikam: Directory;

beforeAll(async () => {
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    ...(mailServer && { signingKey: mailServer.sandboxSigningKey }),
  });
  // The mail server accepts tokens of its tenants only: Contoso is one of them.
  contoso = await env.createDirectory('Contoso', mailServer?.tenants[0]);
  fabrikam = await env.createDirectory('Fabrikam');
}, 60_000);

afterAll(async () => {
  await env.stop();
});



/** Landing → Continue → the sandbox's account picker. */
async function toMicrosoft(link: string, browser = new SandboxBrowser([])): Promise<SandboxPage> {
  const landing = page(await browser.open(link));
  return page(await landing.click('Continue to Microsoft'));
}

function hasButton(shown: SandboxPage | ArrivedAtApp, text: string): shown is SandboxPage {
  return shown.kind === 'page' && shown.forms.some((form) => form.buttons.some((button) => button.text.includes(text)));
}

/** At the sandbox's account picker: picks `upn`, and accepts the permissions if Microsoft asks. */
async function pickAndAccept(picker: SandboxPage, upn: string): Promise<SandboxPage | ArrivedAtApp> {
  const next = await picker.click(upn);
  return hasButton(next, 'Accept') ? next.click('Accept') : next;
}

/** A delegated sign-in as `upn`, accepting the permissions; returns the page the connector shows. */
async function signIn(link: string, upn: string): Promise<SandboxPage> {
  return page(await pickAndAccept(await toMicrosoft(link), upn));
}

/**
 * An application connect as the administrator `upn`: sign-in (accepting the sign-in permissions
 * if asked), then the organization-wide consent (picking the account again: the sandbox keeps no
 * session). Returns the page the connector shows.
 */
async function adminConsents(link: string, upn: string): Promise<SandboxPage> {
  const signedIn = page(await (await toMicrosoft(link)).click(upn));
  const atAdminConsent = hasButton(signedIn, 'Accept') && !/adminconsent/.test(signedIn.url.pathname) ? page(await signedIn.click('Accept')) : signedIn;
  const consent = /adminconsent/.test(atAdminConsent.url.pathname) && hasButton(atAdminConsent, upn) ? page(await atAdminConsent.click(upn)) : atAdminConsent;
  return page(await consent.click('Accept'));
}

/** The callback request the sandbox would send for a delegated sign-in, held back. */
async function heldCallback(link: string, upn: string): Promise<ArrivedAtApp> {
  const browser = new SandboxBrowser([`${env.baseUrl}/api/connect/callback`]);
  return arrived(await pickAndAccept(await toMicrosoft(link, browser), upn));
}

/** The authorize URL the landing page's button leads to, held back so a test can alter it. */
async function heldAuthorizeUrl(link: string): Promise<URL> {
  const toSandbox = new SandboxBrowser([env.sandbox.browserBase]);
  const landing = page(await toSandbox.open(link));
  return new URL(arrived(await landing.click('Continue to Microsoft')).url);
}

async function post(url: string, params: URLSearchParams): Promise<SandboxPage> {
  return page(await new SandboxBrowser([]).navigate('POST', new URL(url), params));
}

async function eventsOf(connection: Connection): Promise<StoredEvent[]> {
  return (await env.services.repositories.events.all(connection.customerId)).filter((event) => event.connectionId === connection.id);
}

/** The connection as stored, its tokens and its events: what "nothing stored" compares. */
async function snapshot(connection: Connection) {
  return { connection: await env.connection(connection), tokens: await env.tokenCache(connection.id), events: (await eventsOf(connection)).length };
}

describe('delegated connect', () => {
  it('connects the user through the link: tenant, user and grant recorded, tokens in the secret store, their mailbox added', async () => {
    const connection = await env.createConnection({ customerId: 'flow-delegated', mode: 'delegated' });
    const landing = page(await new SandboxBrowser([]).open(await env.link(connection)));
    expect(landing.status).toBe(200);
    expect(landing.heading).toBe('Connect Microsoft 365 mail to Fabrikam Helpdesk');
    expect(landing.text).toContain('Customer flow-delegated');
    const result = await signIn(await env.link(connection), contoso.user.userPrincipalName);
    expect(result.heading, result.text).toBe('Microsoft 365 is connected');
    expect(result.url.pathname).toMatch(/^\/api\/connect\/result\/[\w-]{43}$/);
    expect(result.text).toContain(contoso.user.userPrincipalName);

    const stored = await env.connection(connection);
    expect(stored).toMatchObject(connectedByUser(contoso));
    expect(stored.account?.displayName).toBe('Megan Bowen');
    expect(stored.granted).toEqual(expect.arrayContaining(['https://graph.microsoft.com/Mail.Send', 'https://graph.microsoft.com/Mail.ReadWrite']));
    const cache = await env.tokenCache(connection.id);
    expect(cache).toContain('RefreshToken');
    // Tokens live in the secret store only: no row of any table holds them.
    const rows = JSON.stringify([stored, await eventsOf(connection)]);
    expect(rows).not.toMatch(/RefreshToken|eyJ0eXAi|1\.A/);

    const mailboxes = await env.services.repositories.mailboxes.all(connection.customerId, { prefix: keys.mailboxesOf(connection.id) });
    expect(mailboxes.map((mailbox) => [mailbox.address, mailbox.kind])).toEqual([[contoso.user.userPrincipalName, 'user']]);
    const changed = (await eventsOf(connection)).find((event) => event.type === 'connection.state_changed');
    expect(changed?.data).toMatchObject({ from: 'pending', to: 'connected', tenantId: contoso.tenant.id, account: { upn: contoso.user.userPrincipalName } });
  });

  it('reconnects with a reconnect link: same id, same user, a connection.reconnected event', async () => {
    const connection = await env.createConnection({ customerId: 'flow-reconnect', mode: 'delegated' });
    await signIn(await env.link(connection), fabrikam.user.userPrincipalName);
    const first = await env.tokenCache(connection.id);

    const landing = page(await new SandboxBrowser([]).open(await env.link(connection)));
    expect(landing.text).toContain(fabrikam.user.userPrincipalName);
    const again = await signIn(await env.link(connection), fabrikam.user.userPrincipalName);
    expect(again.heading).toBe('Microsoft 365 is connected');
    expect(await env.tokenCache(connection.id)).not.toBe(first);
    expect((await env.connection(connection)).state).toBe('connected');
    expect((await eventsOf(connection)).map((event) => event.type)).toEqual(['connection.created', 'connection.state_changed', 'connection.reconnected']);
  });

  it('refuses a reconnect by another user or another tenant, and keeps what it had', async () => {
    const connection = await env.createConnection({ customerId: 'flow-wrong-account', mode: 'delegated' });
    await signIn(await env.link(connection), contoso.user.userPrincipalName);
    const before = await snapshot(connection);

    const otherUser = await signIn(await env.link(connection), contoso.admin.userPrincipalName);
    expect(otherUser.status).toBe(403);
    expect(otherUser.heading).toMatch(/account/i);
    expect(otherUser.text).toContain(contoso.user.userPrincipalName);

    // The reconnect asks for the account by login and domain hint; a person can still use another one.
    const authorize = await heldAuthorizeUrl(await env.link(connection));
    authorize.searchParams.delete('domain_hint');
    authorize.searchParams.delete('login_hint');
    const otherTenant = page(await pickAndAccept(page(await new SandboxBrowser([]).open(authorize.toString())), fabrikam.user.userPrincipalName));
    expect(otherTenant.status).toBe(403);
    expect(otherTenant.text).toContain(contoso.tenant.id);
    expect(await snapshot(connection)).toEqual(before);
  });

  it('shows how to retry when the user cancels, and stays pending', async () => {
    const declining = await env.createDirectory('Declining Org');
    const connection = await env.createConnection({ customerId: 'flow-declined', mode: 'delegated' });
    const consent = page(await (await toMicrosoft(await env.link(connection))).click(declining.user.userPrincipalName));
    const declined = page(await consent.click('Cancel'));
    expect(declined.status).toBe(200);
    expect(declined.heading).toBe('Nothing was connected');
    expect(declined.text).toContain('cancelled');
    const retry = declined.html.match(/href="(http[^"]*\/api\/connect\/[^"]+)"/)?.[1];
    expect(retry).toBeDefined();
    expect(page(await new SandboxBrowser([]).open(retry ?? '')).heading).toBe('Connect Microsoft 365 mail to Fabrikam Helpdesk');
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });

  it('when users may not consent: hands over an admin link, the admin grants, then the user connects', async () => {
    const blocked = await env.createDirectory('Blocked Org');
    await env.sandbox.control.setTenantPolicies(blocked.tenant.id, { userConsentBlocked: true });
    const connection = await env.createConnection({ customerId: 'flow-needs-admin', mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });

    const approval = page(await (await toMicrosoft(await env.link(connection))).click(blocked.user.userPrincipalName));
    const needsAdmin = page(await approval.click('Return to the application without granting consent'));
    expect(needsAdmin.status, needsAdmin.text).toBe(403);
    expect(needsAdmin.heading).toMatch(/administrator/i);
    expect((await env.connection(connection))).toMatchObject({ state: 'needs_admin', stateReason: { code: 'AADSTS90094' } });

    const adminLink = needsAdmin.html.match(/(http:\/\/localhost:\d+\/api\/connect\/[\w-]+\.[\w-]+)/)?.[1] ?? '';
    const adminLanding = page(await new SandboxBrowser([]).open(adminLink));
    expect(adminLanding.heading).toBe('Approve Fabrikam Helpdesk for your organization');
    expect(adminLanding.text).toMatch(/Cloud Application Administrator/);
    const adminConsent = page(await (page(await adminLanding.click('Continue to Microsoft'))).click(blocked.admin.userPrincipalName));
    const granted = page(await adminConsent.click('Accept'));
    expect(granted.heading, granted.text).toMatch(/approved|granted/i);
    expect((await env.sandbox.control.listConsents(blocked.tenant.id))[0]?.delegated[0]).toMatchObject({ principal: 'AllPrincipals' });

    const connected = await signIn(await env.link(connection), blocked.user.userPrincipalName);
    expect(connected.heading).toBe('Microsoft 365 is connected');
    expect(await env.connection(connection)).toMatchObject({ state: 'connected', tenantId: blocked.tenant.id });
  });

  it('gets a token for the other resource silently; the Outlook token logs in to the real Dovecot over IMAP and SMTP with XOAUTH2', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const connection = await env.createConnection({ customerId: 'flow-imap', mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });
    await signIn(await env.link(connection), contoso.user.userPrincipalName);
    const stored = await env.connection(connection);
    // The sign-in asked Exchange (primary) with Graph's profile consented alongside; the Graph token comes from the refresh token.
    const graph = await env.identity.accessTokens.getAccessToken(stored, 'graph');
    // Like Entra's, the token carries every Graph permission this user granted the app, here or before.
    const graphClaims = decodeJwt(graph.token);
    expect(graphClaims.aud).toBe('https://graph.microsoft.com');
    expect(String(graphClaims.scp).split(' ')).toContain('User.Read');
    const outlook = await env.identity.accessTokens.getAccessToken(stored, 'outlook');
    expect(decodeJwt(outlook.token)).toMatchObject({ aud: 'https://outlook.office.com', upn: contoso.user.userPrincipalName });
    const imap = new ImapFlow({
      host: mailServer.host,
      port: mailServer.ports.imaps,
      secure: true,
      tls: { ca: mailServer.caPem },
      auth: { user: contoso.user.userPrincipalName, accessToken: outlook.token },
      logger: false,
    });
    imap.on('error', () => undefined);
    await imap.connect();
    try {
      expect((await imap.mailboxOpen('INBOX')).path).toBe('INBOX');
    } finally {
      await imap.logout();
    }
    const smtp = nodemailer.createTransport({
      host: mailServer.host,
      port: mailServer.ports.submission,
      requireTLS: true,
      tls: { ca: mailServer.caPem },
      auth: { type: 'OAuth2', user: contoso.user.userPrincipalName, accessToken: outlook.token },
    });
    try {
      await expect(smtp.verify()).resolves.toBe(true);
    } finally {
      smtp.close();
    }
  });
});

describe('two first sign-ins at once', () => {
  it('connects one user, and the tokens kept are that user\'s', async () => {
    const connection = await env.createConnection({ customerId: 'flow-race', mode: 'delegated' });
    const megan = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    const admin = await heldCallback(await env.link(connection), contoso.admin.userPrincipalName);
    const pages = await Promise.all([post(megan.url.toString(), megan.params), post(admin.url.toString(), admin.params)]);
    expect(pages.filter((shown) => shown.heading === 'Microsoft 365 is connected')).toHaveLength(1);
    const stored = await env.connection(connection);
    const winner = stored.account?.oid ?? '';
    expect([contoso.user.id, contoso.admin.id]).toContain(winner);
    const cache = JSON.parse((await env.tokenCache(connection.id)) ?? '{}') as { Account?: Record<string, { home_account_id: string }> };
    expect(Object.values(cache.Account ?? {}).map((account) => account.home_account_id)).toEqual([`${winner}.${contoso.tenant.id}`]);
  });
});

describe('application connect', () => {
  it('the admin signs in, consents for the organization, and the roles and service principal are recorded', async () => {
    const connection = await env.createConnection({ customerId: 'flow-application', mode: 'application' });
    const landing = page(await new SandboxBrowser([]).open(await env.link(connection)));
    expect(landing.text).toMatch(/Global Administrator/);
    const result = await adminConsents(await env.link(connection), fabrikam.admin.userPrincipalName);
    expect(result.heading, result.text).toBe('Microsoft 365 is connected');

    const consent = (await env.sandbox.control.listConsents(fabrikam.tenant.id)).find((c) => c.clientId === env.clientId);
    expect(await env.connection(connection)).toMatchObject({
      state: 'connected',
      tenantId: fabrikam.tenant.id,
      servicePrincipalId: consent?.servicePrincipalId,
    });
    expect((await env.connection(connection)).granted).toEqual(expect.arrayContaining(['Mail.Send', 'Mail.ReadWrite']));
    const changed = (await eventsOf(connection)).find((event) => event.type === 'connection.state_changed');
    expect(changed?.data).toMatchObject({ grantedBy: { upn: fabrikam.admin.userPrincipalName } });
  });
});

describe('application connect by a user who is not an administrator', () => {
  it('stops after sign-in with a link to forward, even where the app already has consent, and no admin-consent answer can be made up', async () => {
    // Fabrikam's administrator consented above: client credentials for Fabrikam already work.
    await expect(env.identity.msal.appOnlyClient('default').then(async (client) => client.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'], authority: `${env.sandbox.httpsBase}/${fabrikam.tenant.id}` }))).resolves.toBeTruthy();
    const connection = await env.createConnection({ customerId: 'flow-not-admin', mode: 'application' });
    const held = new SandboxBrowser([`${env.baseUrl}/api/connect/callback`]);
    const callback = arrived(await pickAndAccept(await toMicrosoft(await env.link(connection), held), fabrikam.user.userPrincipalName));
    const shown = await post(callback.url.toString(), callback.params);
    expect(shown.heading).toBe(`An administrator needs to approve ${VENDOR_NAME}`);
    expect(shown.text).toContain('not_an_administrator');
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });

    // The attack: answer the admin-consent callback with the sign-in's own state and the user's tenant.
    const forged = new URL(`${env.baseUrl}/api/connect/admin-callback`);
    forged.search = new URLSearchParams({ admin_consent: 'True', tenant: fabrikam.tenant.id, state: callback.params.get('state') ?? '' }).toString();
    expect(page(await new SandboxBrowser([]).open(forged.toString())).status).toBe(410);
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });
});

describe('links', () => {
  it('shows a clear page for a tampered link, a link for another connection, and an expired link', async () => {
    const connection = await env.createConnection({ customerId: 'flow-links', mode: 'delegated' });
    const links = await env.badLinks(connection);

    for (const [bad, text] of [
      [links.alteredPayload, /not valid|altered|tampered|changed/i],
      [links.alteredSignature, /not valid|altered|tampered|changed/i],
      [`${env.baseUrl}/api/connect/not-a-link`, /not valid|altered|tampered|changed/i],
      [links.expired, /expired/i],
    ] as const) {
      const shown = page(await new SandboxBrowser([]).open(bad));
      expect(shown.status, bad).toBe(410);
      expect(shown.text).toMatch(text);
      expect(shown.html).not.toMatch(/at \w+ \(|Error:/);
      // The button that would go on to Microsoft refuses too.
      const start = page(await new SandboxBrowser([]).navigate('POST', new URL(`${bad}/start`)));
      expect(start.status).toBe(410);
    }
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });
});

describe('forged and replayed answers', () => {
  it('refuses a replayed state: the second use of a callback changes nothing', async () => {
    const connection = await env.createConnection({ customerId: 'flow-replay', mode: 'delegated' });
    const callback = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    expect((await post(callback.url.toString(), callback.params)).heading).toBe('Microsoft 365 is connected');
    const before = await snapshot(connection);
    const replayed = await post(callback.url.toString(), callback.params);
    expect(replayed.status).toBe(410);
    expect(replayed.text).toMatch(/already been used|used/i);
    expect(await snapshot(connection)).toEqual(before);
  });

  it('refuses a code with the state of another connection (its PKCE verifier does not match) and stores nothing for either', async () => {
    const a = await env.createConnection({ customerId: 'flow-mixed', mode: 'delegated' });
    const b = await env.createConnection({ customerId: 'flow-mixed', mode: 'delegated' });
    const forA = await heldCallback(await env.link(a), contoso.user.userPrincipalName);
    const forB = await heldCallback(await env.link(b), fabrikam.user.userPrincipalName);
    const mixed = new URLSearchParams(forB.params);
    mixed.set('state', forA.params.get('state') ?? '');
    const refused = await post(forA.url.toString(), mixed);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.text).toContain('501481');
    expect(await snapshot(a)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
    expect(await snapshot(b)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });

  it('refuses a code obtained with another PKCE challenge', async () => {
    const connection = await env.createConnection({ customerId: 'flow-pkce', mode: 'delegated' });
    const url = await heldAuthorizeUrl(await env.link(connection));
    url.searchParams.set('code_challenge', 'A'.repeat(43));
    const held = new SandboxBrowser([`${env.baseUrl}/api/connect/callback`]);
    const callback = arrived(await pickAndAccept(page(await held.open(url.toString())), contoso.user.userPrincipalName));
    const refused = await post(callback.url.toString(), callback.params);
    expect(refused.text).toContain('501481');
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });

  it('never trusts the tenant of the admin-consent callback: another (consented) tenant is refused', async () => {
    // Fabrikam consented already (the application test); an attacker's callback names it.
    await env.sandbox.control.grantConsent(fabrikam.tenant.id, { clientId: env.clientId });
    const connection = await env.createConnection({ customerId: 'flow-forged-tenant', mode: 'application' });
    const held = new SandboxBrowser([`${env.baseUrl}/api/connect/admin-callback`]);
    const signedIn = page(await page(await page(await held.open(await env.link(connection))).click('Continue to Microsoft')).click(contoso.admin.userPrincipalName));
    const atConsent = signedIn.forms.some((f) => f.buttons.some((b) => b.text.includes(contoso.admin.userPrincipalName))) ? page(await signedIn.click(contoso.admin.userPrincipalName)) : signedIn;
    const callback = arrived(await atConsent.click('Accept'));
    expect(callback.params.get('tenant')).toBe(contoso.tenant.id);
    const forged = new URL(callback.url);
    forged.searchParams.set('tenant', fabrikam.tenant.id);
    const refused = page(await new SandboxBrowser([]).open(forged.toString()));
    expect(refused.status).toBe(410);
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
    // The genuine answer was for this state, which the forged one used up: the admin starts again.
    const genuine = page(await new SandboxBrowser([]).open(callback.url.toString()));
    expect(genuine.status).toBe(410);
  });

  it('refuses callbacks without a usable state', async () => {
    for (const params of [new URLSearchParams({ code: 'x' }), new URLSearchParams({ code: 'x', state: 'A'.repeat(43) }), new URLSearchParams({ state: '../../etc' })]) {
      const refused = await post(`${env.baseUrl}/api/connect/callback`, params);
      expect(refused.status).toBe(410);
    }
    const admin = page(await new SandboxBrowser([]).open(`${env.baseUrl}/api/connect/admin-callback?admin_consent=True&tenant=${contoso.tenant.id}&state=forged`));
    expect(admin.status).toBe(410);
  });
});

describe('Microsoft failing', () => {
  it('shows "try again later" when the token endpoint is down, and stores nothing', async () => {
    const connection = await env.createConnection({ customerId: 'flow-outage', mode: 'delegated' });
    const callback = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    await env.sandbox.control.failTokenRequests({ status: 503, count: 5 });
    try {
      const shown = await post(callback.url.toString(), callback.params);
      expect(shown.status).toBe(503);
      expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
    } finally {
      await env.sandbox.control.failTokenRequests({ status: 503, count: 0 });
    }
  });
});

describe('through the vendor API', () => {
  let apiKey: string;

  beforeAll(async () => {
    const { key, record } = generateApiKey('*', 'connect-flow tests', new Date());
    await env.services.repositories.apiKeys.create(keys.apiKey(record.prefix), record);
    apiKey = key;
  });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${env.baseUrl}/api/v1/${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('creating a connection returns its consent link, which connects it; disconnecting removes its tokens and says so', async () => {
    expect((await api('PUT', 'customers/api-flow', { displayName: 'API flow' })).status).toBe(201);
    const created = await api('POST', 'customers/api-flow/connections', { mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });
    expect(created.status).toBe(201);
    const consent = created.body.consent as { url: string; expiresAt: string };
    expect(consent.url).toMatch(new RegExp(`^${env.baseUrl}/api/connect/[\\w-]+\\.[\\w-]+$`));
    // Seven days by default.
    expect(Date.parse(consent.expiresAt) - Date.now()).toBeGreaterThan(7 * 86_400_000 - 60_000);
    const id = created.body.id as string;

    const connected = await signIn(consent.url, fabrikam.user.userPrincipalName);
    expect(connected.heading).toBe('Microsoft 365 is connected');
    const shown = await api('GET', `customers/api-flow/connections/${id}`);
    expect(shown.body).toMatchObject({ state: 'connected', tenantId: fabrikam.tenant.id });
    expect(JSON.stringify(shown.body)).not.toMatch(/RefreshToken|secret|eyJ0eXAi/);
    // A delegated connection needs no Exchange service principal.
    expect((await api('GET', `customers/api-flow/connections/${id}/exchange-setup`)).status).toBe(409);

    const reconnect = await api('POST', `customers/api-flow/connections/${id}/consent-link`);
    expect(reconnect.status).toBe(200);
    const adminGrant = await api('POST', `customers/api-flow/connections/${id}/consent-link`, { purpose: 'admin-grant' });
    expect(adminGrant.status).toBe(200);
    const adminLanding = page(await new SandboxBrowser([]).open((adminGrant.body as { url: string }).url));
    expect(adminLanding.text).toMatch(/administrator/i);

    expect(await env.tokenCache(id)).toBeDefined();
    const disconnected = await api('POST', `customers/api-flow/connections/${id}/disconnect`);
    expect(disconnected.body).toMatchObject({ state: 'disconnected', stateReason: { code: 'disconnected_by_vendor' } });
    expect(await env.tokenCache(id)).toBeUndefined();
    const events = (await env.services.repositories.events.all('api-flow')).filter((event) => event.connectionId === id);
    expect(events.map((event) => [event.type, (event.data as { to?: string }).to])).toEqual([
      ['connection.created', undefined],
      ['connection.state_changed', 'connected'],
      ['connection.state_changed', 'disconnected'],
    ]);
    // Its links are dead now, the one in the customer's inbox included; no new one is issued.
    expect(page(await new SandboxBrowser([]).open((reconnect.body as { url: string }).url)).status).toBe(410);
    expect((await api('POST', `customers/api-flow/connections/${id}/consent-link`)).status).toBe(409);
  });

  it('gives an application connection with Exchange protocols the PowerShell for its tenant once connected', async () => {
    expect((await api('PUT', 'customers/api-exchange', {})).status).toBe(201);
    const created = await api('POST', 'customers/api-exchange/connections', {
      mode: 'application',
      transports: { send: 'smtp', receive: 'imap' },
      mailboxes: [{ address: `support@${contoso.domain}` }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    expect((await api('GET', `customers/api-exchange/connections/${id}/exchange-setup`)).status).toBe(409);
    await adminConsents((created.body.consent as { url: string }).url, contoso.admin.userPrincipalName);
    const setup = await api('GET', `customers/api-exchange/connections/${id}/exchange-setup`);
    expect(setup.status).toBe(200);
    expect(JSON.stringify(setup.body)).toContain('New-ServicePrincipal');
    expect(JSON.stringify(setup.body)).toContain(`support@${contoso.domain}`);
    expect(JSON.stringify(setup.body)).toContain(env.clientId);
    expect(JSON.stringify(setup.body)).not.toContain('New-ManagementScope');

    // RBAC for Applications: SMTP sending limited to one group's members.
    const group = "CN=Vendor's senders,OU=Groups,DC=contoso,DC=com";
    const scoped = await api('GET', `customers/api-exchange/connections/${id}/exchange-setup?smtpScopeGroup=${encodeURIComponent(group)}`);
    const script = (scoped.body as { script: string }).script;
    expect(script).toContain(`New-ManagementScope -Name '${VENDOR_NAME} SMTP' -RecipientRestrictionFilter 'MemberOfGroup -eq ''CN=Vendor''''s senders,OU=Groups,DC=contoso,DC=com'''`);
    expect(script).toContain(`New-ManagementRoleAssignment -Name '${VENDOR_NAME} SMTP' -Role 'Application SMTP.SendAsApp' -App '${env.clientId}'`);
    expect((await api('GET', `customers/api-exchange/connections/${id}/exchange-setup?smtpScopeGroup=${encodeURIComponent('a\nRemove-Mailbox x')}`)).status).toBe(400);
  });
});
