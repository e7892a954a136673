import type { PageContent } from './components.js';
import { html, safeUrl } from './html.js';
import { t, type Locale } from './i18n.js';
import type { AdminGrantedPage } from './model.js';

/**
 * The administrator approved the vendor for the organization from a forwarded link. That grant
 * connects nothing by itself, and Microsoft tells nobody about it: the page says so, and offers
 * the connect link to whoever should sign in now.
 */
export function adminGrantedPage(page: AdminGrantedPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const connectUrl = page.retryUrl === undefined ? undefined : safeUrl(page.retryUrl);
  const body = html`<h1>${t(locale, 'adminGranted.title', { vendor })}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${t(locale, 'adminGranted.what', { vendor })}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'adminGranted.next', { vendor })}</p>
${connectUrl === undefined ? '' : html`<p><a class="button" href="${connectUrl}">${t(locale, 'adminGranted.connect')}</a></p>`}`;
  return { title: t(locale, 'adminGranted.title', { vendor }), body, status: 200, tone: 'success' };
}
