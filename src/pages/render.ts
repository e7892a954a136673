import { adminApprovalNeededPage } from './admin-approval-needed.js';
import { adminGrantedPage } from './admin-granted.js';
import type { PageContent } from './components.js';
import { connectedPage } from './connected.js';
import { declinedPage } from './declined.js';
import { exchangeAppSetupPage } from './exchange-app-setup.js';
import type { Locale } from './i18n.js';
import { landingPage } from './landing.js';
import { layout } from './layout.js';
import { linkInvalidPage } from './link-invalid.js';
import type { PageModel } from './model.js';
import { signInErrorPage } from './sign-in-error.js';
import { unexpectedErrorPage } from './unexpected-error.js';
import { wrongAccountPage } from './wrong-account.js';

export interface RenderedPage {
  /** A complete document; send it as `text/html; charset=utf-8` with `contentSecurityPolicy()`. */
  html: string;
  status: number;
}

function content(page: PageModel, locale: Locale): PageContent {
  switch (page.kind) {
    case 'landing':
      return landingPage(page, locale);
    case 'connected':
      return connectedPage(page, locale);
    case 'exchange-app-setup':
      return exchangeAppSetupPage(page, locale);
    case 'admin-approval-needed':
      return adminApprovalNeededPage(page, locale);
    case 'admin-granted':
      return adminGrantedPage(page, locale);
    case 'declined':
      return declinedPage(page, locale);
    case 'wrong-account':
      return wrongAccountPage(page, locale);
    case 'link-invalid':
      return linkInvalidPage(page, locale);
    case 'sign-in-error':
      return signInErrorPage(page, locale);
    case 'unexpected-error':
      return unexpectedErrorPage(page, locale);
  }
}

export function renderPage(page: PageModel, locale: Locale): RenderedPage {
  const rendered = content(page, locale);
  return { html: layout(rendered, page, locale), status: rendered.status };
}
