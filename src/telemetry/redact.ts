/**
 * Redaction for everything that leaves the process as text: log lines, error details, problem
 * responses. Two layers: values under credential-like property names are dropped whole, and free
 * text is scrubbed by the shapes credentials have on the wire (bearer headers, JWTs, Microsoft
 * refresh tokens and authorization codes, Entra client secrets, PEM private keys, SASL
 * XOAUTH2/OAUTHBEARER strings, and credential-named values in URLs, form bodies, connection
 * strings, JSON — also JSON inside JSON — and util.inspect / YAML-like `name: value` text).
 */

export const REDACTED = '[REDACTED]';

/** A property is a credential when its name (case, "-" and "_" ignored) contains one of these. */
const KEY_WORDS = [
  'secret', 'password', 'passwd', 'pwd', 'token', 'assertion', 'verifier', 'apikey', 'privatekey', 'signingkey',
  'accountkey', 'sharedaccesskey', 'sharedaccesssignature', 'connectionstring', 'credential', 'cookie',
  'authorization', 'sasl', 'xoauth2',
];
/** Names that contain such a word but hold no credential, and that ops need to see. */
const NOT_CREDENTIALS = new Set(['tokentype', 'tokenendpoint', 'authorizationendpoint', 'tokenendpointauthmethod']);
/** Names too short to match by containment. */
const EXACT_KEYS = new Set(['sig']);

/** The same vocabulary for names written into text; a name must end with one of the words. */
const TEXT_NAME =
  '[A-Za-z0-9_-]*?(?:secret|password|passwd|pwd|token|assertion|verifier|api_?key|private_?key|signing_?key|account_?key|sharedaccesskey|sharedaccesssignature|connection_?string|credentials?)|sig';

const TEXT_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // PEM private keys (certificate credentials)
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, REDACTED],
  // SASL XOAUTH2 in clear: user=<addr>^Aauth=Bearer <token>^A^A (^A is the protocol's separator)
  // eslint-disable-next-line no-control-regex
  [/user=[^\x01\s]*\x01auth=[^\x01]*\x01\x01?/g, REDACTED],
  // Base64 of "user=..." (XOAUTH2) and of "n,a=..." / "n,," (OAUTHBEARER GS2 header), also when
  // a client wrapped it over several lines
  [/\b(?:dXNlcj[0-3]|bixhP[T-X]|biws)[A-Za-z0-9+/]{16,}(?:\r?\n[A-Za-z0-9+/]{4,})*={0,2}/g, REDACTED],
  // Credentials after an auth scheme; at least 16 characters so prose ("a Bearer or PoP token") stays
  [/\b(Bearer|Basic|Negotiate|SharedKey)\s+[A-Za-z0-9\-._~+/:]{16,}=*/gi, `$1 ${REDACTED}`],
  // The connector's own API keys: the prefix names the key, the secret part goes
  [/\b(m365c_[a-z0-9]{12}_)[A-Za-z0-9_-]{8,}/g, `$1${REDACTED}`],
  // Standard Webhooks signing secrets
  [/\bwhsec_[A-Za-z0-9+/=]{8,}/g, `whsec_${REDACTED}`],
  // JWT / JWS (access tokens, id tokens, client assertions)
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Microsoft refresh tokens and authorization codes ("0.A…", "1.A…")
  [/\b[01]\.A[A-Za-z0-9_\-.*]{30,}/g, REDACTED],
  // Entra ID client secrets: three characters, a digit, "Q~", then 31+ characters
  [/(?<![A-Za-z0-9_\-.~])[A-Za-z0-9_\-.~]{3}\d[A-Z]~[A-Za-z0-9_\-.~]{31,}/g, REDACTED],
  // name=value in query strings, form bodies and connection strings
  [new RegExp(`(?<![A-Za-z0-9_-])(${TEXT_NAME})=([^&\\s;"',]+)`, 'gi'), `$1=${REDACTED}`],
  // OAuth authorization codes in callback URLs and token requests; short values are error codes
  [/(?<![A-Za-z0-9_])code=([^&\s;"',]{20,})/g, `code=${REDACTED}`],
  // "name": "value" in JSON, and \"name\": \"value\" in JSON carried inside a JSON string
  [
    new RegExp(`((?:\\\\)*")(${TEXT_NAME})((?:\\\\)*")\\s*:\\s*(?:\\\\)*"(?:[^"\\\\]|\\\\.)*?(?:\\\\)*"`, 'gi'),
    `$1$2$3:$3${REDACTED}$3`,
  ],
  // name: 'value', name: "value" and name: value (util.inspect, YAML, log formats)
  [
    new RegExp(`(?<![A-Za-z0-9_"'-])(${TEXT_NAME})(\\s*:\\s*)(?:'(?:[^'\\\\]|\\\\.)*'|"(?:[^"\\\\]|\\\\.)*"|[^\\s,;'"}\\]]+)`, 'gi'),
    `$1$2'${REDACTED}'`,
  ],
];

/**
 * Something every rule above needs somewhere in the text. Most logged values (ids, addresses,
 * counts, plain sentences) have none of it and skip the rules altogether.
 */
// eslint-disable-next-line no-control-regex
const MIGHT_HOLD_A_CREDENTIAL = /[=:~\x01]|eyJ|-----|dXNlcj|bixhP|biws|[01]\.A|Bearer|Basic|Negotiate|SharedKey|m365c_|whsec_/i;

export function redactText(text: string): string {
  if (!MIGHT_HOLD_A_CREDENTIAL.test(text)) return text;
  let result = text;
  for (const [pattern, replacement] of TEXT_RULES) result = result.replace(pattern, replacement);
  return result;
}

/** Property names repeat from record to record; remembering the verdict keeps logging cheap. */
const keyVerdicts = new Map<string, boolean>();

export function isSensitiveKey(key: string): boolean {
  let verdict = keyVerdicts.get(key);
  if (verdict === undefined) {
    const normalized = key.toLowerCase().replace(/[-_]/g, '');
    verdict = EXACT_KEYS.has(normalized) || (!NOT_CREDENTIALS.has(normalized) && KEY_WORDS.some((word) => normalized.includes(word)));
    if (keyVerdicts.size < 10_000) keyVerdicts.set(key, verdict);
  }
  return verdict;
}

/**
 * Deep copy of `value` that is safe to log. Errors become plain objects with their useful fields.
 * `ancestors` holds the objects on the path from the root, so only true cycles are cut; an object
 * referenced twice side by side is copied twice.
 */
export function redactValue(value: unknown, ancestors: object[] = []): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') {
    return typeof value === 'bigint' ? value.toString() : value;
  }
  if (ancestors.includes(value)) return '[Circular]';
  if (ancestors.length > 8) return '[Truncated]';
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  const path = [...ancestors, value];
  if (value instanceof Error) return redactError(value, path);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, path));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = isSensitiveKey(key) && item !== undefined && item !== null ? REDACTED : redactValue(item, path);
  }
  return out;
}

/** Properties of SDK errors that hold whole requests and responses (with their credentials). */
const ERROR_BAGGAGE = new Set(['request', 'response', 'config', 'socket', 'agent', 'cause']);

function redactError(error: Error, path: object[]): Record<string, unknown> {
  const out: Record<string, unknown> = { name: error.name, message: redactText(error.message) };
  // SDK errors carry the useful diagnosis on own properties (code, statusCode, responseCode, details)
  for (const [key, item] of Object.entries(error)) {
    if (ERROR_BAGGAGE.has(key)) continue;
    out[key] = isSensitiveKey(key) ? REDACTED : redactValue(item, path);
  }
  if (error.stack) out.stack = redactText(error.stack);
  if (error.cause !== undefined) out.cause = redactValue(error.cause, path);
  return out;
}
