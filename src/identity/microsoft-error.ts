/**
 * Errors from Microsoft's identity platform, from either side of a sign-in: the query or form a
 * browser brings back (`error`, `error_description`), or a token request msal-node made (its
 * ServerError / InteractionRequiredAuthError). Both carry the OAuth `error` and an AADSTS number;
 * the connector decides on those (microsoft.md §2.4–2.5), never on the wording of the description.
 */

export interface MicrosoftError {
  /** The OAuth `error`, e.g. `invalid_grant`, `access_denied`; msal's own code when msal failed before Microsoft answered. */
  error: string;
  /** The AADSTS number. */
  aadsts?: number;
  /** HTTP status of the token endpoint's answer. */
  status?: number;
  traceId?: string;
  correlationId?: string;
  /** Microsoft's description, for the person at the page; it can name the user, so it is not logged. */
  description?: string;
}

const GUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** The error a browser brought back to a redirect URI, or undefined when there is none. */
export function errorFromRedirect(params: Readonly<Record<string, string | undefined>>): MicrosoftError | undefined {
  const error = params.error;
  if (!error) return undefined;
  const description = params.error_description;
  const fromCodes = params.error_codes ? Number.parseInt(params.error_codes.replace(/^\[/, ''), 10) : Number.NaN;
  const aadsts = Number.isInteger(fromCodes) ? fromCodes : aadstsIn(description);
  return {
    error: clip(error, 64),
    ...(aadsts !== undefined && { aadsts }),
    ...optionalGuid('traceId', params.trace_id ?? labelled(description, 'Trace ID')),
    ...optionalGuid('correlationId', params.correlation_id ?? labelled(description, 'Correlation ID')),
    ...(description !== undefined && { description: clip(description, 1000) }),
  };
}

/** What an error thrown by msal-node says, or undefined for anything that did not come from msal. */
export function errorFromMsal(thrown: unknown): MicrosoftError | undefined {
  if (!(thrown instanceof Error)) return undefined;
  const fields = thrown as Error & { errorCode?: unknown; errorNo?: unknown; status?: unknown; correlationId?: unknown; errorMessage?: unknown };
  if (typeof fields.errorCode !== 'string') return undefined;
  const message = typeof fields.errorMessage === 'string' ? fields.errorMessage : thrown.message;
  const errorNo = typeof fields.errorNo === 'string' || typeof fields.errorNo === 'number' ? Number(fields.errorNo) : Number.NaN;
  const aadsts = Number.isInteger(errorNo) ? errorNo : aadstsIn(message);
  const description = labelled(message, 'Description', /Description: (.*?)(?: - Correlation ID:|$)/s);
  return {
    error: fields.errorCode,
    ...(aadsts !== undefined && { aadsts }),
    ...(typeof fields.status === 'number' && { status: fields.status }),
    ...optionalGuid('traceId', labelled(message, 'Trace ID')),
    ...optionalGuid('correlationId', typeof fields.correlationId === 'string' && fields.correlationId ? fields.correlationId : labelled(message, 'Correlation ID')),
    ...(description !== undefined && { description: clip(description, 1000) }),
  };
}

/**
 * What a sign-in error means for the person at the page:
 * - declined: they pressed Cancel (or an admin declined consent);
 * - admin-approval: the tenant does not let users consent to this app;
 * - blocked: the tenant's policy refused the sign-in (Conditional Access, disabled user, …);
 * - app-misconfigured: the vendor's app registration or credential is wrong; the vendor must act;
 * - unavailable: Microsoft is failing or throttling; trying again later helps;
 * - other: anything else.
 */
export type SignInErrorClass = 'declined' | 'admin-approval' | 'blocked' | 'app-misconfigured' | 'unavailable' | 'other';

const ADMIN_APPROVAL = new Set([90094, 90093, 90095, 65001, 900941, 900981]);
const BLOCKED = new Set([53003, 530032, 530035, 50105, 50057, 50053, 50055, 500011, 650052, 50076, 50079]);
const APP_MISCONFIGURED = new Set([7000215, 7000222, 700027, 50012, 50011, 700016, 7000112, 50194, 9001023, 90124, 90130, 650056, 650057]);
const UNAVAILABLE = new Set([50033, 90006, 90024, 90033, 90090, 50087, 90055, 50196]);

export function classifySignInError(error: MicrosoftError): SignInErrorClass {
  // "Return to the application" from Microsoft's "Need admin approval" page is also access_denied: the code tells them apart.
  // A policy or configuration code wins over the bare access_denied it may come with.
  if (error.aadsts !== undefined && ADMIN_APPROVAL.has(error.aadsts)) return 'admin-approval';
  if (error.aadsts !== undefined && BLOCKED.has(error.aadsts)) return 'blocked';
  if (error.aadsts !== undefined && APP_MISCONFIGURED.has(error.aadsts)) return 'app-misconfigured';
  if (error.aadsts === 65004 || error.error === 'access_denied') return 'declined';
  if (error.error === 'consent_required') return 'admin-approval';
  if (error.error === 'invalid_client' || error.error === 'unauthorized_client') return 'app-misconfigured';
  if (error.aadsts !== undefined && UNAVAILABLE.has(error.aadsts)) return 'unavailable';
  if (['temporarily_unavailable', 'server_error', 'network_error', 'endpoints_resolution_error'].includes(error.error)) return 'unavailable';
  if (error.status !== undefined && (error.status >= 500 || error.status === 429)) return 'unavailable';
  return 'other';
}

/** Log fields of an error: codes and Microsoft's request ids, never the description. */
export function errorLogFields(error: MicrosoftError): Record<string, string | number> {
  return {
    microsoftError: error.error,
    ...(error.aadsts !== undefined && { aadsts: error.aadsts }),
    ...(error.status !== undefined && { microsoftStatus: error.status }),
    ...(error.traceId !== undefined && { microsoftTraceId: error.traceId }),
    ...(error.correlationId !== undefined && { microsoftCorrelationId: error.correlationId }),
  };
}

function aadstsIn(text: string | undefined): number | undefined {
  const match = text === undefined ? null : /AADSTS(\d{4,9})/.exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function labelled(text: string | undefined, label: string, pattern = new RegExp(`${label}: ([^\\s,]+)`)): string | undefined {
  if (text === undefined) return undefined;
  return pattern.exec(text)?.[1]?.trim();
}

function optionalGuid<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  const match = value === undefined ? null : GUID.exec(value);
  return match ? ({ [key]: match[0].toLowerCase() } as Record<K, string>) : {};
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
