/**
 * What a failed token request means for a connection (microsoft.md §2.4–2.5), decided on the OAuth
 * `error`, the AADSTS number and the HTTP status, never on Microsoft's wording. Each class says who
 * has to act: the user (reconnect), the customer's administrator (consent or tenant policy), the
 * vendor (its own app registration), or nobody (Microsoft is failing; retry).
 */

import type { ConnectionState } from './connection.js';

/** The parts of an error from Microsoft's identity platform the decision rests on. */
export interface TokenFailureSignal {
  /** The OAuth `error` (`invalid_grant`, …), msal's own code when msal failed first, or `network_error`. */
  error: string;
  aadsts?: number;
  status?: number;
}

export type TokenFailureKind = 'reauth' | 'consent' | 'policy' | 'app_config' | 'transient';

/** Which link or action gets the connection working again. */
export type TokenFailureRemedy = 'reconnect' | 'admin_consent' | 'tenant_admin' | 'vendor' | 'wait';

export interface TokenFailure {
  kind: TokenFailureKind;
  /** Where the connection goes; transient failures leave it where it is. */
  state: Extract<ConnectionState, 'needs_reauth' | 'needs_admin' | 'app_misconfigured'> | undefined;
  /** `AADSTS50173`, or the OAuth error when there is no number (`invalid_grant`), or `http_503`, `network_error`. */
  code: string;
  explanation: string;
  nextStep: string;
  remedy: TokenFailureRemedy;
  /** True when nothing in the taxonomy matched and the failure is treated as transient for want of better. */
  unrecognized?: true;
}

interface CodeMeaning {
  kind: TokenFailureKind;
  explanation: string;
}

const REAUTH_NEXT = 'Send the user a reconnect link; signing in again restores the connection.';
const CONSENT_NEXT = "Send the customer's administrator the admin consent link to grant the app's permissions again.";
const POLICY_NEXT = "The customer's administrator must change the tenant setting named in the explanation; the connector checks again daily.";
const VENDOR_NEXT = "Fix the app registration or its credential (ENTRA_* settings, the secret in Key Vault); connections recover on the next refresh.";
const WAIT_NEXT = 'Nothing to do: the connector retries with back-off and the connection keeps working once Microsoft answers.';

const CODES: ReadonlyMap<number, CodeMeaning> = new Map<number, CodeMeaning>([
  // The user's grant is gone or too old: only a new sign-in helps.
  [50173, { kind: 'reauth', explanation: "The user's sessions were revoked (by the user or an administrator), so the stored sign-in no longer works." }],
  [700082, { kind: 'reauth', explanation: 'The stored sign-in expired after 90 days without use.' }],
  [70008, { kind: 'reauth', explanation: 'The stored sign-in expired or was revoked.' }],
  [700084, { kind: 'reauth', explanation: 'The stored sign-in reached its fixed lifetime.' }],
  [50089, { kind: 'reauth', explanation: 'The stored sign-in expired or was revoked.' }],
  [70043, { kind: 'reauth', explanation: "The tenant's Conditional Access sign-in frequency requires the user to sign in again." }],
  [50076, { kind: 'reauth', explanation: 'The tenant now requires multifactor authentication, which needs the user to sign in again.' }],
  [50079, { kind: 'reauth', explanation: 'The user must register for multifactor authentication and sign in again.' }],
  [50078, { kind: 'reauth', explanation: "The user's multifactor authentication expired; they must sign in again." }],
  [50132, { kind: 'reauth', explanation: "The user's password expired or was changed, which ended the stored sign-in." }],
  [50133, { kind: 'reauth', explanation: "The user's password expired or was changed, which ended the stored sign-in." }],
  [50055, { kind: 'reauth', explanation: "The user's password expired; they must change it and sign in again." }],
  // Consent is missing or was taken back: an administrator must grant it again.
  [65001, { kind: 'consent', explanation: 'Consent for the app is missing or was revoked in the customer tenant.' }],
  [90094, { kind: 'consent', explanation: "The tenant requires an administrator's consent for the app's permissions." }],
  [90093, { kind: 'consent', explanation: 'The signed-in account is not allowed to grant the permissions the app needs.' }],
  [90095, { kind: 'consent', explanation: "The tenant's admin consent workflow has to approve the app first." }],
  [700016, { kind: 'consent', explanation: "The app is no longer in the customer tenant: its enterprise application was deleted or consent removed." }],
  [7000112, { kind: 'consent', explanation: "The app's enterprise application is disabled in the customer tenant." }],
  // The tenant's policy refuses tokens: an administrator must change it.
  [53003, { kind: 'policy', explanation: 'A Conditional Access policy of the customer tenant blocks the app.' }],
  [530032, { kind: 'policy', explanation: 'A security policy of the customer tenant blocks the sign-in.' }],
  [530035, { kind: 'policy', explanation: "The customer tenant's security defaults block the sign-in." }],
  [50105, { kind: 'policy', explanation: 'The user is not assigned to the app, and the tenant requires assignment.' }],
  [50057, { kind: 'policy', explanation: "The user's account is disabled." }],
  [50053, { kind: 'policy', explanation: "The user's account is locked." }],
  [500011, { kind: 'policy', explanation: 'The customer tenant has no Exchange Online (or Graph) service principal: the service is not provisioned.' }],
  [650052, { kind: 'policy', explanation: 'The customer tenant has not subscribed to or enabled a service the app needs (Exchange Online).' }],
  // The vendor's own configuration: one fix serves every connection of the app.
  [7000215, { kind: 'app_config', explanation: "The app's client secret is wrong." }],
  [7000222, { kind: 'app_config', explanation: "The app's client secret has expired." }],
  [700027, { kind: 'app_config', explanation: "The app's certificate or client assertion is not one the app registration accepts." }],
  [50012, { kind: 'app_config', explanation: "The app's credential was refused." }],
  [50011, { kind: 'app_config', explanation: "The redirect URI is not registered on the app." }],
  [50194, { kind: 'app_config', explanation: 'The app registration is not multi-tenant.' }],
  [9001023, { kind: 'app_config', explanation: 'The connector used an authority this grant does not support.' }],
  [90124, { kind: 'app_config', explanation: 'The connector used an authority this resource does not support.' }],
  [90130, { kind: 'app_config', explanation: 'The connector used an authority this app does not support.' }],
  // These two can be one tenant's consent as much as the registration: they stay with the connection.
  [650056, { kind: 'consent', explanation: 'The customer tenant has not consented to a permission the app asks for (or the registration lacks it).' }],
  [650057, { kind: 'consent', explanation: 'A permission the connector asked for is neither granted in the customer tenant nor listed on the app registration.' }],
  [700024, { kind: 'app_config', explanation: "The app's federated credential (managed identity) assertion is not accepted." }],
  [7000229, { kind: 'consent', explanation: "The app has no service principal in the customer tenant." }],
  // Microsoft is failing or throttling: retry.
  [50033, { kind: 'transient', explanation: 'Microsoft asked to retry.' }],
  [90006, { kind: 'transient', explanation: 'Microsoft had a retryable server error.' }],
  [90024, { kind: 'transient', explanation: 'Microsoft throttled the request.' }],
  [90033, { kind: 'transient', explanation: "Microsoft's directory was briefly unavailable." }],
  [90090, { kind: 'transient', explanation: 'Microsoft had a retryable error.' }],
  [50087, { kind: 'transient', explanation: 'Microsoft had a retryable error.' }],
  [90055, { kind: 'transient', explanation: 'Microsoft throttled the tenant.' }],
  [50196, { kind: 'transient', explanation: 'Microsoft saw too many identical requests.' }],
]);

/** OAuth and msal errors that mean the same, when no AADSTS number settles it. */
const ERRORS: ReadonlyMap<string, CodeMeaning> = new Map<string, CodeMeaning>([
  ['invalid_grant', { kind: 'reauth', explanation: 'The stored sign-in is no longer valid.' }],
  ['interaction_required', { kind: 'reauth', explanation: 'Microsoft requires the user to sign in again.' }],
  ['login_required', { kind: 'reauth', explanation: 'Microsoft requires the user to sign in again.' }],
  ['bad_token', { kind: 'reauth', explanation: 'The stored sign-in is no longer valid.' }],
  ['no_tokens_found', { kind: 'reauth', explanation: 'No stored sign-in was found for the connection.' }],
  ['refresh_token_expired', { kind: 'reauth', explanation: 'The stored sign-in has expired.' }],
  ['no_account_in_cache', { kind: 'reauth', explanation: 'No stored sign-in was found for the connection.' }],
  ['consent_required', { kind: 'consent', explanation: 'Consent for the app is missing in the customer tenant.' }],
  ['invalid_client', { kind: 'app_config', explanation: "Microsoft refused the app's credential." }],
  // Often the app missing from one tenant (its enterprise application deleted): that tenant's to fix.
  ['unauthorized_client', { kind: 'consent', explanation: 'The customer tenant does not allow the app this request; its enterprise application may be missing or disabled.' }],
  ['temporarily_unavailable', { kind: 'transient', explanation: "Microsoft's sign-in service is temporarily unavailable." }],
  ['server_error', { kind: 'transient', explanation: "Microsoft's sign-in service had an error." }],
  ['network_error', { kind: 'transient', explanation: "Microsoft's sign-in service could not be reached." }],
  ['endpoints_resolution_error', { kind: 'transient', explanation: "Microsoft's sign-in metadata could not be read." }],
  ['openid_config_error', { kind: 'transient', explanation: "Microsoft's sign-in metadata could not be read." }],
]);

const STATE: Readonly<Record<TokenFailureKind, TokenFailure['state']>> = {
  reauth: 'needs_reauth',
  consent: 'needs_admin',
  policy: 'needs_admin',
  app_config: 'app_misconfigured',
  transient: undefined,
};
const REMEDY: Readonly<Record<TokenFailureKind, TokenFailureRemedy>> = {
  reauth: 'reconnect',
  consent: 'admin_consent',
  policy: 'tenant_admin',
  app_config: 'vendor',
  transient: 'wait',
};
const NEXT_STEP: Readonly<Record<TokenFailureKind, string>> = {
  reauth: REAUTH_NEXT,
  consent: CONSENT_NEXT,
  policy: POLICY_NEXT,
  app_config: VENDOR_NEXT,
  transient: WAIT_NEXT,
};

export function classifyTokenFailure(signal: TokenFailureSignal): TokenFailure {
  const byCode = signal.aadsts === undefined ? undefined : CODES.get(signal.aadsts);
  if (byCode) return failure(byCode, `AADSTS${String(signal.aadsts)}`);
  // Throttling and outages first: a 429 or 5xx may come with any `error`.
  if (signal.status !== undefined && (signal.status === 429 || signal.status >= 500)) {
    return failure({ kind: 'transient', explanation: signal.status === 429 ? 'Microsoft throttled the request.' : "Microsoft's sign-in service answered with an error." }, `http_${String(signal.status)}`);
  }
  const byError = ERRORS.get(signal.error);
  if (byError) return failure(byError, signal.aadsts === undefined ? signal.error : `AADSTS${String(signal.aadsts)}`);
  // Unknown: retrying keeps a working connection alive; if it never recovers, the connection ends degraded and says so.
  return {
    ...failure({ kind: 'transient', explanation: 'Microsoft answered with an error the connector does not know.' }, signal.aadsts === undefined ? signal.error : `AADSTS${String(signal.aadsts)}`),
    unrecognized: true,
  };
}

function failure(meaning: CodeMeaning, code: string): TokenFailure {
  return { kind: meaning.kind, state: STATE[meaning.kind], code, explanation: meaning.explanation, nextStep: NEXT_STEP[meaning.kind], remedy: REMEDY[meaning.kind] };
}
