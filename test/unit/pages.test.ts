import { describe, expect, it } from 'vitest';
import { describeProbeCause } from '../../src/domain/connectivity.js';
import { exchangeSetup } from '../../src/domain/exchange-setup.js';
import { escapeHtml, html, raw, safeUrl } from '../../src/pages/html.js';
import { CATALOGS, formatDateTime, LOCALES, negotiateLocale, t, type Locale } from '../../src/pages/i18n.js';
import { contentSecurityPolicy, languageHref, pageHeaders } from '../../src/pages/layout.js';
import { en } from '../../src/pages/messages/en.js';
import { LINK_INVALID_REASONS, type PageKind, type PageModel } from '../../src/pages/model.js';
import { renderPage } from '../../src/pages/render.js';

const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const APP_ID = '00001111-aaaa-2222-bbbb-3333cccc4444';
const SERVICE_PRINCIPAL_ID = '6a2b0c6e-9f1d-4b7e-8c3a-5d4e3f2a1b0c';
const ADMIN_CONSENT_URL = `https://login.microsoftonline.com/organizations/v2.0/adminconsent?client_id=${APP_ID}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&redirect_uri=https%3A%2F%2Fconnector.example%2Fconsent%2Fadmin`;

/** What outside parties control on a page: the vendor's and customer's names, accounts, tenants. */
interface Outside {
  vendor: string;
  customer: string;
  tenantName: string;
  account: string;
  mailbox: string;
  url: string;
}

const ORDINARY: Outside = {
  vendor: 'Acme Helpdesk',
  customer: 'Contoso Ltd',
  tenantName: 'Contoso',
  account: 'megan@contoso.com',
  mailbox: 'support@contoso.com',
  url: '/connect/landing?token=abc.def&x=1',
};

const HOSTILE: Outside = {
  vendor: '<script>alert("vendor")</script>',
  customer: `"'><img src=x onerror=alert(1)>`,
  tenantName: '</title><script>alert(2)</script>',
  account: `megan"@contoso.com' onmouseover='alert(3)`,
  mailbox: "o'brien<b>@contoso.com",
  url: '/connect/landing?token="><script>alert(4)</script>',
};

type PageOf<Kind extends PageKind> = Extract<PageModel, { kind: Kind }>;

/** One page of each kind, filled with `values`. */
function pages(values: Outside): { [Kind in PageKind]: PageOf<Kind> } {
  const base = { vendorName: values.vendor, url: values.url };
  const reference = {
    requestId: '01JD0Q3W6RZ9X4T5Y6U7I8O9P0',
    traceId: '0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6',
    correlationId: 'f6e5d4c3-b2a1-4098-8f7e-6d5c4b3a2f1e',
    occurredAt: new Date('2025-11-22T17:40:00Z'),
  };
  return {
    landing: {
      ...base,
      kind: 'landing',
      customerName: values.customer,
      mode: 'delegated',
      permissions: [
        'openid',
        'profile',
        'offline_access',
        'https://graph.microsoft.com/User.Read',
        'https://outlook.office.com/IMAP.AccessAsUser.All',
        'https://outlook.office.com/SMTP.Send',
      ],
      expiresAt: new Date('2025-12-01T09:30:00Z'),
      continueTo: { action: '/connect/start', fields: { link: values.url, nonce: `n"${values.customer}` } },
      expectedAccount: values.account,
    },
    connected: {
      ...base,
      kind: 'connected',
      mode: 'delegated',
      tenant: { id: TENANT_ID, name: values.tenantName },
      account: values.account,
      permissions: ['https://graph.microsoft.com/Mail.Send', 'https://graph.microsoft.com/Mail.ReadWrite', 'offline_access'],
      mailboxes: [values.account, values.mailbox],
    },
    'exchange-app-setup': {
      ...base,
      kind: 'exchange-app-setup',
      tenant: { id: TENANT_ID, name: values.tenantName },
      setup: exchangeSetup({
        tenantId: TENANT_ID,
        appId: APP_ID,
        servicePrincipalObjectId: SERVICE_PRINCIPAL_ID,
        displayName: values.vendor,
        mailboxes: [
          { address: values.mailbox, protocols: ['imap', 'smtp'] },
          { address: 'billing@contoso.com', protocols: ['pop'] },
        ],
        enableSmtpClientAuthentication: true,
        smtpScope: { name: `${values.vendor} senders`, groupDistinguishedName: "CN=O'Brien Team,OU=Groups,DC=contoso,DC=com" },
      }),
      check: {
        action: '/connect/result/abc/check?lang=en#check',
        result: {
          connectionId: 'con_01JD0Q3W6RZ9X4T5Y6U7I8O9P0',
          state: 'connected',
          checkedAt: '2025-11-22T17:45:00.000Z',
          ok: false,
          steps: [
            { step: 'token', resource: 'outlook', outcome: 'ok', durationMs: 120 },
            {
              step: 'imap',
              mailbox: values.mailbox,
              outcome: 'failed',
              durationMs: 310,
              cause: { code: 'not_connected', ...describeProbeCause('not_connected', { protocol: 'imap', mode: 'application', mailbox: values.mailbox }) },
              serverText: `A1 BAD User is authenticated but not connected. ${values.account}`,
            },
            {
              step: 'smtp',
              mailbox: values.mailbox,
              outcome: 'failed',
              durationMs: 12,
              cause: { code: 'network_unreachable', microsoftCode: 'ECONNREFUSED', ...describeProbeCause('network_unreachable', { protocol: 'smtp', mode: 'application' }) },
            },
          ],
        },
      },
    },
    'admin-approval-needed': {
      ...base,
      kind: 'admin-approval-needed',
      adminConsentUrl: ADMIN_CONSENT_URL,
      permissions: ['https://graph.microsoft.com/Mail.Send', 'offline_access'],
      retryUrl: '/connect/landing?token=abc.def',
      reference: { ...reference, aadsts: 90094 },
    },
    'admin-granted': { ...base, kind: 'admin-granted', retryUrl: '/connect/landing?token=fresh' },
    declined: { ...base, kind: 'declined', retryUrl: '/connect/landing?token=abc.def', reference: { ...reference, oauthError: 'access_denied' } },
    'wrong-account': {
      ...base,
      kind: 'wrong-account',
      reason: 'other-user',
      expected: values.account,
      actual: `someone.else@${values.tenantName}`,
      retryUrl: '/connect/landing?token=abc.def',
      reference,
    },
    'link-invalid': { ...base, kind: 'link-invalid', reason: 'expired', reference: { requestId: reference.requestId } },
    'sign-in-error': { ...base, kind: 'sign-in-error', retryUrl: '/connect/landing?token=abc.def', reference: { ...reference, aadsts: 53003 } },
    'unexpected-error': { ...base, kind: 'unexpected-error', reference: { requestId: reference.requestId, occurredAt: reference.occurredAt } },
  };
}

const KINDS = Object.keys(pages(ORDINARY)) as PageKind[];

function placeholdersOf(text: string): string[] {
  return [...text.matchAll(/\{(\w+)\}/g)].map((match) => match[1] ?? '').sort();
}

/** The document without its style sheet: what the reader sees, and where markup could be injected. */
function withoutStyle(document: string): string {
  return document.replace(/<style>[\s\S]*?<\/style>/, '');
}

/** The visible text, tags dropped and entities decoded. */
function visibleText(document: string): string {
  return withoutStyle(document)
    .replace(/<\/?(?:strong|code|time|a)\b[^>]*>/g, '')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

// Every element and attribute the pages use; anything else in the markup was injected.
const PAGE_ELEMENTS = new Set(
  'html head meta title style body header main footer nav h1 h2 p ul ol li dl dt dd a strong code pre span time form input button section'.split(' '),
);
const PAGE_ATTRIBUTES = new Set('lang charset name content class href hreflang aria-current aria-label aria-hidden datetime method action type value id'.split(' '));

/**
 * The elements of a document as a browser tokenizes them: a name and attribute names. Values are
 * quoted and cannot hold a quote (it is escaped), so the attribute list parses exactly; a tag the
 * parser cannot consume whole fails the test.
 */
function elements(markup: string): { name: string; attributes: string[] }[] {
  const found: { name: string; attributes: string[] }[] = [];
  for (const match of markup.matchAll(/<(\/?)([a-zA-Z][\w-]*|!doctype)([^>]*)>/g)) {
    const [, closing, name = '', rest = ''] = match;
    const attributes: string[] = [];
    const attribute = /\s+([^\s=>"'/]+)(?:="[^"]*")?/y;
    let consumed = 0;
    for (let next = attribute.exec(rest); next; next = attribute.exec(rest)) {
      attributes.push(next[1] ?? '');
      consumed = attribute.lastIndex;
    }
    if (rest.slice(consumed).trim() !== '') throw new Error(`cannot parse the tag ${match[0]}`);
    if (closing === '' && name !== '!doctype') found.push({ name: name.toLowerCase(), attributes: name === '!doctype' ? [] : attributes });
  }
  return found;
}

function attributeValues(document: string, attribute: string): string[] {
  return [...withoutStyle(document).matchAll(new RegExp(`\\s${attribute}="([^"]*)"`, 'g'))].map((match) => match[1] ?? '');
}

describe('message catalogs', () => {
  it.each(LOCALES)('%s has every message, with the placeholders of the English text', (locale) => {
    const catalog = CATALOGS[locale];
    expect(Object.keys(catalog).sort()).toEqual(Object.keys(en).sort());
    for (const [key, english] of Object.entries(en)) {
      const text = catalog[key as keyof typeof en];
      expect(text.trim(), key).not.toBe('');
      expect(placeholdersOf(text), `${locale} ${key}`).toEqual(placeholdersOf(english));
    }
  });

  it('keeps markup out of the texts: links and code come only through placeholders', () => {
    for (const locale of LOCALES) {
      for (const [key, text] of Object.entries(CATALOGS[locale])) expect(text, `${locale} ${key}`).not.toMatch(/[<>]/);
    }
  });
});

describe('t', () => {
  it('escapes the message and text values, and inserts fragments as they are', () => {
    const message = t('en', 'exchange.step.servicePrincipal', { command: html`<code>New-ServicePrincipal</code>`, vendor: '<Acme & Co>' });
    expect(message.toString()).toBe('<code>New-ServicePrincipal</code> registers &lt;Acme &amp; Co&gt;’s app in Exchange Online.');
  });
});

describe('html', () => {
  it('escapes text, numbers stay, lists join, nothing is nothing, fragments stay markup', () => {
    const name = `"'<&>`;
    const fragment = html`<b>${name}</b>`;
    expect(html`<p title="${name}">${[fragment, 1, null, undefined, false, 'x']}</p>`.toString()).toBe(
      '<p title="&quot;&#39;&lt;&amp;&gt;"><b>&quot;&#39;&lt;&amp;&gt;</b>1x</p>',
    );
    expect(raw('<hr>').toString()).toBe('<hr>');
    expect(escapeHtml('a&b')).toBe('a&amp;b');
  });

  it.each([
    ['https://login.microsoftonline.com/x?y=1', true],
    ['http://localhost:7071/connect', true],
    ['/connect/landing?token=a', true],
    ['javascript:alert(1)', false],
    ['JavaScript:alert(1)', false],
    ['java\tscript:alert(1)', false],
    [' javascript:alert(1)', false],
    ['data:text/html,<script>alert(1)</script>', false],
    ['vbscript:msgbox(1)', false],
    ['//evil.example/x', false],
    ['/\\evil.example/x', false],
    ['mailto:a@b.c', false],
    ['relative/path', false],
    ['', false],
  ])('safeUrl(%j) allows it: %s', (url, allowed) => {
    expect(safeUrl(url)).toBe(allowed ? url : undefined);
  });
});

describe('negotiateLocale', () => {
  it.each<[string | null, string | undefined, Locale]>([
    [null, undefined, 'en'],
    ['', undefined, 'en'],
    ['pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7', undefined, 'pt-BR'],
    ['es-MX,es;q=0.9', undefined, 'es'],
    ['es-419', undefined, 'es'],
    ['pt-PT', undefined, 'pt-BR'],
    ['pt', undefined, 'pt-BR'],
    ['PT-br', undefined, 'pt-BR'],
    ['en-GB', undefined, 'en'],
    ['fr-FR, de;q=0.9, es;q=0.5', undefined, 'es'],
    ['en;q=0.5, es;q=0.9', undefined, 'es'],
    ['es;q=0.8, pt;q=0.8', undefined, 'es'],
    ['es;q=0, pt;q=0.1', undefined, 'pt-BR'],
    ['es;q=0', undefined, 'en'],
    ['de, *;q=0.1, es;q=0.05', undefined, 'en'],
    ['es;q=abc, pt;q=0.5', undefined, 'pt-BR'],
    ['es;q=1.5', undefined, 'en'],
    ['es ; Q=0.7 , fr', undefined, 'es'],
    ['<script>, es', undefined, 'es'],
    ['pt-BR', 'es', 'es'],
    ['pt-BR', 'EN', 'en'],
    ['es', 'pt', 'pt-BR'],
    ['es', 'xx', 'es'],
    ['es', '', 'es'],
    [null, 'pt-br', 'pt-BR'],
  ])('Accept-Language %j with override %j → %s', (header, override, expected) => {
    expect(negotiateLocale(header, override)).toBe(expected);
  });
});

describe('formatDateTime', () => {
  it.each<[Locale, RegExp]>([
    ['en', /^December 1, 2025.*09:30.*UTC$/],
    ['pt-BR', /^1 de dezembro de 2025.*09:30 UTC$/],
    ['es', /^1 de diciembre de 2025.*09:30 UTC$/],
  ])('writes dates in %s, in UTC and saying so', (locale, pattern) => {
    expect(formatDateTime(new Date('2025-12-01T09:30:00Z'), locale)).toMatch(pattern);
  });
});

describe('renderPage', () => {
  const EXPECTED_STATUS: Record<PageKind, number> = {
    landing: 200,
    connected: 200,
    'exchange-app-setup': 200,
    'admin-approval-needed': 403,
    'admin-granted': 200,
    declined: 200,
    'wrong-account': 403,
    'link-invalid': 410,
    'sign-in-error': 403,
    'unexpected-error': 500,
  };

  describe.each(LOCALES)('in %s', (locale) => {
    it.each(KINDS)('renders %s completely', (kind) => {
      const { html: document, status } = renderPage(pages(ORDINARY)[kind], locale);
      expect(status).toBe(EXPECTED_STATUS[kind]);
      expect(document).toMatch(new RegExp(`^<!doctype html>\\n<html lang="${locale}">`));
      expect(document.match(/<h1[ >]/g)).toHaveLength(1);
      for (const landmark of ['<header>', '<main ', '<footer>', '<nav aria-label=']) expect(document).toContain(landmark);
      // Every placeholder filled, no script of any kind, and the vendor named in the header.
      expect(withoutStyle(document)).not.toMatch(/\{\w+\}/);
      expect(document).not.toMatch(/<script|\son\w+=/i);
      expect(document).toContain(`<p class="vendor">${ORDINARY.vendor}</p>`);
    });
  });

  it.each(KINDS)('shows %s in Portuguese and Spanish without English sentences left over', (kind) => {
    const page = pages(ORDINARY)[kind];
    const english = visibleText(renderPage(page, 'en').html);
    // The English messages this page shows, as far as they are whole sentences without placeholders.
    const shown = Object.values(en).filter((text) => !text.includes('{') && text.length > 20 && english.includes(text));
    expect(shown.length).toBeGreaterThan(0);
    for (const locale of ['pt-BR', 'es'] as const) {
      const translated = visibleText(renderPage(page, locale).html);
      for (const text of shown) expect(translated, `${locale}: ${text}`).not.toContain(text);
    }
  });

  describe.each(LOCALES)('with values from outside, in %s', (locale) => {
    it.each(KINDS)('escapes every one on %s', (kind) => {
      const { html: document } = renderPage(pages(HOSTILE)[kind], locale);
      const parsed = elements(withoutStyle(document));
      expect(parsed.map((element) => element.name).filter((name) => !PAGE_ELEMENTS.has(name))).toEqual([]);
      expect(parsed.flatMap((element) => element.attributes).filter((attribute) => !PAGE_ATTRIBUTES.has(attribute))).toEqual([]);
      // The text is still shown, as text.
      expect(visibleText(document)).toContain(HOSTILE.vendor);
      for (const href of attributeValues(document, 'href')) expect(href).toMatch(/^(\/[^/\\]|https:\/\/|\?)/);
    });
  });

  it('shows the hostile names verbatim where they belong', () => {
    const landing = renderPage(pages(HOSTILE).landing, 'en').html;
    expect(visibleText(landing)).toContain(HOSTILE.customer);
    expect(visibleText(landing)).toContain(HOSTILE.account);
    expect(landing).toContain('value="n&quot;&quot;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;"');
    const setup = renderPage(pages(HOSTILE)['exchange-app-setup'], 'en').html;
    expect(visibleText(setup)).toContain(`-DisplayName '<script>alert("vendor")</script>'`);
    expect(visibleText(setup)).toContain(`Add-MailboxPermission -Identity 'o''brien<b>@contoso.com'`);
  });

  it('turns only http(s) and site paths into links and form actions', () => {
    for (const unsafe of ['javascript:alert(1)', 'data:text/html,x', '//evil.example/', 'java\nscript:alert(1)', 'vbscript:x']) {
      const base = pages(ORDINARY);
      const documents = [
        renderPage({ ...base.declined, kind: 'declined', retryUrl: unsafe }, 'en').html,
        renderPage({ ...base['sign-in-error'], kind: 'sign-in-error', retryUrl: unsafe }, 'en').html,
        renderPage({ ...base['admin-approval-needed'], kind: 'admin-approval-needed', adminConsentUrl: unsafe, retryUrl: unsafe }, 'en').html,
        renderPage({ ...base.landing, kind: 'landing', continueTo: { action: unsafe, fields: {} } }, 'en').html,
      ];
      for (const document of documents) {
        expect([...attributeValues(document, 'href'), ...attributeValues(document, 'action')].filter((url) => !url.startsWith('/connect'))).toEqual([]);
        expect(document).not.toContain(unsafe.slice(0, 8));
      }
      // Without a usable link, each page still says what to do.
      expect(visibleText(documents[0] ?? '')).toContain('Open the link Acme Helpdesk sent you again.');
      expect(visibleText(documents[2] ?? '')).toContain('Ask Acme Helpdesk for a new link.');
      expect(documents[3]).not.toContain('<form');
      expect(visibleText(documents[3] ?? '')).toContain('This link cannot continue to Microsoft. Ask Acme Helpdesk for a new link.');
    }
  });

  it('keeps the language links on this site, with the other query parameters', () => {
    expect(languageHref('/connect/landing?token=a%2Bb&x=1&lang=en', 'es')).toBe('/connect/landing?token=a%2Bb&x=1&lang=es');
    expect(languageHref('/connect/result', 'pt-BR')).toBe('/connect/result?lang=pt-BR');
    expect(languageHref('//evil.example/phish?x=1', 'es')).toBe('/phish?x=1&lang=es');
    expect(languageHref('https://evil.example/phish', 'es')).toBe('/phish?lang=es');
    expect(languageHref('/a//b', 'en')).toBe('/a//b?lang=en');
    const document = renderPage(pages(ORDINARY).declined, 'es').html;
    expect(attributeValues(document, 'href').filter((href) => href.includes('lang='))).toEqual([
      '/connect/landing?token=abc.def&amp;x=1&amp;lang=en',
      '/connect/landing?token=abc.def&amp;x=1&amp;lang=pt-BR',
      '/connect/landing?token=abc.def&amp;x=1&amp;lang=es',
    ]);
    expect(document).toMatch(/lang="es" aria-current="true">Español</);
  });

  describe('landing', () => {
    it('explains delegated access in plain words, one sentence per permission, and who may approve', () => {
      const text = visibleText(renderPage(pages(ORDINARY).landing, 'en').html);
      expect(text).toContain('You sign in with your own Microsoft 365 account. Acme Helpdesk will use your mailbox, and mailboxes you already have full access to');
      for (const sentence of [
        en['access.signIn'],
        en['access.delegated.offlineAccess'],
        en['access.delegated.userRead'],
        en['access.delegated.imap'],
        en['access.delegated.smtp'],
      ]) {
        expect(text.split(sentence)).toHaveLength(2);
      }
      expect(text).toContain('Any user of your organization can continue with their own account');
      expect(text).toContain('Sign in as megan@contoso.com, the account this connection was set up with.');
      expect(text).toContain('This link works until December 1, 2025 at 09:30 AM UTC.');
      expect(text).not.toContain('PowerShell');
    });

    it('posts the given fields to the given action with one button', () => {
      const document = renderPage(pages(ORDINARY).landing, 'en').html;
      expect(document).toContain('<form method="post" action="/connect/start">');
      expect(document).toContain('<input type="hidden" name="link" value="/connect/landing?token=abc.def&amp;x=1">');
      expect(document).toContain('<input type="hidden" name="nonce" value="n&quot;Contoso Ltd">');
      expect(document.match(/<button/g)).toHaveLength(1);
      expect(document).toContain('<button type="submit" class="button">Continue to Microsoft</button>');
    });

    it.each<[string, string[], string]>([
      ['Graph app roles', ['Mail.Send', 'Mail.ReadWrite'], 'Sign in as a Global Administrator or Privileged Role Administrator of your organization'],
      ['a .default scope', ['https://graph.microsoft.com/.default'], 'Sign in as a Global Administrator or Privileged Role Administrator of your organization'],
      [
        'Exchange app roles only',
        ['IMAP.AccessAsApp', 'SMTP.SendAsApp'],
        'Sign in as a Global Administrator, Privileged Role Administrator, Cloud Application Administrator or Application Administrator of your organization',
      ],
    ])('in application mode with %s names the roles that can grant them', (_case, permissions, sentence) => {
      const page: PageModel = { ...pages(ORDINARY).landing, kind: 'landing', mode: 'application', permissions };
      const text = visibleText(renderPage(page, 'en').html);
      expect(text).toContain(sentence);
      expect(text).toContain('An administrator grants access for the whole organization.');
    });

    it('says what each app role means, tells about the PowerShell step for Exchange protocols, and names unknown permissions', () => {
      const page: PageModel = {
        ...pages(ORDINARY).landing,
        kind: 'landing',
        mode: 'application',
        permissions: ['Mail.Send', 'Mail.ReadWrite', 'IMAP.AccessAsApp', 'POP.AccessAsApp', 'SMTP.SendAsApp', 'Calendars.Read', 'https://graph.microsoft.com/.default'],
      };
      const text = visibleText(renderPage(page, 'en').html);
      for (const key of ['mailSend', 'mailReadWrite', 'imap', 'pop', 'smtp'] as const) expect(text).toContain(en[`access.application.${key}`]);
      expect(text).toContain('Permission Calendars.Read (Microsoft describes it on the next page).');
      expect(text).toContain('Use the permissions Acme Helpdesk’s app is registered for.');
      expect(text).toContain('an Exchange administrator will also need to run a few PowerShell commands afterwards');
      const graphOnly = visibleText(renderPage({ ...page, permissions: ['Mail.Send'] }, 'en').html);
      expect(graphOnly).not.toContain('PowerShell');
    });
  });

  it('connected names the tenant, the account, the access and the mailboxes, and what happens next', () => {
    const text = visibleText(renderPage(pages(ORDINARY).connected, 'en').html);
    expect(text).toContain(`Acme Helpdesk can now use Microsoft 365 mail for Contoso (tenant ID ${TENANT_ID}).`);
    expect(text).toContain('Signed-in account megan@contoso.com');
    expect(text).toContain(en['access.delegated.mailSend']);
    expect(text).toContain('support@contoso.com');
    expect(text).toContain('You can close this page. Acme Helpdesk will start sending and receiving email');
    const unnamed: PageModel = { ...pages(ORDINARY).connected, kind: 'connected', tenant: { id: TENANT_ID }, mailboxes: [], permissions: [] };
    expect(visibleText(renderPage(unnamed, 'pt-BR').html)).toContain(`Acme Helpdesk já pode usar o email do Microsoft 365 de ID do locatário ${TENANT_ID}.`);
  });

  it('exchange-app-setup shows the script for the tenant in a copyable block, explains the ids and the failure signatures', () => {
    const page = pages(ORDINARY)['exchange-app-setup'];
    const document = renderPage(page, 'en').html;
    const block = /<pre class="copy"><code>([\s\S]*?)<\/code><\/pre>/.exec(document)?.[1] ?? '';
    // One element a line, and exactly the script once the markup is gone: that is what gets copied.
    expect(block.match(/<span>/g)).toHaveLength(page.setup.script.split('\n').length);
    expect(block.replace(/<\/?span>/g, '')).toBe(escapeHtml(page.setup.script));
    expect(page.setup.script).toContain(`New-ServicePrincipal -AppId '${APP_ID}' -ObjectId '${SERVICE_PRINCIPAL_ID}' -DisplayName 'Acme Helpdesk'`);
    const text = visibleText(document);
    expect(text).toContain(`${SERVICE_PRINCIPAL_ID} is the object ID of Acme Helpdesk’s app in your organization, as listed under Enterprise applications`);
    expect(text).toContain('It is not the object ID shown under App registrations');
    expect(text).toContain('IMAP answers BAD User is authenticated but not connected.');
    expect(text).toContain('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.');
    expect(text).toContain('New-ManagementScope + New-ManagementRoleAssignment limits');
    expect(text).toContain('Set-CASMailbox turns on authenticated SMTP');
    // The failure signatures are what Exchange sends, so they stay in English in every language.
    expect(visibleText(renderPage(page, 'es').html)).toContain('IMAP responde BAD User is authenticated but not connected.');
  });

  describe('exchange-app-setup "Check again"', () => {
    const page = pages(ORDINARY)['exchange-app-setup'];
    const check = page.check ?? { action: '' };

    it('posts to its action with one button, and shows each step of the last check with what to do about a failure', () => {
      const document = renderPage(page, 'en').html;
      expect(document).toContain('<section id="check">');
      expect(document).toContain('<form method="post" action="/connect/result/abc/check?lang=en#check"><button type="submit" class="button">Check again</button></form>');
      const text = visibleText(document);
      expect(text).toContain('Checked November 22, 2025 at 05:45 PM UTC. 2 of 3 checks failed. Each one below says why, and what to do. 1 of the 2 mailboxes above were checked.');
      expect(text).toContain('✓ Access token for Exchange Online: works');
      expect(text).toContain('✗ IMAP for support@contoso.com: failed');
      const imap = describeProbeCause('not_connected', { protocol: 'imap', mode: 'application', mailbox: ORDINARY.mailbox });
      expect(text).toContain(imap.explanation);
      expect(text).toContain(`What to do: ${imap.nextStep}`);
      expect(text).toContain('The server answered: A1 BAD User is authenticated but not connected. megan@contoso.com');
      expect(text).toContain('✗ SMTP for support@contoso.com: failed');
      expect(text).toContain('Error code: ECONNREFUSED');
      // The marks are decoration: the words say the outcome.
      expect(document).toContain('<span class="mark" aria-hidden="true">✓</span>');
    });

    it("marks the checker's English explanations as English on a page in another language", () => {
      const imap = describeProbeCause('not_connected', { protocol: 'imap', mode: 'application', mailbox: ORDINARY.mailbox });
      const document = renderPage(page, 'pt-BR').html;
      expect(document).toContain(`<p><span lang="en">${escapeHtml(imap.explanation)}</span></p>`);
      expect(visibleText(document)).toContain(`O que fazer: ${imap.nextStep}`);
      expect(visibleText(document)).toContain('✓ Token de acesso para Exchange Online: funciona');
      expect(renderPage(page, 'en').html).not.toContain('<span lang="en">');
    });

    it('says when a check just ran (429) or the connection is gone (409, no button)', () => {
      const wait = renderPage({ ...page, check: { action: check.action, notice: 'wait' } }, 'en');
      expect(wait.status).toBe(429);
      expect(visibleText(wait.html)).toContain('A check ran a few seconds ago. Wait a moment, then check again.');
      expect(wait.html).toContain('>Check again</button>');
      const gone = renderPage({ ...page, check: { action: check.action, notice: 'unavailable' } }, 'es');
      expect(gone.status).toBe(409);
      expect(visibleText(gone.html)).toContain('Esta conexión ya no se puede comprobar aquí: se quitó o se desconectó. Pida un enlace nuevo a Acme Helpdesk.');
      expect(gone.html).not.toContain('<form');
    });

    it('has no button without a check, nor without mailboxes to check', () => {
      const { check: _omitted, ...withoutCheck } = page;
      expect(renderPage(withoutCheck, 'en').html).not.toContain('<form');
      const noMailboxes = exchangeSetup({ tenantId: TENANT_ID, appId: APP_ID, servicePrincipalObjectId: SERVICE_PRINCIPAL_ID, displayName: 'Acme', mailboxes: [] });
      expect(renderPage({ ...page, setup: noMailboxes }, 'en').html).not.toContain('<form');
    });
  });

  it('admin-approval-needed gives the admin-consent link as a link and as text to copy, and the roles that can grant it', () => {
    const document = renderPage(pages(ORDINARY)['admin-approval-needed'], 'en').html;
    const escaped = escapeHtml(ADMIN_CONSENT_URL);
    expect(document).toContain(`<a href="${escaped}">Link for your administrator</a>`);
    expect(document).toContain(`<pre class="copy"><code><span>${escaped}</span></code></pre>`);
    const text = visibleText(document);
    expect(text).toContain('Send this link to an administrator of your organization, a Global Administrator, Privileged Role Administrator, Cloud Application Administrator or Application Administrator.');
    expect(text).toContain('Error code AADSTS90094');
    expect(text).toContain('once they have, sign in again');
  });

  it('admin-granted says that nothing is connected yet, and links to connecting a mailbox', () => {
    const document = renderPage(pages(ORDINARY)['admin-granted'], 'en').html;
    expect(visibleText(document)).toContain('Acme Helpdesk is approved for your organization');
    expect(visibleText(document)).toContain('No mailbox is connected yet.');
    expect(document).toContain('<a class="button" href="/connect/landing?token=fresh">Connect a mailbox</a>');
    const withoutLink = renderPage({ ...pages(ORDINARY)['admin-granted'], retryUrl: 'javascript:alert(1)' }, 'en').html;
    expect(withoutLink).not.toContain('javascript:');
    expect(withoutLink).not.toContain('class="button"');
  });

  it('wrong-account shows what was expected and what happened', () => {
    const text = visibleText(renderPage(pages(ORDINARY)['wrong-account'], 'en').html);
    expect(text).toContain('This connection was set up by another account, and only that account can reconnect it.');
    expect(text).toContain('Expected megan@contoso.com Signed in with someone.else@Contoso');
    const otherTenant: PageModel = { ...pages(ORDINARY)['wrong-account'], kind: 'wrong-account', reason: 'other-tenant', expected: 'Contoso', actual: 'Fabrikam' };
    expect(visibleText(renderPage(otherTenant, 'en').html)).toContain('You signed in to a different Microsoft 365 organization');
  });

  it.each(LINK_INVALID_REASONS)('link-invalid (%s) says why in words, and that a new link is the way forward, with status 410', (reason) => {
    const page: PageModel = { ...pages(ORDINARY)['link-invalid'], kind: 'link-invalid', reason };
    const { html: document, status } = renderPage(page, 'en');
    expect(status).toBe(410);
    const text = visibleText(document);
    expect(text).toContain(en[`linkInvalid.${reason}`]);
    expect(text).toContain('Ask Acme Helpdesk for a new link.');
    expect(text).toContain('Nothing was changed in your Microsoft 365 organization.');
    expect(text).not.toMatch(/signature|token|key|con_/i);
  });

  describe('sign-in-error', () => {
    it.each<[number | undefined, string | undefined, number, string]>([
      [53003, undefined, 403, en['signInError.conditionalAccess.what']],
      [530035, undefined, 403, en['signInError.conditionalAccess.what']],
      [50105, undefined, 403, 'your account is not assigned to it'],
      [50057, undefined, 403, en['signInError.accountDisabled.what']],
      [7000112, undefined, 403, 'has turned off sign-in for Acme Helpdesk’s app'],
      [700016, undefined, 502, 'Microsoft could not find Acme Helpdesk’s app for your organization.'],
      [7000222, undefined, 502, 'its credentials have expired or are wrong. Nothing is wrong on your side.'],
      [7000215, undefined, 502, 'its credentials have expired or are wrong.'],
      [50011, undefined, 502, 'is not set up for this sign-in'],
      [500011, undefined, 403, en['signInError.noExchange.what']],
      [650052, undefined, 403, en['signInError.noExchange.what']],
      [65004, 'consent_required', 200, 'Access was declined on Microsoft’s page'],
      [undefined, 'temporarily_unavailable', 503, en['signInError.transient.what']],
      [999999, 'invalid_request', 502, en['signInError.unknown.what']],
      [undefined, undefined, 502, en['signInError.unknown.what']],
    ])('AADSTS%s (%s) → %s, explained', (aadsts, oauthError, status, sentence) => {
      const page: PageModel = { ...pages(ORDINARY)['sign-in-error'], kind: 'sign-in-error', reference: { requestId: 'req-1', aadsts, oauthError } };
      const rendered = renderPage(page, 'en');
      expect(rendered.status).toBe(status);
      const text = visibleText(rendered.html);
      expect(text).toContain(sentence);
      if (aadsts !== undefined) expect(text).toContain(`Error code AADSTS${aadsts}`);
      expect(text).toContain('Request ID req-1');
    });

    it('blames the vendor’s app registration when the consent lacks permissions it needs, naming them', () => {
      const page: PageModel = {
        ...pages(ORDINARY)['sign-in-error'],
        reference: { oauthError: 'missing_app_roles' },
        missingPermissions: ['IMAP.AccessAsApp', '<SMTP.SendAsApp>'],
      };
      const rendered = renderPage(page, 'en');
      expect(rendered.status).toBe(502);
      expect(rendered.html).toContain('Missing: <code>IMAP.AccessAsApp</code>, <code>&lt;SMTP.SendAsApp&gt;</code>. Nothing is wrong on your side.');
      expect(visibleText(rendered.html)).toContain('Contact Acme Helpdesk with the details below');
    });

    it('contacts the vendor for the vendor’s own faults, and shows the references support needs', () => {
      const text = visibleText(renderPage(pages(ORDINARY)['sign-in-error'], 'en').html);
      expect(text).toContain('Details for support If you contact Acme Helpdesk, include these details:');
      expect(text).toContain('Microsoft trace ID 0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6');
      expect(text).toContain('Microsoft correlation ID f6e5d4c3-b2a1-4098-8f7e-6d5c4b3a2f1e');
      expect(text).toContain('Time November 22, 2025 at 05:40 PM UTC');
      const vendorFault: PageModel = { ...pages(ORDINARY)['sign-in-error'], kind: 'sign-in-error', reference: { aadsts: 7000222 } };
      expect(visibleText(renderPage(vendorFault, 'es').html)).toContain('Póngase en contacto con Acme Helpdesk con los datos de abajo');
    });

    it('shows only reference values of the expected shape, so a forged redirect cannot put words on the page', () => {
      const page: PageModel = {
        ...pages(ORDINARY)['sign-in-error'],
        kind: 'sign-in-error',
        reference: { traceId: 'Call +1 555 0100 to unlock your account', correlationId: '<b>x</b>', oauthError: 'Your account is locked', aadsts: -1 },
      };
      const text = visibleText(renderPage(page, 'en').html);
      expect(text).not.toMatch(/Call \+1|<b>|locked|AADSTS-1|Details for support/);
    });
  });

  it('unexpected-error apologizes without any detail of the failure', () => {
    const { html: document, status } = renderPage(pages(ORDINARY)['unexpected-error'], 'en');
    expect(status).toBe(500);
    expect(visibleText(document)).toContain('Acme Helpdesk could not finish this step because of an error in its own service.');
    expect(visibleText(document)).toContain('Request ID 01JD0Q3W6RZ9X4T5Y6U7I8O9P0');
  });
});

describe('contentSecurityPolicy and pageHeaders', () => {
  it('allows nothing but the page’s own style sheet, by its hash, and forms to this site and the given origins', () => {
    const policy = contentSecurityPolicy(['https://login.microsoftonline.com']);
    expect(policy).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; form-action 'self' https:\/\/login\.microsoftonline\.com; base-uri 'none'; frame-ancestors 'none'$/);
    expect(contentSecurityPolicy()).toContain("form-action 'self';");
  });

  it('comes with the page headers, which also name the language and forbid caching', () => {
    expect(pageHeaders('pt-BR')).toEqual({
      'content-type': 'text/html; charset=utf-8',
      'content-language': 'pt-BR',
      vary: 'Accept-Language',
      'cache-control': 'no-store',
      'content-security-policy': contentSecurityPolicy(),
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'same-origin',
    });
  });
});
