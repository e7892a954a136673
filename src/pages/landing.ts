import { approverRoles, describePermissions, usesExchangeProtocols } from './access.js';
import { time, type PageContent } from './components.js';
import { html, safeUrl } from './html.js';
import { t, type Locale } from './i18n.js';
import type { LandingPage } from './model.js';

/**
 * The first page the customer's admin sees, from the vendor's link: who asks, for what, who may
 * approve, until when the link works, and one button on to Microsoft. Nothing happens before the
 * button is pressed, so the link can be opened (and previewed by mail scanners) safely.
 */
export function landingPage(page: LandingPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const action = safeUrl(page.continueTo.action);
  const adminGrant = page.purpose === 'admin-grant';
  const roles = t(locale, approverRoles(page.mode, page.permissions));
  const who = adminGrant
    ? t(locale, 'landing.who.adminGrant', { roles })
    : page.mode === 'application'
      ? t(locale, 'landing.who.application', { roles })
      : t(locale, 'landing.who.delegated');
  const title = adminGrant ? t(locale, 'landing.adminGrant.title', { vendor }) : t(locale, 'landing.title', { vendor });
  const mode = adminGrant
    ? t(locale, 'landing.mode.adminGrant')
    : page.mode === 'application'
      ? t(locale, 'landing.mode.application', { vendor })
      : t(locale, 'landing.mode.delegated', { vendor });
  const permissions = describePermissions(page.mode, page.permissions, vendor, locale);
  const fields = Object.entries(page.continueTo.fields);
  const body = html`<h1>${title}</h1>
<p class="lead">${t(locale, 'landing.intro', { vendor, customer: page.customerName })}</p>
<h2>${t(locale, 'landing.mode.heading')}</h2>
<p>${mode}</p>
<h2>${t(locale, 'landing.access.heading', { vendor })}</h2>
<ul>${permissions.map((sentence) => html`<li>${sentence}</li>`)}</ul>
<p>${t(locale, 'landing.access.intro')}</p>
${page.mode === 'application' && usesExchangeProtocols(page.permissions) ? html`<p>${t(locale, 'landing.exchangeNote', { vendor })}</p>` : ''}
<h2>${t(locale, 'landing.who.heading')}</h2>
<p>${who}</p>
${page.expectedAccount === undefined ? '' : html`<p>${t(locale, 'landing.who.reconnect', { account: html`<strong>${page.expectedAccount}</strong>` })}</p>`}
<p>${t(locale, 'landing.expires', { date: time(page.expiresAt, locale) })}</p>
${
  action === undefined
    ? html`<p>${t(locale, 'landing.cannotContinue')} ${t(locale, 'common.newLink', { vendor })}</p>`
    : html`<form method="post" action="${action}">
${fields.map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}
<button type="submit" class="button">${t(locale, 'landing.continue')}</button>
</form>
<p class="hint">${t(locale, 'landing.afterwards')}</p>`
}`;
  return { title, body, status: 200, tone: 'info' };
}
