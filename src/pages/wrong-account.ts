import { retry, supportDetails, type PageContent } from './components.js';
import { html } from './html.js';
import { t, type Locale } from './i18n.js';
import type { WrongAccountPage } from './model.js';

/**
 * Someone signed in to another tenant than the connection's, or as another user on a reconnect:
 * refused and nothing stored. Showing both sides helps the reader notice a browser that signed
 * them in with a remembered account.
 */
export function wrongAccountPage(page: WrongAccountPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const body = html`<h1>${t(locale, 'wrongAccount.title')}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${page.reason === 'other-tenant' ? t(locale, 'wrongAccount.otherTenant') : t(locale, 'wrongAccount.otherUser')}</p>
<dl class="facts">
<dt>${t(locale, 'wrongAccount.expected')}</dt><dd>${page.expected}</dd>
<dt>${t(locale, 'wrongAccount.actual')}</dt><dd>${page.actual}</dd>
</dl>
<p>${t(locale, 'common.nothingChanged')}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'wrongAccount.next')}</p>
${retry(page.retryUrl, vendor, locale)}
${supportDetails(page.reference, vendor, locale)}`;
  // 403: the identity was recognised, and is not allowed to act on this connection.
  return { title: t(locale, 'wrongAccount.title'), body, status: 403, tone: 'problem' };
}
