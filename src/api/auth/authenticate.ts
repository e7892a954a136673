import type { ApiKeyRecord } from '../../domain/access.js';
import { ProblemError } from '../problem.js';
import { looksLikeApiKey, matchesApiKey, parseApiKey } from './api-keys.js';
import type { Principal } from './principal.js';
import { TokenRejectedError, type TokenPrincipal } from './verify-vendor-token.js';

/**
 * Establishes who is calling: an API key (`Authorization: Bearer m365c_…` or `X-API-Key`) or a
 * JWT signed by a registered issuer (`Authorization: Bearer eyJ…`). Anything else is a 401 that
 * says which kind of credential was expected and never repeats what was sent.
 */

export interface AuthenticatorDeps {
  findApiKey(prefix: string): Promise<ApiKeyRecord | undefined>;
  verifyToken(token: string): Promise<TokenPrincipal>;
}

export type Authenticate = (headers: Headers) => Promise<Principal>;

const CHALLENGE = 'Bearer realm="m365-connector"';

export function createAuthenticator(deps: AuthenticatorDeps): Authenticate {
  return async (headers) => {
    const credential = credentialOf(headers);
    if (credential === undefined) {
      throw unauthorized('No credentials: send "Authorization: Bearer <API key or signed token>".', false);
    }
    if (looksLikeApiKey(credential)) return fromApiKey(deps, credential);
    if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(credential)) return fromToken(deps, credential);
    throw unauthorized('The credential is neither an API key (m365c_…) nor a signed token (JWT).', true);
  };
}

function credentialOf(headers: Headers): string | undefined {
  const authorization = headers.get('authorization');
  if (authorization !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match?.[1] ?? '';
  }
  return headers.get('x-api-key')?.trim() ?? undefined;
}

async function fromApiKey(deps: AuthenticatorDeps, credential: string): Promise<Principal> {
  const parsed = parseApiKey(credential);
  const record = parsed ? await deps.findApiKey(parsed.prefix) : undefined;
  if (!parsed || !record || !matchesApiKey(record, parsed.secret)) {
    throw unauthorized('The API key is not valid, or it was revoked.', true);
  }
  return { customerScope: record.customerScope, credential: `key ${record.prefix}`, contextTags: {} };
}

async function fromToken(deps: AuthenticatorDeps, credential: string): Promise<Principal> {
  try {
    const token = await deps.verifyToken(credential);
    return { customerScope: token.customerId, credential: `issuer ${token.issuer}`, contextTags: token.contextTags };
  } catch (error) {
    if (error instanceof TokenRejectedError) throw unauthorized(`The token was rejected: ${error.message}`, true);
    throw error;
  }
}

function unauthorized(detail: string, invalid: boolean): ProblemError {
  return new ProblemError('unauthorized', detail, {
    headers: { 'www-authenticate': invalid ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE },
  });
}
