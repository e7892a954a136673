/**
 * HTML built by a tagged template that escapes everything interpolated into it. Vendor names,
 * tenant names, account names and error details come from outside; the only way to put markup
 * into a page is a fragment that was itself built by `html` (or, for constants, `raw`).
 */

/** Markup that is safe to insert as is. The private field makes it impossible to forge structurally. */
export class Html {
  readonly #markup: string;

  constructor(markup: string) {
    this.#markup = markup;
  }

  toString(): string {
    return this.#markup;
  }
}

/** What a template accepts: text (escaped), numbers, fragments, lists of these, and nothing. */
export type Interpolation = string | number | Html | readonly Interpolation[] | null | undefined | false;

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for element content and for quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character] ?? character);
}

function render(value: Interpolation): string {
  if (value instanceof Html) return value.toString();
  if (value === null || value === undefined || value === false) return '';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return escapeHtml(value);
  return value.map(render).join('');
}

export function html(strings: TemplateStringsArray, ...values: readonly Interpolation[]): Html {
  let markup = strings[0] ?? '';
  values.forEach((value, index) => {
    markup += render(value) + (strings[index + 1] ?? '');
  });
  return new Html(markup);
}

/** Markup written in this code base (the style sheet): never pass anything that came from outside. */
export function raw(markup: string): Html {
  return new Html(markup);
}

/**
 * The URL when it may become an href or a form action: absolute http(s), or a path on this site.
 * Anything else (javascript:, data:, protocol-relative //host, backslash tricks) is refused: a
 * link on these pages must never run script, whatever value slipped through from outside.
 */
export function safeUrl(url: string): string | undefined {
  // Browsers strip these before parsing ("java\tscript:"), so a check must not be fooled by them.
  if (/[\p{Cc}\s\\]/u.test(url)) return undefined;
  if (url.startsWith('/')) return url.startsWith('//') ? undefined : url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? url : undefined;
}
