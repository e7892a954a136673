import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { matchLocale, negotiateLocale, pageHeaders, renderPage, SETUP_CHECK_ANCHOR, type Locale, type PageModel } from '../pages/index.js';
import { LINK_INVALID_REASONS, type LinkInvalidReason } from '../pages/model.js';
import type { Logger } from '../telemetry/logger.js';
import type { CheckAgain } from './check-again.js';
import type { ConnectFlow, FlowStep } from './connect-flow.js';
import type { ConnectOutcome, ConnectResults } from './connect-results.js';

/**
 * The connect flow over HTTP: the pages people open and the redirect URIs Microsoft sends them
 * back to. Every POST ends in a redirect (to Microsoft, or to a result page), so what a person
 * reads is always a GET they can reload or see in another language. Failures of our own become a
 * page naming the request id, never a stack trace.
 */

export interface ConnectRuntime {
  flow: ConnectFlow;
  results: ConnectResults;
  /** The Exchange set-up page's "Check again" for the result with this id (see check-again.ts). */
  checkAgain(resultId: string): Promise<CheckAgain>;
  vendorName: string;
  /** Origins a form on our pages may end up at: the identity platform's sign-in pages. */
  formActions(): Promise<string[]>;
  logFor(context: InvocationContext): Logger;
}

/** Microsoft's form_post carries a code, a state and perhaps an id token: a few kilobytes. */
const MAX_FORM_BYTES = 64 * 1024;

// The link comes from the path as the person's browser sent it (decoded): encoded again, so a
// redirect to it is a valid Location whatever it holds (a NUL, a line break, U+202E).
const ROUTES = {
  landing: (link: string) => `/api/connect/${encodeURIComponent(link)}`,
  start: (link: string) => `/api/connect/${encodeURIComponent(link)}/start`,
  result: (id: string) => `/api/connect/result/${id}`,
  check: (id: string) => `/api/connect/result/${id}/check`,
  problem: (reason: LinkInvalidReason) => `/api/connect/problem/${reason}`,
};

/** Who the pages say is asking when the connector cannot tell (it is not configured, or failed to start). */
const FALLBACK_VENDOR = 'Microsoft 365 connection';

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

/** Runs `handle` with the connect runtime; anything unexpected becomes the error page. */
function pageHandler(runtime: () => Promise<ConnectRuntime | undefined>, handle: (request: HttpRequest, runtime: ConnectRuntime, context: InvocationContext) => Promise<HttpResponseInit>): Handler {
  return async (request, context) => {
    const locale = localeOf(request);
    let connect: ConnectRuntime | undefined;
    try {
      connect = await runtime();
      if (!connect) return notConfigured(locale, context.invocationId);
      return await handle(request, connect, context);
    } catch (error) {
      (connect?.logFor(context) ?? consoleFallback(context)).error('connect: request failed', { error, requestId: context.invocationId });
      return page(
        {
          kind: 'unexpected-error',
          vendorName: connect?.vendorName ?? FALLBACK_VENDOR,
          url: pathOf(request),
          reference: { requestId: context.invocationId, occurredAt: new Date() },
        },
        locale,
        [],
      );
    }
  };
}

/** GET /api/connect/{link}: what is asked, and the one button. */
export const landingHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, async (request, connect) => {
    const link = request.params.link ?? '';
    const locale = localeOf(request);
    const result = await connect.flow.landing(link);
    const base = { vendorName: connect.vendorName, url: pathOf(request) };
    if (result.kind === 'link-invalid') return page({ ...base, kind: 'link-invalid', reason: result.reason }, locale, []);
    const { landing } = result;
    return page(
      {
        ...base,
        kind: 'landing',
        customerName: landing.customerName,
        mode: landing.mode,
        permissions: landing.permissions,
        expiresAt: landing.expiresAt,
        // The language chosen with the switch travels through Microsoft in the sign-in state.
        continueTo: { action: withLang(ROUTES.start(link), request), fields: {} },
        purpose: landing.purpose,
        ...(landing.expectedAccount !== undefined && { expectedAccount: landing.expectedAccount }),
      },
      locale,
      await connect.formActions(),
    );
  });

/** POST /api/connect/{link}/start: off to Microsoft. */
export const startHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, async (request, connect) => {
    const link = request.params.link ?? '';
    const step = await connect.flow.start(link, chosenLocale(request));
    if (step.kind === 'link-invalid') return seeOther(withLang(ROUTES.landing(link), request));
    return follow(step, connect, request);
  });

/** POST /api/connect/callback: Microsoft's form_post after a sign-in. */
export const signInCallbackHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, async (request, connect) => {
    const form = await readForm(request);
    if (!form) return seeOther(ROUTES.problem('unknown'));
    return follow(await connect.flow.completeSignIn(form), connect, request);
  });

/** GET /api/connect/admin-callback: Microsoft's redirect after admin consent. */
export const adminConsentCallbackHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, async (request, connect) => {
    const query = Object.fromEntries([...new Set(request.query.keys())].map((key) => [key, request.query.get(key) ?? undefined]));
    return follow(await connect.flow.completeAdminConsent(query), connect, request);
  });

/** GET /api/connect/result/{id}: how a sign-in ended. */
export const resultHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, async (request, connect) => {
    const id = request.params.id ?? '';
    const stored = await connect.results.load(id);
    const base = { vendorName: connect.vendorName, url: pathOf(request) };
    if (!stored) return page({ ...base, kind: 'link-invalid', reason: 'expired' }, localeOf(request), []);
    const { outcome, subject } = stored;
    if (outcome.kind === 'exchange-app-setup' && subject) return page({ ...base, ...outcome, check: { action: checkAction(id, request) } }, localeOf(request), []);
    return page({ ...base, ...outcome }, localeOf(request), []);
  });

/**
 * POST /api/connect/result/{id}/check: the Exchange set-up page's "Check again". The answer is the
 * page itself with what the check found; its language links lead to the result's GET address, so
 * switching language shows the page again without repeating the check.
 */
export const checkAgainHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, async (request, connect, context) => {
    const id = request.params.id ?? '';
    const locale = localeOf(request);
    const base = { vendorName: connect.vendorName, url: withLang(ROUTES.result(id), request) };
    const checked = await connect.checkAgain(id);
    if (checked.kind === 'gone') return page({ ...base, kind: 'link-invalid', reason: 'expired' }, locale, []);
    if (checked.kind === 'not-checkable') return seeOther(base.url);
    const action = checkAction(id, request);
    if (checked.kind === 'unavailable') return page({ ...base, ...checked.outcome, check: { action, notice: 'unavailable' } }, locale, []);
    if (checked.kind === 'wait') {
      const retryAfter = String(Math.max(1, Math.ceil(checked.retryAfterMs / 1000)));
      return page({ ...base, ...checked.outcome, check: { action, notice: 'wait' } }, locale, [], { 'retry-after': retryAfter });
    }
    const { connection, check } = checked;
    const failed = check.steps.filter((step) => step.outcome === 'failed');
    connect.logFor(context).info('connect: the administrator checked the Exchange set-up', {
      customerId: connection.customerId,
      connectionId: connection.id,
      ok: check.ok,
      steps: check.steps.length,
      ...(failed.length > 0 && { failures: failed.map((step) => `${step.step}:${step.cause?.code ?? 'unknown'}`).join(' ') }),
    });
    return page({ ...base, ...checked.outcome, check: { action, result: check } }, locale, []);
  });

/** GET /api/connect/problem/{reason}: a refused callback, with nothing worth storing. */
export const problemHandler = (runtime: () => Promise<ConnectRuntime | undefined>): Handler =>
  pageHandler(runtime, (request, connect) => {
    const given = request.params.reason ?? '';
    const reason = (LINK_INVALID_REASONS as readonly string[]).includes(given) ? (given as LinkInvalidReason) : 'unknown';
    return Promise.resolve(page({ kind: 'link-invalid', reason, vendorName: connect.vendorName, url: pathOf(request) }, localeOf(request), []));
  });

async function follow(step: FlowStep, connect: ConnectRuntime, request: HttpRequest): Promise<HttpResponseInit> {
  if (step.kind === 'redirect') return seeOther(step.url);
  const outcome: ConnectOutcome = step.outcome;
  // A refused link or state has nothing of its own to show: no row is written for it.
  const lang = step.lang ?? request.query.get('lang') ?? undefined;
  if (outcome.kind === 'link-invalid' && outcome.reference === undefined) return seeOther(withLang(ROUTES.problem(outcome.reason), lang));
  return seeOther(withLang(ROUTES.result(await connect.results.save(outcome, step.subject)), lang));
}

function page(model: PageModel, locale: Locale, formActions: readonly string[], headers: Record<string, string> = {}): HttpResponseInit {
  const rendered = renderPage(model, locale);
  return {
    status: rendered.status,
    headers: { ...pageHeaders(locale, formActions), ...headers },
    body: rendered.html,
  };
}

/** Where "Check again" posts, in the reader's language, opening the answer at the check's result. */
function checkAction(id: string, request: HttpRequest): string {
  return `${withLang(ROUTES.check(id), request)}#${SETUP_CHECK_ANCHOR}`;
}

function seeOther(location: string): HttpResponseInit {
  // Links carry bearer tokens (consent links, result ids): they must not leak to another site.
  return { status: 303, headers: { location, 'cache-control': 'no-store', 'referrer-policy': 'same-origin' } };
}

function notConfigured(locale: Locale, requestId: string): HttpResponseInit {
  return {
    ...page({ kind: 'unexpected-error', vendorName: FALLBACK_VENDOR, url: '/', reference: { requestId, oauthError: 'not_configured' } }, locale, []),
    status: 503,
  };
}

function localeOf(request: HttpRequest): Locale {
  return negotiateLocale(request.headers.get('accept-language'), request.query.get('lang') ?? undefined);
}

/** The language the reader chose with the switch, if it is one the pages have. */
function chosenLocale(request: HttpRequest): Locale | undefined {
  const lang = request.query.get('lang');
  return lang === null ? undefined : matchLocale(lang);
}

/** Keeps the reader's language choice across a redirect. */
function withLang(path: string, from: HttpRequest | string | undefined): string {
  const lang = typeof from === 'string' || from === undefined ? from : (from.query.get('lang') ?? undefined);
  return lang ? `${path}?lang=${encodeURIComponent(lang)}` : path;
}

function pathOf(request: HttpRequest): string {
  const url = new URL(request.url);
  return `${url.pathname}${url.search}`;
}

async function readForm(request: HttpRequest): Promise<Record<string, string> | undefined> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) return undefined;
  if (Number(request.headers.get('content-length') ?? '0') > MAX_FORM_BYTES) return undefined;
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_FORM_BYTES) return undefined;
  const params = new URLSearchParams(bytes.toString('utf8'));
  return Object.fromEntries([...new Set(params.keys())].map((key) => [key, params.get(key) ?? '']));
}

function consoleFallback(context: InvocationContext): Pick<Logger, 'error'> {
  return {
    error: (message) => {
      context.error(message);
    },
  };
}
