import type { Browser, BrowserContext, BrowserContextOptions, Page, Response } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../local/free-port.js';
import type { Connection } from '../../src/domain/connection.js';
import { describeProbeCause } from '../../src/domain/connectivity.js';
import { ConnectorKeys } from '../../src/identity/connector-keys.js';
import { ConsentLinks } from '../../src/identity/consent-links.js';
import { stateKey } from '../../src/identity/sign-in-states.js';
import { keys } from '../../src/store/repositories.js';
import { axeViolations, browserTestsSkipReason, launchChromium, preloadAxe, refuseOtherOrigins, saveScreenshot } from '../support/chromium.js';
import { connectedByUser, startConnectEnvironment, VENDOR_NAME, type ConnectEnvironment } from '../support/connect-environment.js';

/**
 * The acceptance test of the connect flow: whole journeys of a customer's user or administrator in
 * headless Chromium, from the vendor's link through our landing page, the sandbox identity
 * platform's sign-in and consent pages (another origin, as Microsoft's are), Microsoft's form_post
 * and redirects, to our result page — with the pages' real Content-Security-Policy in force. Each of
 * our pages is checked with axe-core and photographed; nothing may load from a third origin, and
 * what the journey should (or must not) have stored is read back from the store.
 */

const skipReason = browserTestsSkipReason();

/** What a context saw that no journey may cause; every list must be empty after each test. */
interface Watched {
  refused: string[];
  /**
   * Subresources a page fetched from another origin than its own, and navigations (redirects
   * included, which `refused` does not see) to a third origin.
   */
  elsewhere: string[];
  cspRefusals: string[];
  pageErrors: string[];
  dialogs: string[];
}

describe.skipIf(skipReason !== undefined)('connect journeys in Chromium', () => {
  let env: ConnectEnvironment;
  let browser: Browser;
  let connector: string;
  let sandbox: string;
  /** The last document (not a redirect) each page's main frame received. */
  const documents = new WeakMap<Page, Response>();
  const watched: Watched[] = [];
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    // No mail server: IMAP and SMTP go to a local port nobody listens on, as to an unreachable Exchange.
    const nowhere = `127.0.0.1:${String(await freePort())}`;
    const options = { storageConnectionString: inject('storageConnectionString'), env: { ENTRA_IMAP_HOST: nowhere, ENTRA_SMTP_HOST: nowhere } };
    [env, browser] = await Promise.all([startConnectEnvironment(options), launchChromium()]);
    connector = new URL(env.baseUrl).origin;
    sandbox = new URL(env.sandbox.browserBase).origin;
  }, 900_000);

  afterAll(async () => {
    // Either is missing when starting failed.
    await (browser as Browser | undefined)?.close();
    await (env as ConnectEnvironment | undefined)?.stop();
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((context) => context.close()));
    const seen = watched.splice(0);
    expect(seen.flatMap((w) => w.refused), 'requests to other origins than ours and the sign-in pages').toEqual([]);
    expect(seen.flatMap((w) => w.elsewhere), 'subresources from another origin, navigations to a third one').toEqual([]);
    expect(seen.flatMap((w) => w.cspRefusals), 'Content-Security-Policy refusals').toEqual([]);
    expect(seen.flatMap((w) => w.pageErrors), 'script errors').toEqual([]);
    expect(seen.flatMap((w) => w.dialogs), 'dialogs').toEqual([]);
  });

  /**
   * A browser profile of its own (a person's browser), enforcing the pages' policies: only our
   * origin and the sign-in pages' may be reached, and axe-core is preloaded (it runs as an init
   * script, which a page's Content-Security-Policy does not govern).
   */
  async function newContext(options: BrowserContextOptions = {}): Promise<BrowserContext> {
    const context = await browser.newContext({ locale: 'en-US', ...options });
    contexts.push(context);
    context.setDefaultTimeout(10_000);
    const seen: Watched = { refused: await refuseOtherOrigins(context, [connector, sandbox]), elsewhere: [], cspRefusals: [], pageErrors: [], dialogs: [] };
    watched.push(seen);
    await preloadAxe(context);
    context.on('request', (request) => {
      const origin = new URL(request.url()).origin;
      if (request.isNavigationRequest()) {
        if (origin !== connector && origin !== sandbox) seen.elsewhere.push(`navigation to ${request.url()}`);
        return;
      }
      const from = request.frame().url();
      if (origin !== new URL(from).origin) seen.elsewhere.push(`${from} → ${request.url()}`);
    });
    context.on('page', (page) => {
      page.on('response', (response) => {
        const status = response.status();
        if (response.request().isNavigationRequest() && response.frame() === page.mainFrame() && (status < 300 || status >= 400)) documents.set(page, response);
      });
      page.on('console', (message) => {
        if (/Content Security Policy|Refused to/i.test(message.text())) seen.cspRefusals.push(`${page.url()}: ${message.text()}`);
      });
      page.on('pageerror', (error) => seen.pageErrors.push(`${page.url()}: ${error.message}`));
      page.on('dialog', (dialog) => {
        seen.dialogs.push(dialog.message());
        void dialog.dismiss();
      });
    });
    return context;
  }

  async function newPage(options: BrowserContextOptions = {}): Promise<Page> {
    return (await newContext(options)).newPage();
  }

  const RESULT = () => new RegExp(`^${connector}/api/connect/result/[\\w-]{43}(\\?.*)?$`);
  const CHECKED = () => new RegExp(`^${connector}/api/connect/result/[\\w-]{43}/check(\\?[^#]*)?#check$`);
  const LANDING = () => new RegExp(`^${connector}/api/connect/[\\w-]+\\.[\\w-]+(\\?.*)?$`);

  interface OurPage {
    status: number;
    heading: string;
    /** The visible text of <main>. */
    text: string;
  }

  /**
   * One of our pages, as shown now: on our origin, under its Content-Security-Policy, in `lang`,
   * with no serious or critical axe violations (unless it is one already checked: `checked`);
   * photographed as connect-<shot>.
   */
  async function ourPage(page: Page, shot: string, { lang = 'en', checked = false } = {}): Promise<OurPage> {
    expect(new URL(page.url()).origin).toBe(connector);
    const response = documents.get(page);
    // The address bar keeps a form action's #fragment; the request did not carry it.
    expect(response?.url()).toBe(page.url().replace(/#.*$/, ''));
    expect(response?.headers()['content-security-policy']).toMatch(/default-src 'none'/);
    expect(await page.getAttribute('html', 'lang')).toBe(lang);
    if (!checked) expect(await axeViolations(page, ['serious', 'critical']), shot).toEqual([]);
    await saveScreenshot(page, `connect-${shot}`);
    return { status: response?.status() ?? 0, heading: (await page.locator('h1').innerText()).trim(), text: await page.locator('main').innerText() };
  }

  /** A page of the sign-in platform, as shown now: its heading, photographed as connect-<shot>. */
  async function signInPage(page: Page, heading: string, shot: string): Promise<void> {
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    expect(new URL(page.url()).origin).toBe(sandbox);
    await saveScreenshot(page, `connect-${shot}`);
  }

  /** The label/value pairs of the page's facts list ("What was connected"). */
  async function facts(page: Page): Promise<Record<string, string>> {
    const list = page.locator('main > dl.facts').first();
    const labels = await list.locator('dt').allInnerTexts();
    const values = await list.locator('dd').allInnerTexts();
    return Object.fromEntries(labels.map((label, index) => [label.trim(), (values[index] ?? '').trim()]));
  }

  /** From our landing page, the button on to Microsoft: the sandbox's account picker. */
  async function continueToMicrosoft(page: Page, shot: string, button = 'Continue to Microsoft'): Promise<void> {
    await page.getByRole('button', { name: button }).click();
    await signInPage(page, 'Pick an account', `${shot}-pick-account`);
  }

  async function pickAccount(page: Page, upn: string): Promise<void> {
    await page.getByRole('button', { name: upn }).click();
  }

  /** Clicks `name` on a sign-in page and waits for the journey to come back to our page at `url`. */
  async function clickBackTo(page: Page, name: string, url: RegExp): Promise<void> {
    await Promise.all([page.waitForURL(url), page.getByRole('button', { name, exact: true }).click()]);
  }

  async function eventsOf(connection: Connection) {
    return (await env.services.repositories.events.all(connection.customerId)).filter((event) => event.connectionId === connection.id);
  }

  /** What a journey that must store nothing is compared on. */
  async function stored(connection: Connection) {
    const found = await env.connection(connection);
    const mailboxes = await env.services.repositories.mailboxes.all(connection.customerId, { prefix: keys.mailboxesOf(connection.id) });
    return { state: found.state, tenantId: found.tenantId, tokens: await env.tokenCache(connection.id), mailboxes: mailboxes.length, events: (await eventsOf(connection)).map((event) => event.type) };
  }

  const NOTHING_STORED = { state: 'pending', tenantId: undefined, tokens: undefined, mailboxes: 0, events: ['connection.created'] };

  it('delegated: the user signs in and accepts, and the connection is connected with their mailbox', async () => {
    const contoso = await env.createDirectory('Contoso');
    const connection = await env.createConnection({ customerId: 'browser-delegated', mode: 'delegated' });
    const page = await newPage();

    const opened = await page.goto(await env.link(connection));
    expect(opened?.status()).toBe(200);
    const landing = await ourPage(page, 'delegated-landing');
    expect(landing.heading).toBe(`Connect Microsoft 365 mail to ${VENDOR_NAME}`);
    expect(landing.text).toContain('Customer browser-delegated');
    expect(landing.text).toContain('Send email as you.');
    expect(landing.text).toContain('This link works until');

    await continueToMicrosoft(page, 'delegated');
    // The authorize request: the code flow with PKCE, answered by form_post to our callback.
    const authorize = new URL(page.url());
    expect(authorize.pathname).toBe('/organizations/oauth2/v2.0/authorize');
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      client_id: env.clientId,
      response_type: 'code',
      response_mode: 'form_post',
      redirect_uri: `${connector}/api/connect/callback`,
      code_challenge_method: 'S256',
      prompt: 'select_account',
    });
    await pickAccount(page, contoso.user.userPrincipalName);
    await signInPage(page, 'Permissions requested', 'delegated-consent');
    expect(await page.locator('main').innerText()).toContain(`signed in as ${contoso.user.userPrincipalName}`);
    await clickBackTo(page, 'Accept', RESULT());

    const result = await ourPage(page, 'delegated-connected');
    expect(result.status).toBe(200);
    expect(result.heading).toBe('Microsoft 365 is connected');
    expect(await facts(page)).toMatchObject({
      Organization: `Tenant ID ${contoso.tenant.id}`,
      'Signed-in account': contoso.user.userPrincipalName,
      Mailboxes: contoso.user.userPrincipalName,
    });

    const connected = await env.connection(connection);
    expect(connected).toMatchObject(connectedByUser(contoso));
    expect(connected.granted).toEqual(expect.arrayContaining(['https://graph.microsoft.com/Mail.Send', 'https://graph.microsoft.com/Mail.ReadWrite']));
    expect(await env.tokenCache(connection.id)).toContain('RefreshToken');

    // The result is a GET: a reload shows it again without repeating the used sign-in.
    await page.reload();
    expect((await ourPage(page, 'delegated-connected-reloaded', { checked: true })).heading).toBe('Microsoft 365 is connected');
    expect((await eventsOf(connection)).map((event) => event.type)).toEqual(['connection.created', 'connection.state_changed']);
  });

  it('application with IMAP and SMTP: the administrator consents for the organization and gets the Exchange PowerShell', async () => {
    const northwind = await env.createDirectory('Northwind');
    const mailbox = `support@${northwind.domain}`;
    const connection = await env.createConnection({ customerId: 'browser-application', mode: 'application', transports: { send: 'smtp', receive: 'imap' }, mailboxes: [mailbox] });
    const page = await newPage();

    await page.goto(await env.link(connection));
    const landing = await ourPage(page, 'application-landing');
    expect(landing.status).toBe(200);
    expect(landing.heading).toBe(`Connect Microsoft 365 mail to ${VENDOR_NAME}`);
    expect(landing.text).toContain('An administrator grants access for the whole organization.');
    expect(landing.text).toContain('Read and manage email over IMAP in the mailboxes an Exchange administrator opens to it.');
    expect(landing.text).toContain('an Exchange administrator will also need to run a few PowerShell commands afterwards');

    // First a sign-in (the admin's own profile), so the connector learns the tenant and the admin's
    // directory roles from tokens it redeemed…
    await continueToMicrosoft(page, 'application');
    await pickAccount(page, northwind.admin.userPrincipalName);
    await signInPage(page, 'Permissions requested', 'application-sign-in-consent');
    expect(await page.locator('main').innerText()).toContain('User.Read');
    await page.getByRole('button', { name: 'Accept', exact: true }).click();
    // …then admin consent at that tenant.
    await signInPage(page, 'Pick an account', 'application-admin-consent-pick-account');
    const adminConsent = new URL(page.url());
    expect(adminConsent.pathname).toBe(`/${northwind.tenant.id}/v2.0/adminconsent`);
    expect(adminConsent.searchParams.get('redirect_uri')).toBe(`${connector}/api/connect/admin-callback`);
    await pickAccount(page, northwind.admin.userPrincipalName);
    await signInPage(page, 'Permissions requested', 'application-admin-consent');
    const consentText = await page.locator('main').innerText();
    expect(consentText).toContain('Accept for your organization (Northwind)');
    expect(consentText).toContain('As the app itself, with no signed-in user');
    await clickBackTo(page, 'Accept', RESULT());

    const consent = (await env.sandbox.control.listConsents(northwind.tenant.id)).find((c) => c.clientId === env.clientId);
    expect(consent?.servicePrincipalId).toMatch(/^[0-9a-f-]{36}$/);
    const servicePrincipalId = consent?.servicePrincipalId ?? '';

    const result = await ourPage(page, 'application-exchange-setup');
    expect(result.status).toBe(200);
    expect(result.heading).toBe('One more step in Exchange Online');
    const script = await page.locator('pre.copy').innerText();
    expect(script).toContain(`New-ServicePrincipal -AppId '${env.clientId}' -ObjectId '${servicePrincipalId}' -DisplayName '${VENDOR_NAME}'`);
    expect(script).toContain(`Add-MailboxPermission -Identity '${mailbox}' -User '${servicePrincipalId}' -AccessRights FullAccess`);
    expect(script).toContain(`Add-RecipientPermission -Identity '${mailbox}' -Trustee '${servicePrincipalId}' -AccessRights SendAs`);
    expect(script).toContain(`Set-CASMailbox -Identity '${mailbox}' -SmtpClientAuthenticationDisabled $false`);
    expect(script).toContain(`Connect-ExchangeOnline -Organization '${northwind.tenant.id}'`);
    expect(result.text).toContain(`${northwind.tenant.id} is your organization’s tenant ID.`);
    expect(result.text).toContain('BAD User is authenticated but not connected.');

    // Once the commands have run, the administrator checks from the same page: the app's token
    // comes from the sandbox, and IMAP and SMTP, with no mail server to reach, say why they failed.
    const resultPath = new URL(page.url()).pathname;
    await Promise.all([page.waitForURL(CHECKED()), page.getByRole('button', { name: 'Check again' }).click()]);
    const checked = await ourPage(page, 'application-exchange-check');
    expect(checked.status).toBe(200);
    expect(checked.heading).toBe('One more step in Exchange Online');
    const outcome = await page.locator('#check').innerText();
    expect(outcome).toContain('2 of 3 checks failed.');
    expect(outcome).toContain('✓ Access token for Exchange Online: works');
    expect(outcome).toContain(`✗ IMAP for ${mailbox}: failed`);
    expect(outcome).toContain(`✗ SMTP for ${mailbox}: failed`);
    for (const protocol of ['imap', 'smtp'] as const) {
      const { host, port } = env.identity.msal.app('default').cloud[protocol];
      const cause = describeProbeCause('network_unreachable', { protocol, mode: 'application', mailbox, endpoint: `${host} port ${String(port)}` });
      expect(cause.nextStep).toContain(`${host} port ${String(port)}`);
      expect(outcome).toContain(cause.explanation);
      expect(outcome).toContain(`What to do: ${cause.nextStep}`);
    }
    // The answer to the POST switches language through the result's GET address, never repeating the check.
    expect(await page.getByRole('link', { name: 'Español' }).getAttribute('href')).toBe(`${resultPath}?lang=es`);
    const lastCheckAt = async () => (await env.services.repositories.connectResults.get(stateKey(resultPath.slice(-43))))?.value.lastCheckAt;
    const firstCheckAt = await lastCheckAt();
    expect(firstCheckAt).toBeDefined();

    // Pressed again at once, the page asks for a moment instead of checking again.
    await Promise.all([page.waitForURL(CHECKED()), page.getByRole('button', { name: 'Check again' }).click()]);
    const wait = await ourPage(page, 'application-exchange-check-wait');
    expect(wait.status).toBe(429);
    expect(wait.text).toContain('A check ran a few seconds ago. Wait a moment, then check again.');
    expect(wait.text).not.toContain('checks failed');
    expect(await lastCheckAt()).toBe(firstCheckAt);

    const connected = await env.connection(connection);
    expect(connected).toMatchObject({ state: 'connected', tenantId: northwind.tenant.id, servicePrincipalId });
    expect(connected.granted).toEqual(expect.arrayContaining(['IMAP.AccessAsApp', 'SMTP.SendAsApp']));
    expect(connected.account).toBeUndefined();
    const changed = (await eventsOf(connection)).find((event) => event.type === 'connection.state_changed');
    expect(changed?.data).toMatchObject({ from: 'pending', to: 'connected', grantedBy: { upn: northwind.admin.userPrincipalName } });
    // App-only access has no user's tokens to keep.
    expect(await env.tokenCache(connection.id)).toBeUndefined();
  });

  it('declined: cancelling on Microsoft’s page explains how to retry, and nothing is connected', async () => {
    const declining = await env.createDirectory('Declining Org');
    const connection = await env.createConnection({ customerId: 'browser-declined', mode: 'delegated' });
    const page = await newPage();

    await page.goto(await env.link(connection));
    await continueToMicrosoft(page, 'declined');
    await pickAccount(page, declining.user.userPrincipalName);
    await signInPage(page, 'Permissions requested', 'declined-consent');
    await clickBackTo(page, 'Cancel', RESULT());

    const declined = await ourPage(page, 'declined-result');
    expect(declined.status).toBe(200);
    expect(declined.heading).toBe('Nothing was connected');
    expect(declined.text).toContain(`The request was cancelled on Microsoft’s page, so ${VENDOR_NAME} did not get any access.`);
    expect(declined.text).toContain('start again and choose Accept');
    expect(declined.text).toContain('AADSTS65004');
    expect(await stored(connection)).toEqual(NOTHING_STORED);

    // "Try again" starts over with a fresh link to the same connection.
    const retry = page.getByRole('link', { name: 'Try again' });
    expect(await retry.getAttribute('href')).toMatch(LANDING());
    await Promise.all([page.waitForURL(LANDING()), retry.click()]);
    const again = await ourPage(page, 'declined-retry-landing', { checked: true });
    expect(again.heading).toBe(`Connect Microsoft 365 mail to ${VENDOR_NAME}`);
    expect(again.text).toContain('Customer browser-declined');
    expect(await stored(connection)).toEqual(NOTHING_STORED);
  });

  it('needs admin approval: the user forwards the admin link, the administrator grants, then the user connects', async () => {
    const blocked = await env.createDirectory('Blocked Org');
    await env.sandbox.control.setTenantPolicies(blocked.tenant.id, { userConsentBlocked: true });
    const connection = await env.createConnection({ customerId: 'browser-needs-admin', mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });
    const userPage = await newPage();

    await userPage.goto(await env.link(connection));
    await continueToMicrosoft(userPage, 'needs-admin');
    await pickAccount(userPage, blocked.user.userPrincipalName);
    await signInPage(userPage, 'Need admin approval', 'needs-admin-microsoft-interrupt');
    await clickBackTo(userPage, 'Return to the application without granting consent', RESULT());

    const needed = await ourPage(userPage, 'needs-admin-approval-needed');
    expect(needed.status).toBe(403);
    expect(needed.heading).toBe(`An administrator needs to approve ${VENDOR_NAME}`);
    expect(needed.text).toContain('AADSTS90094');
    expect(needed.text).toContain('Cloud Application Administrator');
    const adminLink = (await userPage.getByRole('link', { name: 'Link for your administrator' }).getAttribute('href')) ?? '';
    expect(adminLink).toMatch(LANDING());
    // The same link as text to paste into a message.
    expect((await userPage.locator('pre.copy').innerText()).trim()).toBe(adminLink);
    expect(await env.connection(connection)).toMatchObject({ state: 'needs_admin', stateReason: { code: 'AADSTS90094' } });
    expect(await env.tokenCache(connection.id)).toBeUndefined();

    // The administrator opens the forwarded link in their own browser.
    const adminPage = await newPage();
    await adminPage.goto(adminLink);
    const approve = await ourPage(adminPage, 'needs-admin-admin-landing');
    expect(approve.heading).toBe(`Approve ${VENDOR_NAME} for your organization`);
    expect(approve.text).toContain('Nothing is connected yet');
    await continueToMicrosoft(adminPage, 'needs-admin-admin');
    expect(new URL(adminPage.url()).pathname).toBe('/organizations/v2.0/adminconsent');
    await pickAccount(adminPage, blocked.admin.userPrincipalName);
    await signInPage(adminPage, 'Permissions requested', 'needs-admin-admin-consent');
    expect(await adminPage.locator('main').innerText()).toContain('Accept for your organization (Blocked Org)');
    await clickBackTo(adminPage, 'Accept', RESULT());

    const granted = await ourPage(adminPage, 'needs-admin-admin-granted');
    expect(granted.status).toBe(200);
    expect(granted.heading).toBe(`${VENDOR_NAME} is approved for your organization`);
    expect(granted.text).toContain('No mailbox is connected yet.');
    expect(await adminPage.getByRole('link', { name: 'Connect a mailbox' }).getAttribute('href')).toMatch(LANDING());
    expect((await env.sandbox.control.listConsents(blocked.tenant.id))[0]?.delegated[0]).toMatchObject({ principal: 'AllPrincipals' });
    // The grant connects nothing by itself.
    expect(await env.connection(connection)).toMatchObject({ state: 'needs_admin' });

    // Back in the user's browser: "Try again" on the page they were left on, and Microsoft asks nothing more.
    await Promise.all([userPage.waitForURL(LANDING()), userPage.getByRole('link', { name: 'Try again' }).click()]);
    expect((await ourPage(userPage, 'needs-admin-retry-landing', { checked: true })).heading).toBe(`Connect Microsoft 365 mail to ${VENDOR_NAME}`);
    await continueToMicrosoft(userPage, 'needs-admin-retry');
    await Promise.all([userPage.waitForURL(RESULT()), pickAccount(userPage, blocked.user.userPrincipalName)]);
    const connected = await ourPage(userPage, 'needs-admin-connected');
    expect(connected.heading).toBe('Microsoft 365 is connected');
    expect(await facts(userPage)).toMatchObject({ 'Signed-in account': blocked.user.userPrincipalName });
    expect(await env.connection(connection)).toMatchObject({ state: 'connected', tenantId: blocked.tenant.id, account: { upn: blocked.user.userPrincipalName } });
    expect(await env.tokenCache(connection.id)).toContain('RefreshToken');
  });

  it('an expired or altered link shows "link invalid" (410) and leads nowhere', async () => {
    const connection = await env.createConnection({ customerId: 'browser-links', mode: 'delegated' });
    const { genuine: link, ...broken } = await env.badLinks(connection);
    const page = await newPage();

    for (const [shot, bad, reason] of [
      ['expired', broken.expired, 'The link has expired.'],
      ['tampered-signature', broken.alteredSignature, 'The link is incomplete or was changed.'],
      ['tampered-payload', broken.alteredPayload, 'The link is incomplete or was changed.'],
      ['cut-short', link.slice(0, -10), 'The link is incomplete or was changed.'],
    ] as const) {
      const response = await page.goto(bad);
      expect(response?.status(), shot).toBe(410);
      // One axe check per reason: the other altered links show the same page.
      const shown = await ourPage(page, `expired-link-${shot}`, { checked: shot === 'tampered-payload' || shot === 'cut-short' });
      expect(shown.heading).toBe('This link cannot be used');
      expect(shown.text).toContain(reason);
      expect(shown.text).toContain(`Ask ${VENDOR_NAME} for a new link.`);
      expect(await page.getByRole('button').count(), 'no way on to Microsoft').toBe(0);
    }
    expect(await stored(connection)).toEqual(NOTHING_STORED);
    // The genuine link still works.
    await page.goto(link);
    expect((await ourPage(page, 'expired-link-genuine', { checked: true })).heading).toBe(`Connect Microsoft 365 mail to ${VENDOR_NAME}`);
  });

  it('a landing page left open past its link’s expiry refuses to go on to Microsoft', async () => {
    const connection = await env.createConnection({ customerId: 'browser-short-ttl', mode: 'delegated' });
    // A link that expires within three seconds (links carry their expiry in whole seconds), opened in time.
    const page = await newPage();
    const short = new ConsentLinks(new ConnectorKeys(env.services.secrets), env.baseUrl, 3_000, () => new Date());
    const issued = await short.issue(connection.customerId, connection.id, 'connect');
    await page.goto(issued.url);
    expect((await ourPage(page, 'short-ttl-landing')).heading).toBe(`Connect Microsoft 365 mail to ${VENDOR_NAME}`);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, issued.expiresAt.getTime() - Date.now()) + 50));
    await page.getByRole('button', { name: 'Continue to Microsoft' }).click();
    await page.getByRole('heading', { level: 1, name: 'This link cannot be used' }).waitFor();
    expect(page.url()).toBe(issued.url);
    const refused = await ourPage(page, 'short-ttl-expired');
    expect(refused.status).toBe(410);
    expect(refused.text).toContain('The link has expired.');
    expect(await stored(connection)).toEqual(NOTHING_STORED);
  });

  it('follows the browser’s language (pt-BR), switches language on our pages, and keeps the chosen language through Microsoft', async () => {
    const brasil = await env.createDirectory('Contoso Brasil');
    const connection = await env.createConnection({ customerId: 'browser-pt-br', mode: 'delegated' });
    const page = await newPage({ locale: 'pt-BR' });
    const link = await env.link(connection);

    await page.goto(link);
    const landing = await ourPage(page, 'language-landing-pt-BR', { lang: 'pt-BR' });
    expect(landing.heading).toBe(`Conectar o email do Microsoft 365 a ${VENDOR_NAME}`);
    expect(await page.locator('nav a[aria-current="true"]').innerText()).toBe('Português (Brasil)');

    await Promise.all([page.waitForURL(/[?&]lang=es$/), page.getByRole('link', { name: 'Español' }).click()]);
    const spanish = await ourPage(page, 'language-landing-es', { lang: 'es' });
    expect(spanish.heading).toBe(`Conectar el correo de Microsoft 365 con ${VENDOR_NAME}`);
    await Promise.all([page.waitForURL(/[?&]lang=pt-BR$/), page.getByRole('link', { name: 'Português (Brasil)' }).click()]);
    expect((await ourPage(page, 'language-landing-pt-BR-again', { lang: 'pt-BR', checked: true })).heading).toBe(landing.heading);
    await Promise.all([page.waitForURL(/[?&]lang=es$/), page.getByRole('link', { name: 'Español' }).click()]);

    // Spanish was chosen on the landing page: the result after Microsoft's pages is in Spanish too,
    // although the browser still asks for Portuguese.
    await continueToMicrosoft(page, 'language', 'Continuar en Microsoft');
    await pickAccount(page, brasil.user.userPrincipalName);
    await signInPage(page, 'Permissions requested', 'language-consent');
    await clickBackTo(page, 'Accept', RESULT());
    const result = await ourPage(page, 'language-connected-es', { lang: 'es' });
    expect(result.heading).toBe('Microsoft 365 está conectado');

    // The result page is a GET: another language shows the same result.
    const resultUrl = new URL(page.url());
    await Promise.all([page.waitForURL(/[?&]lang=en$/), page.getByRole('link', { name: 'English' }).click()]);
    expect(new URL(page.url()).pathname).toBe(resultUrl.pathname);
    const english = await ourPage(page, 'language-connected-en');
    expect(english.heading).toBe('Microsoft 365 is connected');
    expect(await facts(page)).toMatchObject({ 'Signed-in account': brasil.user.userPrincipalName });
    expect(await env.connection(connection)).toMatchObject({ state: 'connected', tenantId: brasil.tenant.id });
  });
});
