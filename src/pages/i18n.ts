import { escapeHtml, Html, raw } from './html.js';
import type { Catalog, MessageKey, Placeholders } from './messages/catalog.js';
import { en } from './messages/en.js';
import { es } from './messages/es.js';
import { ptBR } from './messages/pt-BR.js';

/**
 * The languages of the pages, how one is chosen for a request, and messages and dates in it.
 */

export const LOCALES = ['en', 'pt-BR', 'es'] as const;
export type Locale = (typeof LOCALES)[number];
export const DEFAULT_LOCALE: Locale = 'en';

export const CATALOGS: Readonly<Record<Locale, Catalog>> = { en, 'pt-BR': ptBR, es };

/** Each language by its own name: a reader looks for their language, not its English name. */
export const LOCALE_NAMES: Readonly<Record<Locale, string>> = { en: 'English', 'pt-BR': 'Português (Brasil)', es: 'Español' };

export type { MessageKey };

/** What fills a message's placeholders: text (escaped) or a fragment such as a link or `<code>`. */
type MessageParams<Key extends MessageKey> = Record<Placeholders<(typeof en)[Key]>, string | Html>;
type MessageArgs<Key extends MessageKey> = [Placeholders<(typeof en)[Key]>] extends [never] ? [] : [params: MessageParams<Key>];

/** A message in `locale` as HTML: its own text escaped, its placeholders filled. */
export function t<Key extends MessageKey>(locale: Locale, key: Key, ...args: MessageArgs<Key>): Html {
  const params: Readonly<Record<string, string | Html>> = args[0] ?? {};
  const text = CATALOGS[locale][key];
  let markup = '';
  let last = 0;
  for (const match of text.matchAll(/\{(\w+)\}/g)) {
    const name = match[1] ?? '';
    const value = params[name];
    if (value === undefined) throw new Error(`message ${key} (${locale}) needs a value for {${name}}`);
    markup += escapeHtml(text.slice(last, match.index)) + (value instanceof Html ? value.toString() : escapeHtml(value));
    last = match.index + match[0].length;
  }
  return raw(markup + escapeHtml(text.slice(last)));
}

/**
 * The language to answer in. A supported `override` (the language switch's `?lang=`) wins; then the
 * Accept-Language ranges by quality (RFC 9110 §12.5.4; equal qualities keep the browser's order, q=0
 * means "not this one", malformed entries are ignored); then English. A range matches a language
 * exactly (case-insensitive) or by its primary subtag, so pt-PT and pt get Brazilian Portuguese,
 * es-419 and es-MX get Spanish, and en-GB gets English: a close variant reads better than a
 * language the reader did not ask for. `*` stands for English.
 */
export function negotiateLocale(acceptLanguage: string | null, override?: string): Locale {
  const overridden = override === undefined ? undefined : matchLocale(override);
  if (overridden) return overridden;
  for (const range of languageRanges(acceptLanguage ?? '')) {
    const match = range === '*' ? DEFAULT_LOCALE : matchLocale(range);
    if (match) return match;
  }
  return DEFAULT_LOCALE;
}

const LANGUAGE_RANGE = /^(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)$/i;
const QUALITY = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/** The acceptable ranges of an Accept-Language value, most wanted first. */
function languageRanges(header: string): string[] {
  const ranges: { range: string; quality: number }[] = [];
  for (const entry of header.split(',')) {
    const [range = '', ...parameters] = entry.split(';').map((part) => part.trim());
    if (!LANGUAGE_RANGE.test(range)) continue;
    let quality = 1;
    const q = parameters.find((parameter) => /^q=/i.test(parameter));
    if (q !== undefined) {
      const value = q.slice(2);
      if (!QUALITY.test(value)) continue;
      quality = Number(value);
    }
    if (quality > 0) ranges.push({ range, quality });
  }
  // Array.prototype.sort is stable: ranges of equal quality stay in the order the browser sent.
  return ranges.sort((a, b) => b.quality - a.quality).map(({ range }) => range);
}

/** The page language for a language tag (pt-br → pt-BR, es-MX → es), if there is one. */
export function matchLocale(tag: string): Locale | undefined {
  const wanted = tag.trim().toLowerCase();
  const exact = LOCALES.find((locale) => locale.toLowerCase() === wanted);
  if (exact) return exact;
  const primary = wanted.split('-')[0];
  return LOCALES.find((locale) => locale.toLowerCase().split('-')[0] === primary);
}

const dateTimeFormats = new Map<Locale, Intl.DateTimeFormat>();

/**
 * A moment as the reader's language writes it, in UTC and saying so: the server does not know the
 * reader's time zone, and an unlabelled time would be read as local.
 */
export function formatDateTime(date: Date, locale: Locale): string {
  let format = dateTimeFormats.get(locale);
  if (!format) {
    format = new Intl.DateTimeFormat(locale, {
      year: 'numeric',
      month: 'long',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      timeZone: 'UTC',
      timeZoneName: 'short',
    });
    dateTimeFormats.set(locale, format);
  }
  return format.format(date);
}
