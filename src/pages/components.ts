import { html, safeUrl, type Html } from './html.js';
import { formatDateTime, t, type Locale } from './i18n.js';
import type { SupportReference, TenantRef } from './model.js';

/** Pieces several pages share. */

/** What a page module hands to the layout. */
export interface PageContent {
  title: Html;
  body: Html;
  status: number;
  /** The colour of the band above the content: how the reader should feel about the outcome. */
  tone: 'info' | 'success' | 'action' | 'problem';
}

export function time(date: Date, locale: Locale): Html {
  return html`<time datetime="${date.toISOString()}">${formatDateTime(date, locale)}</time>`;
}

export function tenantLabel(tenant: TenantRef, locale: Locale): Html {
  return tenant.name === undefined
    ? t(locale, 'common.tenantId', { id: tenant.id })
    : t(locale, 'common.tenantNamed', { name: tenant.name, id: tenant.id });
}

/**
 * Text meant to be copied whole (a link to forward, a script to paste): one click selects all of
 * it, without any script on the page. Each line is its own block, so a long command that wraps on
 * a narrow screen is indented after its first row and still reads as one line; the line breaks
 * between them are real characters, so what is copied is exactly `lines`, one per line.
 */
export function copyable(lines: readonly string[], locale: Locale): Html {
  const rows = lines.map((line, index) => html`<span>${line}${index < lines.length - 1 ? '\n' : ''}</span>`);
  return html`<pre class="copy"><code>${rows}</code></pre>
<p class="hint">${t(locale, 'common.copyHint')}</p>`;
}

/**
 * "Try again" as a link back to the start of the flow, or, without a usable link, the advice to
 * open the vendor's link again.
 */
export function retry(retryUrl: string | undefined, vendor: string, locale: Locale): Html {
  const href = retryUrl === undefined ? undefined : safeUrl(retryUrl);
  return href === undefined
    ? html`<p>${t(locale, 'common.openLinkAgain', { vendor })}</p>`
    : html`<p><a class="button" href="${href}">${t(locale, 'common.tryAgain')}</a></p>`;
}

// Support details come partly from Microsoft's redirect, which anyone can forge: only values of the
// shape support expects are shown, so the page cannot be made to display someone else's message.
const REFERENCE_VALUE = /^[A-Za-z0-9._:-]{1,128}$/;
const OAUTH_ERROR = /^[a-z_]{1,64}$/;

/** The details support needs, in a block that tells the reader to pass them on; nothing when there are none. */
export function supportDetails(reference: SupportReference | undefined, vendor: string, locale: Locale): Html | undefined {
  if (!reference) return undefined;
  const facts: Html[] = [];
  const fact = (label: Html, value: Html): void => {
    facts.push(html`<dt>${label}</dt><dd>${value}</dd>`);
  };
  if (reference.aadsts !== undefined && Number.isSafeInteger(reference.aadsts) && reference.aadsts > 0) {
    fact(t(locale, 'common.support.code'), html`<code>AADSTS${reference.aadsts}</code>`);
  }
  if (reference.oauthError !== undefined && OAUTH_ERROR.test(reference.oauthError)) {
    fact(t(locale, 'common.support.microsoftError'), html`<code>${reference.oauthError}</code>`);
  }
  const ids = [
    ['common.support.requestId', reference.requestId],
    ['common.support.traceId', reference.traceId],
    ['common.support.correlationId', reference.correlationId],
  ] as const;
  for (const [label, value] of ids) {
    if (value !== undefined && REFERENCE_VALUE.test(value)) fact(t(locale, label), html`<code>${value}</code>`);
  }
  if (reference.occurredAt && !Number.isNaN(reference.occurredAt.getTime())) {
    fact(t(locale, 'common.support.time'), time(reference.occurredAt, locale));
  }
  if (facts.length === 0) return undefined;
  return html`<section class="support">
<h2>${t(locale, 'common.support.heading')}</h2>
<p>${t(locale, 'common.support.intro', { vendor })}</p>
<dl class="facts">${facts}</dl>
</section>`;
}
