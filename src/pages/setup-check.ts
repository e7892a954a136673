import type { CheckStep } from '../domain/connection-check.js';
import { time } from './components.js';
import { html, safeUrl, type Html } from './html.js';
import { t, type Locale } from './i18n.js';
import type { SetupCheck } from './model.js';

/**
 * "Check again" on the Exchange set-up page: a plain form (the pages run no script), and what the
 * check found, step by step, each failure with its cause and what to do. The causes come from the
 * connector's checker in English, as do Exchange's own replies: they are marked as English so a
 * screen reader on a Portuguese or Spanish page reads them right.
 */

const MARKS: Readonly<Record<CheckStep['outcome'], string>> = { ok: '✓', failed: '✗', skipped: '–' };
const RESOURCES: Readonly<Record<NonNullable<CheckStep['resource']>, string>> = { graph: 'Microsoft Graph', outlook: 'Exchange Online' };

/** The anchor the form's action carries, so the answer opens at the result rather than the top. */
export const SETUP_CHECK_ANCHOR = 'check';

export function setupCheckSection(check: SetupCheck, mailboxes: readonly string[], vendor: string, locale: Locale): Html {
  const heading = html`<h2>${t(locale, 'exchange.check.heading')}</h2>`;
  if (check.notice === 'unavailable') {
    return html`<section id="${SETUP_CHECK_ANCHOR}">
${heading}
<p class="notice">${t(locale, 'exchange.check.unavailable')} ${t(locale, 'common.newLink', { vendor })}</p>
</section>`;
  }
  const action = safeUrl(check.action);
  return html`<section id="${SETUP_CHECK_ANCHOR}">
${heading}
${check.notice === 'wait' ? html`<p class="notice">${t(locale, 'exchange.check.wait')}</p>` : ''}
${check.result === undefined ? '' : result(check.result.steps, check.result.checkedAt, mailboxes, vendor, locale)}
<p>${t(locale, 'exchange.check.intro', { vendor })}</p>
${action === undefined ? '' : html`<form method="post" action="${action}"><button type="submit" class="button">${t(locale, 'exchange.check.button')}</button></form>`}
</section>`;
}

function result(steps: readonly CheckStep[], checkedAt: string, mailboxes: readonly string[], vendor: string, locale: Locale): Html {
  const failed = steps.filter((step) => step.outcome === 'failed').length;
  const summary =
    steps.length === 0
      ? t(locale, 'exchange.check.none', { vendor })
      : failed === 0
        ? t(locale, 'exchange.check.ok', { vendor })
        : t(locale, 'exchange.check.failed', { failed: String(failed), total: String(steps.length) });
  const checked = new Set(steps.flatMap((step) => (step.mailbox === undefined ? [] : [step.mailbox.toLowerCase()]))).size;
  const partial = checked > 0 && checked < mailboxes.length ? t(locale, 'exchange.check.partial', { checked: String(checked), total: String(mailboxes.length) }) : '';
  return html`<p>${t(locale, 'exchange.check.checkedAt', { time: time(new Date(checkedAt), locale) })} ${summary} ${partial}</p>
${steps.length === 0 ? '' : html`<ul class="checks">${steps.map((step) => stepItem(step, locale))}</ul>`}`;
}

function stepItem(step: CheckStep, locale: Locale): Html {
  const label =
    step.step === 'token'
      ? t(locale, 'exchange.check.step.token', { resource: RESOURCES[step.resource ?? 'outlook'] })
      : t(locale, `exchange.check.step.${step.step}`, { mailbox: step.mailbox ?? '' });
  const cause = step.outcome === 'failed' ? step.cause : undefined;
  return html`<li class="${step.outcome}"><span class="mark" aria-hidden="true">${MARKS[step.outcome]}</span> ${label}: ${t(locale, `exchange.check.outcome.${step.outcome}`)}${
    cause === undefined
      ? ''
      : html`
<p>${english(cause.explanation, locale)}</p>
<p>${t(locale, 'exchange.check.nextStep', { step: english(cause.nextStep, locale) })}</p>
${cause.microsoftCode === undefined ? '' : html`<p>${t(locale, 'exchange.check.code', { code: html`<code>${cause.microsoftCode}</code>` })}</p>`}`
  }${step.serverText === undefined ? '' : html`
<p>${t(locale, 'exchange.check.server', { reply: html`<code>${step.serverText}</code>` })}</p>`}</li>`;
}

function english(text: string, locale: Locale): Html {
  return locale === 'en' ? html`${text}` : html`<span lang="en">${text}</span>`;
}
