import type { ConnectionMode } from '../domain/connection.js';
import type { ConnectionCheck } from '../domain/connection-check.js';
import type { ExchangeSetup } from '../domain/exchange-setup.js';

/**
 * What each page shows, as data: the HTTP handlers decide which page and fill it in; the page
 * modules turn it into HTML in the reader's language. Every text value here is escaped when shown,
 * and every URL must be http(s) or a path on this site to become a link (see `safeUrl`).
 */

export interface PageBase {
  /** The vendor that deployed the connector, as its customers know it. */
  vendorName: string;
  /**
   * This page's own address (path and query), which GET can fetch again: the language switch links
   * to it with `lang` set. A page shown in answer to a POST (the OAuth form_post callback) should
   * be served through a redirect to such an address, or switching language would repeat the POST.
   */
  url: string;
}

/** What support needs to find a failure in our logs and in Microsoft's sign-in logs. */
export interface SupportReference {
  /** Our id for the request (the function invocation id). */
  requestId?: string;
  /** The AADSTS number from Microsoft's `error_codes` or `error_description`. */
  aadsts?: number;
  /** Microsoft's OAuth `error` value, such as `access_denied`. */
  oauthError?: string;
  traceId?: string;
  correlationId?: string;
  occurredAt?: Date;
}

export interface TenantRef {
  id: string;
  name?: string;
}

export interface LandingPage extends PageBase {
  kind: 'landing';
  /** The vendor's name for its customer, whose admin opened the link. */
  customerName: string;
  mode: ConnectionMode;
  /**
   * What is asked for: scopes (`https://graph.microsoft.com/Mail.Send`, `offline_access`, …) in
   * delegated mode, app roles (`Mail.Send`, `IMAP.AccessAsApp`, …) or a `.default` scope in
   * application mode. Each becomes a sentence; an unknown one is shown by name.
   */
  permissions: readonly string[];
  expiresAt: Date;
  /** The one button: a POST of these fields to this URL, which goes on to Microsoft. */
  continueTo: { action: string; fields: Readonly<Record<string, string>> };
  /** On a reconnect, the account that must sign in again. */
  expectedAccount?: string;
  /**
   * admin-grant: an administrator approves a delegated connection's permissions for the whole
   * organization (its users may not consent themselves); nothing is connected by this link.
   */
  purpose?: 'connect' | 'admin-grant';
}

export interface ConnectedPage extends PageBase {
  kind: 'connected';
  mode: ConnectionMode;
  tenant: TenantRef;
  /** The signed-in user (delegated mode). */
  account?: string;
  /** The scopes (delegated) or app roles (application) that were granted. */
  permissions: readonly string[];
  mailboxes: readonly string[];
}

export interface ExchangeAppSetupPage extends PageBase {
  kind: 'exchange-app-setup';
  tenant: TenantRef;
  setup: ExchangeSetup;
  /** "Check again", where the page can check its connection; no button without it. */
  check?: SetupCheck;
}

/** The Exchange set-up page's connectivity check: a button that posts to `action`, and what it found. */
export interface SetupCheck {
  action: string;
  /** What the check that this page answers found. */
  result?: ConnectionCheck;
  /**
   * Why no check ran: `wait`, one ran moments ago; `unavailable`, the connection was removed or
   * disconnected since the page was made.
   */
  notice?: 'wait' | 'unavailable';
}

/** User consent is not allowed in the tenant (AADSTS90094, 90093, or 65001 on a user's sign-in). */
export interface AdminApprovalNeededPage extends PageBase {
  kind: 'admin-approval-needed';
  /** The admin-consent URL to forward to an administrator. */
  adminConsentUrl: string;
  /** What that link asks for, to name the administrator roles that can grant it. */
  permissions: readonly string[];
  retryUrl?: string;
  reference?: SupportReference;
}

/**
 * An administrator opened the link from an admin-approval-needed page and granted the delegated
 * permissions for the organization: nothing is connected until a user signs in.
 */
export interface AdminGrantedPage extends PageBase {
  kind: 'admin-granted';
  /** A link that connects a mailbox now. */
  retryUrl?: string;
}

/** The user or administrator pressed Cancel on Microsoft's page. */
export interface DeclinedPage extends PageBase {
  kind: 'declined';
  retryUrl?: string;
  reference?: SupportReference;
}

/** Signed in to another tenant than the connection's, or as another user on a reconnect. */
export interface WrongAccountPage extends PageBase {
  kind: 'wrong-account';
  reason: 'other-tenant' | 'other-user';
  /** The tenant (name or id) or account the connection belongs to. */
  expected: string;
  /** The tenant or account that signed in. */
  actual: string;
  retryUrl?: string;
  reference?: SupportReference;
}

export const LINK_INVALID_REASONS = ['expired', 'tampered', 'used', 'unknown'] as const;
export type LinkInvalidReason = (typeof LINK_INVALID_REASONS)[number];

export interface LinkInvalidPage extends PageBase {
  kind: 'link-invalid';
  reason: LinkInvalidReason;
  reference?: SupportReference;
}

/** Any other error Microsoft's sign-in returned; `reference.aadsts` picks the explanation. */
export interface SignInErrorPage extends PageBase {
  kind: 'sign-in-error';
  retryUrl?: string;
  reference: SupportReference;
  /**
   * Permissions the consent should have granted and did not, because the vendor's app registration
   * does not list them: the vendor's fault, explained as such, whatever the reference says.
   */
  missingPermissions?: readonly string[];
}

/** Our own failure: the handler caught something it did not expect. */
export interface UnexpectedErrorPage extends PageBase {
  kind: 'unexpected-error';
  reference: SupportReference;
}

export type PageModel =
  | LandingPage
  | ConnectedPage
  | ExchangeAppSetupPage
  | AdminApprovalNeededPage
  | AdminGrantedPage
  | DeclinedPage
  | WrongAccountPage
  | LinkInvalidPage
  | SignInErrorPage
  | UnexpectedErrorPage;

export type PageKind = PageModel['kind'];
