/**
 * Redaction for everything that leaves the process as text: log lines, error details, problem
 * responses. Two layers: values under sensitive property names are dropped whole, and free text
 * is scrubbed by the shapes that credentials have on the wire (bearer headers, JWTs, Microsoft
 * refresh tokens and authorization codes, Entra client secrets, SASL XOAUTH2/OAUTHBEARER strings,
 * credential parameters in URLs, form bodies, JSON and connection strings).
 */

export const REDACTED = '[REDACTED]';

const SENSITIVE_KEY =
  /^(authorization|proxy-authorization|cookie|set-cookie|password|passwd|secret|client_?secret|access_?token|refresh_?token|id_?token|auth_?code|authorization_?code|code_?verifier|client_?assertion|assertion|api_?key|x-api-key|account_?key|sas_?token|connection_?string|private_?key|sasl|xoauth2)$/i;

const CREDENTIAL_PARAMS =
  'access_token|refresh_token|id_token|client_secret|client_assertion|assertion|code_verifier|password|token|sig|AccountKey|SharedAccessSignature|SharedAccessKey';

const TEXT_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // SASL XOAUTH2 in clear: user=<addr>^Aauth=Bearer <token>^A^A (^A is the protocol's separator)
  // eslint-disable-next-line no-control-regex
  [/user=[^\x01\s]*\x01auth=[^\x01]*\x01\x01?/g, REDACTED],
  // Base64 of "user=..." (XOAUTH2) and of "n,a=..." / "n,," (OAUTHBEARER GS2 header)
  [/\b(?:dXNlcj[0-3]|bixhP[T-X]|biws)[A-Za-z0-9+/]{16,}={0,2}/g, REDACTED],
  // Credentials after an auth scheme; at least 16 characters so prose ("a Bearer or PoP token") stays
  [/\b(Bearer|Basic|Negotiate|SharedKey)\s+[A-Za-z0-9\-._~+/:]{16,}=*/gi, `$1 ${REDACTED}`],
  // JWT / JWS (access tokens, id tokens, client assertions)
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Microsoft refresh tokens and authorization codes ("0.A…", "1.A…")
  [/\b[01]\.A[A-Za-z0-9_\-.*]{30,}/g, REDACTED],
  // Entra ID client secrets: three characters, a digit, "Q~", then 31+ characters
  [/(?<![A-Za-z0-9_\-.~])[A-Za-z0-9_\-.~]{3}\d[A-Z]~[A-Za-z0-9_\-.~]{31,}/g, REDACTED],
  // key=value in query strings, form bodies and connection strings
  [new RegExp(`(?<![A-Za-z0-9_])(${CREDENTIAL_PARAMS})=([^&\\s;"',]+)`, 'gi'), `$1=${REDACTED}`],
  // OAuth authorization codes in callback URLs and token requests; short values are error codes
  [/(?<![A-Za-z0-9_])code=([^&\s;"',]{20,})/g, `code=${REDACTED}`],
  // "key": "value" in JSON text
  [
    new RegExp(`"(${CREDENTIAL_PARAMS}|accessToken|refreshToken|clientSecret|apiKey)"\\s*:\\s*"(?:[^"\\\\]|\\\\.)*"`, 'gi'),
    `"$1":"${REDACTED}"`,
  ],
];

export function redactText(text: string): string {
  let result = text;
  for (const [pattern, replacement] of TEXT_RULES) result = result.replace(pattern, replacement);
  return result;
}

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key);
}

/** Deep copy of `value` that is safe to log. Errors become plain objects with their useful fields. */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') {
    return typeof value === 'bigint' ? value.toString() : value;
  }
  if (seen.has(value)) return '[Circular]';
  if (depth > 8) return '[Truncated]';
  seen.add(value);
  if (value instanceof Error) return redactError(value, depth, seen);
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = isSensitiveKey(key) && item !== undefined && item !== null ? REDACTED : redactValue(item, depth + 1, seen);
  }
  return out;
}

function redactError(error: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = { name: error.name, message: redactText(error.message) };
  // SDK errors carry the useful diagnosis on own properties (code, statusCode, responseCode, details)
  const skip = new Set(['request', 'response', 'config', 'socket', 'agent']);
  for (const [key, item] of Object.entries(error)) {
    if (skip.has(key)) continue;
    out[key] = isSensitiveKey(key) ? REDACTED : redactValue(item, depth + 1, seen);
  }
  if (error.stack) out.stack = redactText(error.stack);
  if (error.cause !== undefined) out.cause = redactValue(error.cause, depth + 1, seen);
  return out;
}
