import { retry, supportDetails, type PageContent } from './components.js';
import { html } from './html.js';
import { t, type Locale, type MessageKey } from './i18n.js';
import type { SignInErrorPage, SupportReference } from './model.js';

/**
 * Any other error Microsoft's sign-in ended with, explained by who has to act: the reader, their
 * organization's administrator, or the vendor. The AADSTS code is the key (Microsoft warns against
 * reading its error texts); it is shown only as a reference for support, next to the explanation.
 */

type Explanation = {
  what: Extract<MessageKey, `signInError.${string}.what`>;
  next: Extract<MessageKey, `${string}.next`>;
  /** 403: the organization's policy or account refuses; 502: the vendor's app is at fault upstream; 503: try later; 200: declined by choice. */
  status: number;
};

const CONDITIONAL_ACCESS: Explanation = { what: 'signInError.conditionalAccess.what', next: 'signInError.conditionalAccess.next', status: 403 };
const VENDOR_CREDENTIALS: Explanation = { what: 'signInError.vendorCredentials.what', next: 'signInError.contactVendor.next', status: 502 };
const NO_EXCHANGE: Explanation = { what: 'signInError.noExchange.what', next: 'signInError.noExchange.next', status: 403 };
const TRANSIENT: Explanation = { what: 'signInError.transient.what', next: 'signInError.transient.next', status: 503 };
const UNKNOWN: Explanation = { what: 'signInError.unknown.what', next: 'signInError.unknown.next', status: 502 };

/** AADSTS codes with an explanation of their own (texts: learn.microsoft.com reference-error-codes, microsoft.md §2.4). */
const BY_AADSTS: ReadonlyMap<number, Explanation> = new Map([
  // BlockedByConditionalAccess; blocked by a security policy; blocked by security defaults.
  [53003, CONDITIONAL_ACCESS],
  [530032, CONDITIONAL_ACCESS],
  [530035, CONDITIONAL_ACCESS],
  // The app requires user assignment and this user is not assigned.
  [50105, { what: 'signInError.notAssigned.what', next: 'signInError.notAssigned.next', status: 403 }],
  // UserDisabled.
  [50057, { what: 'signInError.accountDisabled.what', next: 'signInError.accountDisabled.next', status: 403 }],
  // UnauthorizedClientApplicationDisabled: an admin turned off sign-in for the app in this tenant.
  [7000112, { what: 'signInError.appDisabled.what', next: 'signInError.appDisabled.next', status: 403 }],
  // The app was not found in the directory: a wrong client id or cloud on the vendor's side.
  [700016, { what: 'signInError.appNotFound.what', next: 'signInError.contactVendor.next', status: 502 }],
  // Invalid client secret; expired client secret; invalid client assertion signature.
  [7000215, VENDOR_CREDENTIALS],
  [7000222, VENDOR_CREDENTIALS],
  [700027, VENDOR_CREDENTIALS],
  // The reply URL does not match the app registration.
  [50011, { what: 'signInError.vendorConfiguration.what', next: 'signInError.contactVendor.next', status: 502 }],
  // The resource (Exchange Online) has no service principal in the tenant / the tenant has not subscribed to it.
  [500011, NO_EXCHANGE],
  [650052, NO_EXCHANGE],
  // UserDeclinedConsent: a decision, not a failure (see the declined page).
  [65004, { what: 'signInError.declined.what', next: 'declined.next', status: 200 }],
]);

// OAuth error values that mean "Microsoft could not answer now" (RFC 6749 §4.1.2.1).
const TRANSIENT_OAUTH_ERRORS = new Set(['temporarily_unavailable', 'server_error']);

const MISSING_PERMISSIONS: Explanation = { what: 'signInError.missingPermissions.what', next: 'signInError.contactVendor.next', status: 502 };

function explain(reference: SupportReference, missingPermissions: readonly string[]): Explanation {
  if (missingPermissions.length > 0) return MISSING_PERMISSIONS;
  const known = reference.aadsts === undefined ? undefined : BY_AADSTS.get(reference.aadsts);
  if (known) return known;
  if (reference.oauthError !== undefined && TRANSIENT_OAUTH_ERRORS.has(reference.oauthError)) return TRANSIENT;
  return UNKNOWN;
}

export function signInErrorPage(page: SignInErrorPage, locale: Locale): PageContent {
  const vendor = page.vendorName;
  const missing = page.missingPermissions ?? [];
  const explanation = explain(page.reference, missing);
  const permissions = html`${missing.map((permission, index) => html`${index > 0 ? ', ' : ''}<code>${permission}</code>`)}`;
  const body = html`<h1>${t(locale, 'signInError.title')}</h1>
<h2>${t(locale, 'common.whatHappened')}</h2>
<p>${t(locale, explanation.what, { vendor, permissions })}</p>
<h2>${t(locale, 'common.whatNext')}</h2>
<p>${t(locale, explanation.next, { vendor })}</p>
${retry(page.retryUrl, vendor, locale)}
${supportDetails(page.reference, vendor, locale)}`;
  return { title: t(locale, 'signInError.title'), body, status: explanation.status, tone: 'problem' };
}
