import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { exchangeSetup } from '../../src/domain/exchange-setup.js';
import { LOCALES, negotiateLocale, pageHeaders, renderPage, type PageKind, type PageModel } from '../../src/pages/index.js';
import { axeViolations, browserTestsSkipReason, launchChromium, preloadAxe, refuseOtherOrigins, saveScreenshot } from '../support/chromium.js';
import { closeServer } from '../support/close-server.js';

/**
 * The customer-admin pages as a browser shows them: served by a tiny local server with the
 * Content-Security-Policy they are meant to get, opened in headless Chromium, checked with axe-core,
 * clicked through (language switch, the landing page's POST without JavaScript), photographed, and
 * never allowed to fetch anything from another origin.
 */

const VENDOR = 'Acme Helpdesk';
const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const APP_ID = '00001111-aaaa-2222-bbbb-3333cccc4444';
const LANDING_FIELDS = { link: 'eyJjb24iOiJjb25fMDEifQ.sig', nonce: 'n-"quoted"-&-<angled>' };

/** One page of each kind, as the handlers would fill it in for a request to `url`. */
function samplePage(kind: PageKind, url: string): PageModel {
  const base = { vendorName: VENDOR, url };
  const reference = { requestId: '01JD0Q3W6RZ9X4T5Y6U7I8O9P0', traceId: '0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6', occurredAt: new Date('2025-11-22T17:40:00Z') };
  const retryUrl = '/pages/landing?token=abc';
  switch (kind) {
    case 'landing':
      return {
        ...base,
        kind,
        customerName: `Contoso <img src=/x onerror=alert(1)> & "Partners"`,
        mode: 'application',
        permissions: ['Mail.Send', 'IMAP.AccessAsApp', 'SMTP.SendAsApp'],
        expiresAt: new Date('2025-12-01T09:30:00Z'),
        continueTo: { action: '/continue', fields: LANDING_FIELDS },
      };
    case 'connected':
      return {
        ...base,
        kind,
        mode: 'delegated',
        tenant: { id: TENANT_ID, name: 'Contoso' },
        account: 'megan@contoso.com',
        permissions: ['https://graph.microsoft.com/Mail.Send', 'https://graph.microsoft.com/Mail.ReadWrite', 'offline_access'],
        mailboxes: ['megan@contoso.com', 'support@contoso.com'],
      };
    case 'exchange-app-setup':
      return {
        ...base,
        kind,
        tenant: { id: TENANT_ID, name: 'Contoso' },
        setup: exchangeSetup({
          tenantId: TENANT_ID,
          appId: APP_ID,
          servicePrincipalObjectId: '6a2b0c6e-9f1d-4b7e-8c3a-5d4e3f2a1b0c',
          displayName: VENDOR,
          mailboxes: [
            { address: 'support@contoso.com', protocols: ['imap', 'smtp'] },
            { address: "o'brien@contoso.com", protocols: ['imap'] },
          ],
          enableSmtpClientAuthentication: true,
        }),
      };
    case 'admin-approval-needed':
      return {
        ...base,
        kind,
        adminConsentUrl: `https://login.microsoftonline.com/organizations/v2.0/adminconsent?client_id=${APP_ID}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&redirect_uri=https%3A%2F%2Fconnector.example%2Fconsent%2Fadmin&state=a-long-state-value`,
        permissions: ['https://graph.microsoft.com/.default'],
        retryUrl,
        reference: { ...reference, aadsts: 90094 },
      };
    case 'admin-granted':
      return { ...base, kind, retryUrl };
    case 'declined':
      return { ...base, kind, retryUrl };
    case 'wrong-account':
      return { ...base, kind, reason: 'other-tenant', expected: `Contoso (${TENANT_ID})`, actual: 'Fabrikam (0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0)', retryUrl, reference };
    case 'link-invalid':
      return { ...base, kind, reason: 'expired', reference: { requestId: reference.requestId } };
    case 'sign-in-error':
      return { ...base, kind, retryUrl, reference: { ...reference, aadsts: 53003 } };
    case 'unexpected-error':
      return { ...base, kind, reference };
  }
}

const KINDS: readonly PageKind[] = [
  'landing',
  'connected',
  'exchange-app-setup',
  'admin-approval-needed',
  'admin-granted',
  'declined',
  'wrong-account',
  'link-invalid',
  'sign-in-error',
  'unexpected-error',
];

/** The little of the DOM these tests read in the page (the project compiles without the DOM library). */
interface PageGlobals {
  document: {
    querySelector(selector: string): object | null;
    activeElement: { matches(selector: string): boolean } | null;
    documentElement: { scrollWidth: number; clientWidth: number };
  };
  getComputedStyle(element: object): { getPropertyValue(property: string): string };
}

/** A computed style property of the first element matching `selector`. */
function computedStyle(page: Page, selector: string, property: string): Promise<string> {
  return page.evaluate(
    ([target, name]) => {
      const globals = globalThis as unknown as PageGlobals;
      const element = globals.document.querySelector(target);
      return element === null ? '' : globals.getComputedStyle(element).getPropertyValue(name);
    },
    [selector, property] as const,
  );
}

/** Whether keyboard focus is on an element matching `selector`. */
function focusIsOn(page: Page, selector: string): Promise<boolean> {
  return page.evaluate((target) => (globalThis as unknown as PageGlobals).document.activeElement?.matches(target) ?? false, selector);
}

async function readForm(request: IncomingMessage): Promise<Record<string, string>> {
  let body = '';
  for await (const chunk of request) body += String(chunk);
  return Object.fromEntries(new URLSearchParams(body));
}

const skipReason = browserTestsSkipReason();

describe.skipIf(skipReason !== undefined)('customer-admin pages in Chromium', () => {
  let browser: Browser;
  let server: Server;
  let origin: string;
  const posts: { path: string; contentType: string | undefined; fields: Record<string, string> }[] = [];
  const tracking: { refused: string[]; dialogs: string[] }[] = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      void (async () => {
        const url = new URL(request.url ?? '/', 'http://localhost');
        const locale = negotiateLocale(request.headers['accept-language'] ?? null, url.searchParams.get('lang') ?? undefined);
        let page: PageModel;
        if (request.method === 'POST' && url.pathname === '/continue') {
          posts.push({ path: url.pathname, contentType: request.headers['content-type'], fields: await readForm(request) });
          page = samplePage('connected', '/pages/connected');
        } else {
          const kind = KINDS.find((candidate) => url.pathname === `/pages/${candidate}`);
          page = kind === undefined ? samplePage('link-invalid', request.url ?? '/') : samplePage(kind, request.url ?? '/');
        }
        const rendered = renderPage(page, locale);
        response.writeHead(rendered.status, pageHeaders(locale));
        response.end(rendered.html);
      })();
    });
    server.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 900_000);

  afterAll(async () => {
    await browser.close();
    await closeServer(server);
  });

  /**
   * A context whose requests to other origins fail and are recorded, and whose dialogs (alert())
   * are recorded; after each test both lists must be empty.
   */
  async function newContext(options: BrowserContextOptions = {}): Promise<BrowserContext> {
    const context = await browser.newContext(options);
    const tracked = { refused: await refuseOtherOrigins(context, origin), dialogs: [] as string[] };
    context.on('page', (page) => {
      page.on('dialog', (dialog) => {
        tracked.dialogs.push(dialog.message());
        void dialog.dismiss();
      });
    });
    tracking.push(tracked);
    return context;
  }

  afterEach(() => {
    const refused = tracking.flatMap(({ refused: urls }) => urls.splice(0));
    const dialogs = tracking.flatMap(({ dialogs: messages }) => messages.splice(0));
    expect(refused, 'requests to other origins').toEqual([]);
    expect(dialogs, 'dialogs opened by the page').toEqual([]);
  });

  async function open(page: Page, path: string): Promise<void> {
    const response = await page.goto(`${origin}${path}`);
    expect(response?.headers()['content-type']).toBe('text/html; charset=utf-8');
  }

  describe.each(LOCALES)('in %s', (locale) => {
    let context: BrowserContext;
    let page: Page;

    beforeAll(async () => {
      // axe is a script, which the pages' policy forbids; another test checks the policy itself.
      context = await newContext({ bypassCSP: true, extraHTTPHeaders: { 'Accept-Language': `${locale},en;q=0.1` } });
      await preloadAxe(context);
      page = await context.newPage();
    });

    afterAll(async () => {
      await context.close();
    });

    it.each(KINDS)('%s has no accessibility violations and is in the reader’s language', async (kind) => {
      await open(page, `/pages/${kind}`);
      expect(await page.getAttribute('html', 'lang')).toBe(locale);
      expect(await page.locator('h1').count()).toBe(1);
      expect(await page.locator('main').count()).toBe(1);
      expect(await axeViolations(page)).toEqual([]);
      await saveScreenshot(page, `pages-${kind}-${locale}`);
    });
  });

  it('every page fits a phone screen without sideways scrolling', async () => {
    const context = await newContext({ viewport: { width: 360, height: 740 }, extraHTTPHeaders: { 'Accept-Language': 'pt-BR' } });
    const page = await context.newPage();
    for (const kind of KINDS) {
      await open(page, `/pages/${kind}`);
      const overflow = await page.evaluate(() => {
        const root = (globalThis as unknown as PageGlobals).document.documentElement;
        return root.scrollWidth - root.clientWidth;
      });
      expect(overflow, kind).toBeLessThanOrEqual(0);
      await saveScreenshot(page, `pages-${kind}-phone`);
    }
    await context.close();
  });

  it('runs under its Content-Security-Policy: styled by the allowed style sheet, nothing refused', async () => {
    const context = await newContext();
    const page = await context.newPage();
    // Chromium reports what a policy blocks on the console ("Refused to apply inline style…").
    const refusals: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) refusals.push(message.text());
    });
    for (const kind of KINDS) {
      await open(page, `/pages/${kind}`);
      // The top band comes from the inline style sheet: it applies only if the policy's hash matches.
      expect(await computedStyle(page, 'main', 'border-top-width'), kind).toMatch(/^5(\.\d+)?px$/);
      expect(refusals, kind).toEqual([]);
    }
    await context.close();
  });

  it('switches language with the links in the footer, keeping the other query parameters', async () => {
    const context = await newContext({ extraHTTPHeaders: { 'Accept-Language': 'es-MX,es;q=0.9' } });
    const page = await context.newPage();
    await open(page, '/pages/landing?token=a%2Bb&x=1');
    expect(await page.getAttribute('html', 'lang')).toBe('es');
    expect(await page.locator('h1').textContent()).toBe(`Conectar el correo de Microsoft 365 con ${VENDOR}`);
    expect(await page.locator('nav a[aria-current="true"]').textContent()).toBe('Español');

    await page.getByRole('link', { name: 'Português (Brasil)' }).click();
    await page.waitForURL(/lang=pt-BR/);
    expect(new URL(page.url()).search).toBe('?token=a%2Bb&x=1&lang=pt-BR');
    expect(await page.getAttribute('html', 'lang')).toBe('pt-BR');
    expect(await page.locator('h1').textContent()).toBe(`Conectar o email do Microsoft 365 a ${VENDOR}`);

    await page.getByRole('link', { name: 'English' }).click();
    await page.waitForURL(/lang=en/);
    expect(new URL(page.url()).search).toBe('?token=a%2Bb&x=1&lang=en');
    expect(await page.locator('h1').textContent()).toBe(`Connect Microsoft 365 mail to ${VENDOR}`);
    await context.close();
  });

  it('the landing button posts its hidden fields, by keyboard, without JavaScript', async () => {
    const context = await newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await open(page, '/pages/landing');
    // Outside values stay text even when the browser parses them.
    expect(await page.locator('img, script').count()).toBe(0);
    expect(await page.locator('.lead').textContent()).toContain('Contoso <img src=/x onerror=alert(1)> & "Partners"');

    for (let presses = 0; presses < 20 && !(await focusIsOn(page, 'button[type="submit"]')); presses++) await page.keyboard.press('Tab');
    expect(await focusIsOn(page, 'button[type="submit"]')).toBe(true);
    expect(await page.locator('button').textContent()).toBe('Continue to Microsoft');
    await saveScreenshot(page, 'pages-landing-button-focused');

    posts.length = 0;
    await Promise.all([page.waitForURL(`${origin}/continue`), page.keyboard.press('Enter')]);
    expect(posts).toEqual([{ path: '/continue', contentType: 'application/x-www-form-urlencoded', fields: LANDING_FIELDS }]);
    expect(await page.locator('h1').textContent()).toBe('Microsoft 365 is connected');
    await context.close();
  });

  it('shows keyboard focus clearly on links and the button', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await open(page, '/pages/landing');
    await page.keyboard.press('Tab');
    expect(await focusIsOn(page, 'button')).toBe(true);
    expect(await computedStyle(page, 'button:focus-visible', 'outline')).toMatch(/solid 3px$/);
    await page.keyboard.press('Tab');
    expect(await focusIsOn(page, 'footer a')).toBe(true);
    expect(await computedStyle(page, 'footer a:focus-visible', 'outline')).toMatch(/solid 3px$/);
    await saveScreenshot(page, 'pages-landing-link-focused');
    await context.close();
  });
});
