import { supportDetails, type PageContent } from './components.js';
import { html } from './html.js';
import { t, type Locale } from './i18n.js';
import type { UnexpectedErrorPage } from './model.js';

/** Our own failure: an apology in plain words and a reference, never the error itself. */
export function unexpectedErrorPage(page: UnexpectedErrorPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const body = html`<h1>${t(locale, 'unexpected.title')}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${t(locale, 'unexpected.what', { vendor })}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'unexpected.next', { vendor })}</p>
${supportDetails(page.reference, vendor, locale)}`;
  return { title: t(locale, 'unexpected.title'), body, status: 500, tone: 'problem' };
}
