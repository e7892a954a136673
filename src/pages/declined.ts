import { retry, supportDetails, type PageContent } from './components.js';
import { html } from './html.js';
import { t, type Locale } from './i18n.js';
import type { DeclinedPage } from './model.js';

/** Cancel was pressed on Microsoft's page: nothing was granted, and starting again is one click. */
export function declinedPage(page: DeclinedPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const body = html`<h1>${t(locale, 'declined.title')}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${t(locale, 'declined.what', { vendor })}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'declined.next')}</p>
${retry(page.retryUrl, vendor, locale)}
${supportDetails(page.reference, vendor, locale)}`;
  // 200: declining is the person's decision, shown as intended; it is not a failure to alert on.
  return { title: t(locale, 'declined.title'), body, status: 200, tone: 'info' };
}
