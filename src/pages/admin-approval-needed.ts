import { approverRoles } from './access.js';
import { copyable, retry, supportDetails, type PageContent } from './components.js';
import { html, safeUrl } from './html.js';
import { t, type Locale } from './i18n.js';
import type { AdminApprovalNeededPage } from './model.js';

/**
 * The user may not consent in this tenant (AADSTS90094/90093, or 65001 on a user's sign-in): the
 * admin-consent link to forward, as a link and as text to paste into a message, and the note that
 * nobody tells the vendor when the admin approves, so the user signs in again afterwards.
 */
export function adminApprovalNeededPage(page: AdminApprovalNeededPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const consentUrl = safeUrl(page.adminConsentUrl);
  const forward =
    consentUrl === undefined
      ? html`<p>${t(locale, 'common.newLink', { vendor })}</p>`
      : html`<p>${t(locale, 'adminApproval.forward', { roles: t(locale, approverRoles('delegated', page.permissions)), vendor })}</p>
<p><a href="${consentUrl}">${t(locale, 'adminApproval.linkLabel')}</a></p>
${copyable([consentUrl], locale)}`;
  const body = html`<h1>${t(locale, 'adminApproval.title', { vendor })}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${t(locale, 'adminApproval.what', { vendor })}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
${forward}
<p>${t(locale, 'adminApproval.requested')}</p>
<p>${t(locale, 'adminApproval.after', { vendor })}</p>
${retry(page.retryUrl, vendor, locale)}
${supportDetails(page.reference, vendor, locale)}`;
  // 403: the request was understood, but the signed-in user lacks the authority to grant it.
  return { title: t(locale, 'adminApproval.title', { vendor }), body, status: 403, tone: 'action' };
}
