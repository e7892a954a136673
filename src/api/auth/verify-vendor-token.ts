import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import type { z } from 'zod';
import { inScope, jwtIssuerSchema, type JwtIssuer } from '../../domain/access.js';
import { customerIdSchema } from '../../domain/customer.js';
import { tagsSchema, type Tags } from '../../domain/tags.js';
import type { Logger } from '../../telemetry/logger.js';
import { createIssuerKeyCache } from './issuer-key-set.js';
import { KEY_ALGORITHMS, type IssuerKey, type KeyAlgorithm } from './key-set-parser.js';

/**
 * Signed JWTs from a vendor's own backend, the Dynamics 365 Omnichannel way: the vendor registers
 * an issuer and the URL of its public keys, and signs short-lived RS256 or ES256 tokens whose `sub`
 * is the customer the call is for. Context claims (`context`, or Dynamics' `lwicontexts`) become
 * tags on what the call creates.
 *
 * Every rejection is a TokenRejectedError whose message tells the vendor's developer what to fix;
 * it is safe to return to the caller and never repeats the token.
 */

export interface TokenPrincipal {
  issuer: string;
  customerId: string;
  contextTags: Tags;
}

export type TokenRejection =
  | 'malformed'
  | 'algorithm-not-allowed'
  | 'missing-kid'
  | 'missing-claim'
  | 'invalid-claim'
  | 'unknown-issuer'
  | 'unknown-key'
  | 'expired-key'
  | 'keys-unavailable'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'lifetime-too-long'
  | 'customer-out-of-scope'
  | 'audience-mismatch'
  | 'invalid-context';

export class TokenRejectedError extends Error {
  constructor(
    readonly reason: TokenRejection,
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejectedError';
  }
}

export interface VendorTokenVerifierDeps {
  /** The issuer registered under exactly this name; only names an issuer can have are asked for. */
  findIssuer(iss: string): Promise<JwtIssuer | undefined>;
  /** Local development only: key URLs may be on loopback and private addresses. */
  allowPrivateNetwork: boolean;
  now?: () => Date;
  /** The least time between two fetches of one issuer's keys. Default 60 s. */
  keyRefetchCooldownMs?: number;
  logger?: Logger;
}

export interface VendorTokenVerifier {
  verify(token: string): Promise<TokenPrincipal>;
}

/** Clock skew allowed on `exp`, `nbf` and `iat`: between the signer's clock and ours. */
const CLOCK_TOLERANCE_SECONDS = 60;
/** The longest `exp - iat`. Both come from the signer's clock, so no skew is allowed on it. */
const MAX_LIFETIME_SECONDS = 600;

export function createVendorTokenVerifier(deps: VendorTokenVerifierDeps): VendorTokenVerifier {
  const now = deps.now ?? (() => new Date());
  const keys = createIssuerKeyCache({
    allowPrivateNetwork: deps.allowPrivateNetwork,
    now,
    ...(deps.keyRefetchCooldownMs !== undefined && { refetchCooldownMs: deps.keyRefetchCooldownMs }),
    ...(deps.logger && { logger: deps.logger }),
  });

  async function keyFor(issuer: JwtIssuer, kid: string, alg: KeyAlgorithm): Promise<IssuerKey> {
    const lookup = await keys.findKey(issuer, kid, alg);
    const name = quote(kid);
    switch (lookup.outcome) {
      case 'found':
        return lookup.key;
      case 'unknown-key':
        return reject('unknown-key', `The issuer's key URL publishes no key with kid ${name}; publish the key there or sign with one it lists.`);
      case 'expired-key':
        return reject('expired-key', `The key ${name} expired at ${lookup.expiredAt.toISOString()} (its "expiry" at the key URL); sign with a current key.`);
      case 'wrong-algorithm':
        return reject('algorithm-not-allowed', `The key ${name} is ${lookup.keyAlgorithm === 'RS256' ? 'an RSA' : 'an EC P-256'} key; sign with ${lookup.keyAlgorithm}.`);
      case 'unavailable':
        return reject('keys-unavailable', `The issuer's public keys are unavailable: ${lookup.reason}. Tokens of this issuer cannot be checked until its key URL serves its keys.`);
    }
  }

  return {
    async verify(token) {
      const { alg, kid, iss } = readUnverified(token);
      const issuer = await deps.findIssuer(iss);
      if (!issuer) return reject('unknown-issuer', UNKNOWN_ISSUER);
      const key = await keyFor(issuer, kid, alg);
      const currentDate = now();
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key.key, {
          algorithms: [key.alg],
          issuer: issuer.issuer,
          ...(issuer.audience !== undefined && { audience: issuer.audience }),
          requiredClaims: ['iat', 'exp', 'sub'],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          currentDate,
        }));
      } catch (error) {
        throw rejectionFor(error, { kid, audience: issuer.audience, now: currentDate });
      }
      // jose has checked that both are numbers; it checks `iat` against the clock only with maxTokenAge.
      const iat = payload.iat ?? 0;
      const exp = payload.exp ?? 0;
      const nowSeconds = Math.floor(currentDate.getTime() / 1000);
      if (iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) {
        reject('not-yet-valid', `The token was issued in the future (iat ${isoSeconds(iat)}, ${skewNote(currentDate)}); check your server's clock.`);
      }
      if (exp - iat > MAX_LIFETIME_SECONDS) {
        reject('lifetime-too-long', `The token lives ${exp - iat} s (exp - iat); tokens may live at most ${MAX_LIFETIME_SECONDS} s, sign shorter-lived ones.`);
      }
      const customerId = customerIdSchema.safeParse(payload.sub);
      if (!customerId.success) {
        reject('invalid-claim', `The "sub" claim must be a customer id: ${customerId.error.issues[0]?.message ?? 'not a string'}.`);
      }
      if (!inScope(issuer.customerScope, customerId.data)) {
        reject('customer-out-of-scope', 'This issuer is not registered for the customer in "sub"; sign tokens only for the customer its registration names.');
      }
      return { issuer: issuer.issuer, customerId: customerId.data, contextTags: readContextTags(payload) };
    },
  };
}

const UNKNOWN_ISSUER = 'The token\'s "iss" is not a registered issuer; register the issuer with the connector, or set "iss" to the registered name.';

/** What picks the issuer and its key, read before the signature can be checked. */
function readUnverified(token: string): { alg: KeyAlgorithm; kid: string; iss: string } {
  let payload: JWTPayload;
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    payload = decodeJwt(token);
    header = decodeProtectedHeader(token);
  } catch {
    return reject('malformed', 'The bearer token is not a JWT: expected base64url JSON header, payload and signature separated by dots.');
  }
  const alg = KEY_ALGORITHMS.find((allowed) => allowed === header.alg);
  if (!alg) {
    const named = typeof header.alg === 'string' ? `, not ${quote(header.alg)}` : '';
    return reject('algorithm-not-allowed', `Tokens must be signed with RS256 or ES256${named}.`);
  }
  if (typeof header.kid !== 'string' || header.kid === '') {
    return reject('missing-kid', 'The token header has no "kid"; name the key that signed it, as listed at your key URL.');
  }
  if (payload.iss === undefined) {
    return reject('missing-claim', 'The token has no "iss" claim; set it to your registered issuer name.');
  }
  // Only a name an issuer can be registered under is looked up: the lookup may not cope with others
  // (an issuer's row key is made of it, and Table Storage refuses keys over 1 KiB).
  const iss = jwtIssuerSchema.shape.issuer.safeParse(payload.iss);
  if (!iss.success) return reject('unknown-issuer', UNKNOWN_ISSUER);
  return { alg, kid: header.kid, iss: iss.data };
}

interface RejectionContext {
  kid: string;
  audience: string | undefined;
  now: Date;
}

/**
 * jose's errors, in words for the vendor's developer; anything else is our fault and stays as it is.
 * No `iss` mismatch comes here: the issuer was found by the token's own `iss`.
 */
function rejectionFor(error: unknown, context: RejectionContext): unknown {
  if (error instanceof errors.JWTExpired) {
    const exp = error.payload.exp;
    return new TokenRejectedError('expired', `The token expired${typeof exp === 'number' ? ` at ${isoSeconds(exp)}` : ''} (${skewNote(context.now)}); sign a new one.`);
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') {
      return new TokenRejectedError('audience-mismatch', `The token's "aud" must include ${quote(context.audience ?? '')}, the audience this issuer is registered with.`);
    }
    if (error.reason === 'missing') {
      return new TokenRejectedError('missing-claim', `The token has no "${error.claim}" claim; tokens carry iss, sub (the customer id), iat and exp.`);
    }
    if (error.reason === 'invalid') {
      return new TokenRejectedError('invalid-claim', `The "${error.claim}" claim must be a number of seconds since 1970 (a NumericDate).`);
    }
    if (error.claim === 'nbf') {
      const nbf = error.payload.nbf;
      return new TokenRejectedError('not-yet-valid', `The token is not valid before ${typeof nbf === 'number' ? isoSeconds(nbf) : 'its "nbf"'} (${skewNote(context.now)}); check your server's clock.`);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenRejectedError('bad-signature', `The token's signature does not verify with the key ${quote(context.kid)}; the token was altered, or signed with another key.`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new TokenRejectedError('algorithm-not-allowed', 'The token\'s "alg" does not match its key; sign with RS256 for an RSA key, ES256 for an EC P-256 key.');
  }
  if (error instanceof errors.JOSEError) {
    return new TokenRejectedError('malformed', 'The token is not a well-formed signed JWT (compact JWS with a JSON claims set).');
  }
  return error;
}

/**
 * `context` is an object of name → value; `lwicontexts` is the same JSON-encoded in a string, as
 * Dynamics 365 Omnichannel sends it ("only primitive values are allowed for any key").
 */
function readContextTags(payload: JWTPayload): Tags {
  const merged = new Map<string, string>();
  const add = (entries: [string, string][]) => {
    for (const [name, value] of entries) {
      const existing = merged.get(name);
      if (existing !== undefined && existing !== value) {
        reject('invalid-context', `The context variable ${quote(name)} has different values in "context" and "lwicontexts"; send it once.`);
      }
      merged.set(name, value);
    }
  };
  if (payload.context !== undefined) add(contextEntries(payload.context, 'context'));
  if (payload.lwicontexts !== undefined) {
    if (typeof payload.lwicontexts !== 'string') {
      reject('invalid-context', 'The "lwicontexts" claim must be a string holding a JSON object, as Dynamics 365 sends it; or send an object in "context".');
    }
    let decoded: unknown;
    try {
      decoded = JSON.parse(payload.lwicontexts);
    } catch {
      return reject('invalid-context', 'The "lwicontexts" claim is not valid JSON; it must hold a JSON object of context variables.');
    }
    add(contextEntries(decoded, 'lwicontexts'));
  }
  const tags = tagsSchema.safeParse(Object.fromEntries(merged));
  if (!tags.success) reject('invalid-context', `The token's context variables cannot become tags: ${describeTagIssue(tags.error.issues[0])}.`);
  return tags.data;
}

function contextEntries(value: unknown, claim: string): [string, string][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('invalid-context', `The "${claim}" claim must be a JSON object of context variable names and values.`);
  }
  return Object.entries(value).map(([name, item]): [string, string] => {
    if (typeof item === 'string') return [name, item];
    if (typeof item === 'number' || typeof item === 'boolean') return [name, String(item)];
    return reject('invalid-context', `The context variable ${quote(name)} in "${claim}" must be a string, number or boolean.`);
  });
}

function describeTagIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'not valid';
  const name = issue.path.length > 0 ? `${quote(String(issue.path[0]))}: ` : '';
  const message = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  return `${name}${message}`;
}

function reject(reason: TokenRejection, message: string): never {
  throw new TokenRejectedError(reason, message);
}

/** A value from the token, in a message: quoted, and short enough to keep the message readable. */
function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

function skewNote(now: Date): string {
  return `the connector's time is ${now.toISOString()}, ${CLOCK_TOLERANCE_SECONDS} s of skew allowed`;
}

function isoSeconds(seconds: number): string {
  return Number.isFinite(seconds) && Math.abs(seconds) < 8.64e12 ? new Date(seconds * 1000).toISOString() : String(seconds);
}
