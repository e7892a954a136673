import { supportDetails, type PageContent } from './components.js';
import { html } from './html.js';
import { t, type Locale } from './i18n.js';
import type { LinkInvalidPage, LinkInvalidReason } from './model.js';

const REASONS: Readonly<Record<LinkInvalidReason, `linkInvalid.${LinkInvalidReason}`>> = {
  expired: 'linkInvalid.expired',
  tampered: 'linkInvalid.tampered',
  used: 'linkInvalid.used',
  unknown: 'linkInvalid.unknown',
};

/**
 * A consent link that will never work: one sentence on why, in terms the reader can act on (a mail
 * program cutting a long link is the usual "tampered"), and the one way forward, a new link. It
 * names no signature, key, connection or customer: nothing here helps someone forging links.
 */
export function linkInvalidPage(page: LinkInvalidPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const body = html`<h1>${t(locale, 'linkInvalid.title')}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${t(locale, REASONS[page.reason])}</p>
<p>${t(locale, 'common.nothingChanged')}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, 'common.newLink', { vendor })}</p>
${supportDetails(page.reference, vendor, locale)}`;
  // 410 Gone for every reason: whatever the cause, this link will never work again and the answer
  // is the same (a new link), and one status for all reasons keeps the status line from telling a
  // prober whether its forgery was recognised as such or merely taken for an old link.
  return { title: t(locale, 'linkInvalid.title'), body, status: 410, tone: 'problem' };
}
