/** The pages a customer's IT admin sees: what the HTTP handlers use. */
export { matchLocale, negotiateLocale, LOCALES, type Locale } from './i18n.js';
export { contentSecurityPolicy, pageHeaders } from './layout.js';
export { renderPage, type RenderedPage } from './render.js';
export { SETUP_CHECK_ANCHOR } from './setup-check.js';
export type * from './model.js';
