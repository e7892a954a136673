import type { ExchangeSetupStepKind } from '../domain/exchange-setup.js';
import { copyable, tenantLabel, type PageContent } from './components.js';
import { html, type Html } from './html.js';
import { t, type Locale, type MessageKey } from './i18n.js';
import type { ExchangeAppSetupPage } from './model.js';
import { setupCheckSection } from './setup-check.js';

/**
 * Consent is granted, but app-only IMAP/POP/SMTP also needs Exchange Online set up for the app:
 * the PowerShell for this very tenant (built by domain/exchange-setup), what each command does,
 * the IDs explained, what Exchange answers when a step is missing, and a button that checks
 * whether the connector gets into the mailboxes once the commands have run.
 */

const STEP_TEXTS: Readonly<Record<ExchangeSetupStepKind, { message: Extract<MessageKey, `exchange.step.${string}`>; cmdlets: readonly string[] }>> = {
  'install-module': { message: 'exchange.step.installModule', cmdlets: ['Install-Module'] },
  connect: { message: 'exchange.step.connect', cmdlets: ['Connect-ExchangeOnline'] },
  'service-principal': { message: 'exchange.step.servicePrincipal', cmdlets: ['New-ServicePrincipal'] },
  'mailbox-permission': { message: 'exchange.step.mailboxPermission', cmdlets: ['Add-MailboxPermission'] },
  'send-as': { message: 'exchange.step.sendAs', cmdlets: ['Add-RecipientPermission'] },
  'smtp-auth': { message: 'exchange.step.smtpAuth', cmdlets: ['Set-CASMailbox'] },
  'smtp-scope': { message: 'exchange.step.smtpScope', cmdlets: ['New-ManagementScope', 'New-ManagementRoleAssignment'] },
};

// What Exchange Online answers when the set-up is incomplete (microsoft.md §4.3), quoted as sent:
// an admin searches for these exact words, so they stay untranslated.
const IMAP_NOT_CONNECTED = 'BAD User is authenticated but not connected.';
const SMTP_AUTH_DISABLED = '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.';
const SMTP_REFUSED = '535 5.7.3 Authentication unsuccessful';

function code(text: string): Html {
  return html`<code>${text}</code>`;
}

function cmdlets(names: readonly string[]): Html {
  return html`${names.map((name, index) => html`${index > 0 ? ' + ' : ''}${code(name)}`)}`;
}

export function exchangeAppSetupPage(page: ExchangeAppSetupPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const { setup } = page;
  const usesSmtp = setup.protocols.includes('smtp');
  const steps = setup.steps.map(({ kind }) => {
    const { message, cmdlets: names } = STEP_TEXTS[kind];
    return html`<li>${t(locale, message, { command: cmdlets(names), vendor })}</li>`;
  });
  const trouble: Html[] = [t(locale, 'exchange.trouble.delay')];
  if (setup.protocols.includes('imap')) {
    trouble.push(t(locale, 'exchange.trouble.notConnected', { signature: code(IMAP_NOT_CONNECTED), command: code('New-ServicePrincipal') }));
  }
  if (usesSmtp) {
    trouble.push(
      t(locale, 'exchange.trouble.smtpDisabled', {
        signature: code(SMTP_AUTH_DISABLED),
        command: code('Set-CASMailbox -SmtpClientAuthenticationDisabled $false'),
      }),
      t(locale, 'exchange.trouble.smtpRefused', { signature: code(SMTP_REFUSED) }),
    );
  }
  const body = html`<h1>${t(locale, 'exchange.title')}</h1>
<p class="lead">${t(locale, 'exchange.intro', { vendor, tenant: tenantLabel(page.tenant, locale) })}</p>
<p>${t(locale, 'exchange.who')}</p>
<h2>${t(locale, 'exchange.script.heading')}</h2>
<p>${t(locale, 'exchange.script.intro')}</p>
${copyable(setup.steps.flatMap((step) => step.commands), locale)}
<h2>${t(locale, 'exchange.steps.heading')}</h2>
<ol>${steps}</ol>
<p>${t(locale, 'exchange.rerun')}</p>
${page.check && setup.mailboxes.length > 0 ? setupCheckSection(page.check, setup.mailboxes, vendor, locale) : ''}
<h2>${t(locale, 'exchange.mailboxes.heading')}</h2>
${setup.mailboxes.length > 0 ? html`<ul>${setup.mailboxes.map((mailbox) => html`<li>${mailbox}</li>`)}</ul>` : html`<p>${t(locale, 'exchange.mailboxes.none', { vendor, command: code('Add-MailboxPermission') })}</p>`}
<h2>${t(locale, 'exchange.ids.heading')}</h2>
<ul>
<li>${t(locale, 'exchange.ids.tenant', { id: code(setup.tenantId) })}</li>
<li>${t(locale, 'exchange.ids.app', { id: code(setup.appId), vendor })}</li>
<li>${t(locale, 'exchange.ids.servicePrincipal', { id: code(setup.servicePrincipalObjectId), vendor })}</li>
</ul>
<h2>${t(locale, 'exchange.trouble.heading')}</h2>
<ul>${trouble.map((item) => html`<li>${item}</li>`)}</ul>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'exchange.next', { vendor })}</p>`;
  // The consent succeeded; what remains is work for the admin, not an error. Only a check that
  // could not run answers otherwise: too soon after the last one, or for a connection that is gone.
  const status = page.check?.notice === 'wait' ? 429 : page.check?.notice === 'unavailable' ? 409 : 200;
  return { title: t(locale, 'exchange.title'), body, status, tone: 'action' };
}
