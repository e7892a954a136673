import { errorDescription, type AadstsError, type ErrorIds } from './aadsts.js';
import { htmlResponse, redirectResponse, type SandboxResponse } from './http.js';
import { errorPage, formPostPage } from './pages.js';

/**
 * How an authorization answer reaches the app's redirect URI: in the query (the default for
 * code), in the fragment, or as an auto-submitting form POST (`response_mode=form_post`, which
 * Entra recommends for web apps and msal-node's interactive flows use).
 */

export type ResponseMode = 'query' | 'fragment' | 'form_post';

export function isResponseMode(value: string): value is ResponseMode {
  return value === 'query' || value === 'fragment' || value === 'form_post';
}

export function authorizationResponse(mode: ResponseMode, redirectUri: string, params: [string, string][]): SandboxResponse {
  if (mode === 'form_post') return htmlResponse(200, formPostPage(redirectUri, Object.fromEntries(params)));
  const target = new URL(redirectUri);
  if (mode === 'fragment') {
    target.hash = new URLSearchParams(params).toString();
  } else {
    for (const [name, value] of params) target.searchParams.append(name, value);
  }
  return redirectResponse(target.toString());
}

/** The parameters of an error answer: `error`, `error_description` (with trace, correlation, time), and `error_subcode` where Entra adds one. */
export function errorParams(error: AadstsError, ids: ErrorIds, subcode?: string): [string, string][] {
  return [
    ['error', error.error],
    ['error_description', errorDescription(error, ids)],
    ...(subcode === undefined ? [] : ([['error_subcode', subcode]] as [string, string][])),
  ];
}

/**
 * An error shown to the person instead of sent to the app: Entra does this when it cannot trust
 * the redirect URI (unknown app, unregistered redirect URI) or when the request cannot go on.
 */
export function errorPageResponse(error: AadstsError, ids: ErrorIds): SandboxResponse {
  return htmlResponse(400, errorPage({ heading: 'Sorry, but we’re having trouble signing you in.', explanation: 'The request could not be completed.', error, ids }));
}
