import { randomUUID } from 'node:crypto';

/**
 * The errors the sandbox answers with, shaped like Microsoft Entra's: an OAuth `error`, an
 * `error_description` that starts with `AADSTSnnnnn:` and ends with trace id, correlation id and
 * timestamp, `error_codes`, and a `suberror` where Entra sends one (msal-node turns the suberrors
 * `bad_token`, `message_only` and `consent_required` into InteractionRequiredAuthError).
 * Messages follow Entra's reference-error-codes page and captured responses; README.md names the
 * source of each `error` value and which ones are inferred.
 */
export class AadstsError extends Error {
  constructor(
    readonly code: number,
    readonly error: string,
    detail: string,
    readonly status = 400,
    readonly suberror?: string,
  ) {
    super(`AADSTS${code}: ${detail}`);
    this.name = 'AadstsError';
  }
}

export interface ErrorIds {
  traceId: string;
  correlationId: string;
  /** Milliseconds since the epoch. */
  now: number;
}

export function newErrorIds(now: number, correlationId?: string): ErrorIds {
  return { traceId: randomUUID(), correlationId: correlationId ?? randomUUID(), now };
}

/** Entra's timestamp format: "2016-01-09 02:02:12Z". */
export function entraTimestamp(now: number): string {
  return new Date(now).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function errorDescription(error: AadstsError, ids: ErrorIds): string {
  return `${error.message}\r\nTrace ID: ${ids.traceId}\r\nCorrelation ID: ${ids.correlationId}\r\nTimestamp: ${entraTimestamp(ids.now)}`;
}

/**
 * The JSON body of an error from the token or device code endpoint. `error_uri` points at Entra's
 * own error lookup page, which documents the code.
 */
export function errorBody(error: AadstsError, ids: ErrorIds): Record<string, unknown> {
  return {
    error: error.error,
    error_description: errorDescription(error, ids),
    error_codes: [error.code],
    timestamp: entraTimestamp(ids.now),
    trace_id: ids.traceId,
    correlation_id: ids.correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${error.code}`,
    ...(error.suberror === undefined ? {} : { suberror: error.suberror }),
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Every error the sandbox raises, by what happened. */
export const aadsts = {
  missingParameter: (name: string) =>
    new AadstsError(900144, 'invalid_request', `The request body must contain the following parameter: '${name}'.`),
  tenantNotFound: (tenant: string) =>
    new AadstsError(
      90002,
      'invalid_tenant',
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    ),
  consumersNotSupported: (clientId: string, appName: string) =>
    new AadstsError(
      9002332,
      'invalid_request',
      `Application '${clientId}'(${appName}) is configured for use by Microsoft Entra users only. Please do not use the /consumers endpoint to serve this request.`,
    ),
  applicationNotFound: (clientId: string, directory: string) =>
    new AadstsError(
      700016,
      'unauthorized_client',
      `Application with identifier '${clientId}' was not found in the directory '${directory}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    ),
  redirectUriMismatch: (redirectUri: string, clientId: string) =>
    new AadstsError(
      50011,
      'invalid_request',
      `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.`,
    ),
  unsupportedResponseType: (responseType: string) =>
    new AadstsError(700054, 'unsupported_response_type', `response_type '${responseType}' is not enabled for the application.`),
  unsupportedResponseMode: (mode: string) =>
    new AadstsError(70007, 'invalid_request', `The application returned an unsupported value '${mode}' of response_mode.`),
  invalidCodeChallenge: () => new AadstsError(501491, 'invalid_request', 'Invalid size of Code_Challenge parameter.'),
  invalidParameter: (name: string, value: string) =>
    new AadstsError(90100, 'invalid_request', `The '${name}' parameter is empty or not valid: '${value}'.`),
  invalidScope: (scope: string) =>
    new AadstsError(70011, 'invalid_scope', `The provided value for the input parameter 'scope' is not valid. The scope '${scope}' is not valid.`),
  resourceNotFound: (resource: string, tenant: string) =>
    new AadstsError(
      500011,
      'invalid_resource',
      `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    ),
  multipleResources: (scope: string) =>
    new AadstsError(
      700022,
      'invalid_scope',
      `The provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${scope} is not valid.`,
    ),
  defaultScopeRequired: (scope: string) =>
    new AadstsError(
      1002012,
      'invalid_scope',
      `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
    ),
  loginRequired: () =>
    new AadstsError(50058, 'login_required', 'A silent sign-in request was sent but no user is signed in.'),
  userDeclinedConsent: () => new AadstsError(65004, 'access_denied', 'User declined to consent to access the app.'),
  adminDeclinedConsent: () =>
    new AadstsError(65004, 'consent_required', 'The resource owner or authorization server denied the request.'),
  adminConsentRequired: () => new AadstsError(90094, 'access_denied', 'The grant requires admin permission.'),
  notAuthorizedToGrant: (appName: string) =>
    new AadstsError(
      90093,
      'access_denied',
      `${appName} is requesting one or more permissions that you aren't authorized to grant. Contact an administrator, who can consent to this application on your behalf.`,
    ),
  flowExpired: () =>
    new AadstsError(50089, 'invalid_request', 'Authentication failed due to flow token expired. Go back to the application and sign in again.'),
  blockedByConditionalAccess: () =>
    new AadstsError(
      53003,
      'invalid_grant',
      'Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.',
      400,
      'message_only',
    ),
  unsupportedGrantType: (grantType: string) =>
    new AadstsError(70003, 'unsupported_grant_type', `The app requested an unsupported grant type '${grantType}'.`),
  grantNotSupportedOverCommon: () =>
    new AadstsError(
      9001023,
      'invalid_request',
      'The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.',
    ),
  noTenantIdentifyingInformation: () =>
    new AadstsError(
      50059,
      'invalid_request',
      'No tenant-identifying information found in either the request or implied by any provided credentials.',
    ),
  malformedGrant: () => new AadstsError(9002313, 'invalid_grant', 'Invalid request. Request is malformed or invalid.'),
  codeRedeemed: () =>
    new AadstsError(
      54005,
      'invalid_grant',
      'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.',
    ),
  codeExpired: () =>
    new AadstsError(
      70008,
      'invalid_grant',
      'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.',
    ),
  codeForOtherTenant: () =>
    new AadstsError(
      700005,
      'invalid_grant',
      'Provided Authorization Code is intended to use against other tenant, thus rejected.',
    ),
  replyAddressMismatch: (given: string, original: string) =>
    new AadstsError(
      500112,
      'invalid_client',
      `The reply address '${given}' does not match the reply address '${original}' provided when requesting Authorization code.`,
      401,
    ),
  pkceMismatch: () =>
    new AadstsError(501481, 'invalid_grant', 'The Code_Verifier does not match the code_challenge supplied in the authorization request.'),
  userNotInTenant: (upn: string, tenant: string) =>
    new AadstsError(
      50020,
      'invalid_grant',
      `User account '${upn}' from identity provider 'https://sts.windows.net/${tenant}/' does not exist in tenant '${tenant}' and cannot access the application in that tenant.`,
    ),
  sessionRevoked: (grantIssued: number, tokensValidFrom: number) =>
    new AadstsError(
      50173,
      'invalid_grant',
      `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${iso(grantIssued)}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${iso(tokensValidFrom)}'.`,
      400,
      'bad_token',
    ),
  refreshTokenInactive: (issued: number, inactiveDays: number) =>
    new AadstsError(
      700082,
      'invalid_grant',
      `The refresh token has expired due to inactivity. The token was issued on ${iso(issued)} and was inactive for ${inactiveDays}.00:00:00.`,
    ),
  consentMissing: (clientId: string, appName: string) =>
    new AadstsError(
      65001,
      'invalid_grant',
      `The user or administrator has not consented to use the application with ID '${clientId}' named '${appName}'. Send an interactive authorization request for this user and resource.`,
      400,
      'consent_required',
    ),
  servicePrincipalMissing: (clientId: string, tenantId: string) =>
    new AadstsError(
      7000229,
      'invalid_client',
      `The client application ${clientId} is missing service principal in the tenant ${tenantId}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119`,
      401,
    ),
  publicClientPresentedCredential: () =>
    new AadstsError(700025, 'invalid_client', "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.", 401),
  credentialRequired: () =>
    new AadstsError(7000218, 'invalid_client', "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", 401),
  invalidClientSecret: (clientId: string) =>
    new AadstsError(
      7000215,
      'invalid_client',
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      401,
    ),
  clientSecretExpired: (clientId: string) =>
    new AadstsError(
      7000222,
      'invalid_client',
      `The provided client secret keys for app '${clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
      401,
    ),
  unsupportedAssertionType: (type: string) =>
    new AadstsError(
      7000219,
      'invalid_request',
      `'client_assertion_type' must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', not '${type}'.`,
    ),
  certificateNotRegistered: (thumbprint: string, clientId: string) =>
    new AadstsError(
      700027,
      'invalid_client',
      `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${clientId}'.]`,
      401,
    ),
  assertionSignatureInvalid: () =>
    new AadstsError(700027, 'invalid_client', 'Client assertion failed signature validation.', 401),
  assertionSubjectMismatch: () =>
    new AadstsError(50048, 'invalid_client', 'Subject mismatches Issuer claim in the client assertion.', 401),
  assertionAudienceInvalid: (audience: string) =>
    new AadstsError(50027, 'invalid_client', `JWT token is invalid or malformed. The audience '${audience}' of the client assertion is not this token endpoint.`, 401),
  assertionExpired: () =>
    new AadstsError(700024, 'invalid_client', 'Client assertion is not within its valid time range.', 401),
  noFederatedCredential: (issuer: string, subject: string, audience: string) =>
    new AadstsError(
      70021,
      'invalid_request',
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${issuer}'. Assertion Subject: '${subject}'. Assertion Audience: '${audience}'.`,
    ),
  userNotFound: (directory: string) =>
    new AadstsError(
      50034,
      'invalid_grant',
      `The user account {EmailHidden} does not exist in the ${directory} directory. To sign into this application, the account must be added to the directory.`,
    ),
  invalidUsernameOrPassword: () => new AadstsError(50126, 'invalid_grant', 'Error validating credentials due to invalid username or password.'),
  authorizationPending: () =>
    new AadstsError(70016, 'authorization_pending', 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.'),
  authorizationDeclined: () =>
    new AadstsError(70000, 'authorization_declined', 'The user declined the authorization request.'),
  deviceCodeExpired: () => new AadstsError(70019, 'expired_token', 'Verification code expired.'),
  deviceCodeUnknown: () => new AadstsError(9002313, 'bad_verification_code', 'Invalid request. The device_code was not recognized.'),
  serviceUnavailable: () =>
    new AadstsError(90006, 'temporarily_unavailable', 'The service is temporarily unavailable. Retry the request.', 503),
  tooManyRequests: () =>
    new AadstsError(90055, 'temporarily_unavailable', 'There are too many incoming requests. Retry after the time given in Retry-After.', 429),
} as const;
