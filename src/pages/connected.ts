import { describePermissions } from './access.js';
import { tenantLabel, type PageContent } from './components.js';
import { html, type Html } from './html.js';
import { t, type Locale } from './i18n.js';
import type { ConnectedPage } from './model.js';

/** Consent went through and the connection works: what was connected, and that nothing more is needed. */
export function connectedPage(page: ConnectedPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const tenant = tenantLabel(page.tenant, locale);
  const facts: Html[] = [html`<dt>${t(locale, 'connected.details.organization')}</dt><dd>${tenant}</dd>`];
  if (page.account !== undefined) facts.push(html`<dt>${t(locale, 'connected.details.account')}</dt><dd>${page.account}</dd>`);
  if (page.permissions.length > 0) {
    const sentences = describePermissions(page.mode, page.permissions, vendor, locale);
    facts.push(html`<dt>${t(locale, 'connected.details.access')}</dt><dd><ul>${sentences.map((sentence) => html`<li>${sentence}</li>`)}</ul></dd>`);
  }
  if (page.mailboxes.length > 0) {
    facts.push(
      html`<dt>${t(locale, 'connected.details.mailboxes')}</dt><dd><ul>${page.mailboxes.map((mailbox) => html`<li>${mailbox}</li>`)}</ul></dd>`,
    );
  }
  const body = html`<h1>${t(locale, 'connected.title')}</h1>
<p class="lead">${t(locale, 'connected.intro', { vendor, tenant })}</p>
<h2>${t(locale, 'connected.details.heading')}</h2>
<dl class="facts">${facts}</dl>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'connected.next', { vendor })}</p>
<p>${t(locale, 'connected.remove', { vendor })}</p>`;
  return { title: t(locale, 'connected.title'), body, status: 200, tone: 'success' };
}
