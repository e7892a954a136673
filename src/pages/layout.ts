import { createHash } from 'node:crypto';
import type { PageContent } from './components.js';
import { html, raw } from './html.js';
import { LOCALE_NAMES, LOCALES, t, type Locale } from './i18n.js';
import type { PageBase } from './model.js';

/**
 * The frame around every page: one calm look, with no external asset (no fonts, images or
 * scripts from anywhere), so the pages work on locked-down networks and under a strict
 * Content-Security-Policy. Colours keep at least 4.5:1 contrast; focus is always visible.
 */

const STYLE = `
:root{color-scheme:light;--ink:#1b1f24;--muted:#454e5b;--paper:#fff;--wash:#f3f5f8;--line:#d3d9e0;--accent:#0a58a8;--accent-dark:#074281;--success:#1b6b38;--action:#8a5300;--problem:#a3260f;--info:#0a58a8}
*{box-sizing:border-box}
body{margin:0;background:var(--wash);color:var(--ink);font:100%/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header,main,footer{max-width:46rem;margin:0 auto;padding:1rem 1.25rem}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem 1rem}
.vendor{margin:0;font-weight:700;font-size:1.125rem}
.tagline{margin:0;color:var(--muted)}
main{background:var(--paper);border:1px solid var(--line);border-top:.35rem solid var(--info);border-radius:.5rem;padding:1.5rem 1.5rem 2rem}
main.success{border-top-color:var(--success)}
main.action{border-top-color:var(--action)}
main.problem{border-top-color:var(--problem)}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 1rem}
h2{font-size:1.15rem;line-height:1.3;margin:1.75rem 0 .5rem}
p,ul,ol,dl,pre,form{margin:0 0 1rem}
li{margin:.25rem 0}
.lead{font-size:1.075rem}
.hint{color:var(--muted);font-size:.925rem}
a{color:var(--accent);text-decoration-thickness:.08em;text-underline-offset:.15em}
a:hover{color:var(--accent-dark);text-decoration-thickness:.15em}
:focus-visible{outline:3px solid var(--accent);outline-offset:3px;border-radius:.2rem}
.button{display:inline-block;background:var(--accent);color:#fff;border:0;border-radius:.375rem;padding:.75rem 1.25rem;font:inherit;font-weight:600;line-height:1.3;text-decoration:none;cursor:pointer}
.button:hover{background:var(--accent-dark);color:#fff}
code,pre{font-family:ui-monospace,SFMono-Regular,Consolas,"Liberation Mono",Menlo,monospace;font-size:.9em}
code{overflow-wrap:anywhere}
pre{background:var(--wash);border:1px solid var(--line);border-radius:.375rem;padding:.75rem 1rem;white-space:pre-wrap;overflow-wrap:anywhere}
pre code{font-size:1em}
.copy{-webkit-user-select:all;user-select:all}
.copy span{display:block;padding-left:2ch;text-indent:-2ch}
.facts{display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.35rem 1rem}
.facts dt{font-weight:600}
.facts dd{margin:0;overflow-wrap:anywhere}
.facts ul{margin:0;padding-left:1.25rem}
.support{border-top:1px solid var(--line);margin-top:2rem}
.notice{border-left:.3rem solid var(--action);background:var(--wash);padding:.5rem .75rem}
.checks{list-style:none;padding:0}
.checks>li{margin:.75rem 0}
.checks p{margin:.25rem 0 0 2ch}
.mark{display:inline-block;width:2ch;font-weight:700}
.ok>.mark{color:var(--success)}
.failed>.mark{color:var(--problem)}
footer{color:var(--muted);font-size:.925rem}
footer ul{list-style:none;display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;padding:0}
footer a[aria-current]{font-weight:700;color:var(--ink)}
@media (max-width:36rem){main{border-radius:0;border-left:0;border-right:0;padding:1.25rem 1rem 1.5rem}.facts{grid-template-columns:1fr;gap:0}.facts dd{margin-bottom:.5rem}h1{font-size:1.4rem}}
`;

const STYLE_HASH = `sha256-${createHash('sha256').update(STYLE).digest('base64')}`;

/**
 * The Content-Security-Policy to send with the pages: nothing loads, nothing runs, the one inline
 * style sheet is allowed by its hash. `formActions` are the other origins a form may reach:
 * Chromium applies form-action to the redirects that follow a submission too, so when the landing
 * form posts here and is redirected to Microsoft's sign-in, that sign-in origin must be listed.
 */
export function contentSecurityPolicy(formActions: readonly string[] = []): string {
  return [
    "default-src 'none'",
    `style-src '${STYLE_HASH}'`,
    ["form-action 'self'", ...formActions].join(' '),
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * The response headers of a page in `locale`: its policy, its language, and no caching (the pages
 * show one-time links and results). `formActions` as for `contentSecurityPolicy`.
 */
export function pageHeaders(locale: Locale, formActions: readonly string[] = []): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-language': locale,
    // The language follows Accept-Language unless the URL names one.
    vary: 'Accept-Language',
    'cache-control': 'no-store',
    'content-security-policy': contentSecurityPolicy(formActions),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
  };
}

/**
 * This page's address with `lang` set, the other query parameters kept. Only the path and query
 * are used, with leading slashes collapsed, so the link stays on this site whatever `url` holds.
 */
export function languageHref(url: string, locale: Locale): string {
  const parsed = new URL(url, 'http://page.invalid');
  parsed.searchParams.set('lang', locale);
  return `${parsed.pathname.replace(/^\/+/, '/')}${parsed.search}`;
}

export function layout(content: PageContent, page: PageBase, locale: Locale): string {
  const vendor = page.vendorName;
  const languages = LOCALES.map(
    (option) =>
      html`<li><a href="${languageHref(page.url, option)}" hreflang="${option}" lang="${option}"${option === locale ? raw(' aria-current="true"') : ''}>${LOCALE_NAMES[option]}</a></li>`,
  );
  return html`<!doctype html>
<html lang="${locale}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<meta name="robots" content="noindex, nofollow">
<title>${t(locale, 'layout.title', { page: content.title, vendor })}</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<header>
<p class="vendor">${vendor}</p>
<p class="tagline">${t(locale, 'layout.tagline')}</p>
</header>
<main class="${content.tone}">
${content.body}
</main>
<footer>
<p>${t(locale, 'layout.footer', { vendor })}</p>
<nav aria-label="${t(locale, 'layout.languages')}">
<ul>${languages}</ul>
</nav>
</footer>
</body>
</html>
`.toString();
}
