import type { KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { MICROSOFT_GRAPH } from '../identity/resources.js';
import type { SandboxState, Tenant, User } from '../identity/sandbox-state.js';
import { v1Issuer } from '../identity/tokens.js';
import { graphErrors } from './errors.js';

/**
 * Who is calling: the bearer token checked the way Graph checks Entra's tokens, here against the
 * sandbox's own signing key (RS256, by kid), on the sandbox clock, for Graph's audience, from a
 * tenant the sandbox knows. A token with `scp` acts for the signed-in user (delegated); one
 * without acts as the app itself (app-only, `roles`, `idtyp` app). Any failure is 401
 * InvalidAuthenticationToken, which the router answers with Graph's WWW-Authenticate challenge.
 */

export interface DelegatedCaller {
  kind: 'delegated';
  tenant: Tenant;
  user: User;
  clientId: string;
  scopes: ReadonlySet<string>;
}

export interface AppCaller {
  kind: 'application';
  tenant: Tenant;
  clientId: string;
  roles: ReadonlySet<string>;
}

export type GraphCaller = DelegatedCaller | AppCaller;

export interface TokenVerifier {
  state: SandboxState;
  kid: string;
  publicKey: KeyObject;
  now(): number;
}

// Entra names Graph by its URI or, for scopes asked without one (`User.Read`), by its app id.
const GRAPH_AUDIENCES = new Set([...MICROSOFT_GRAPH.identifierUris.flatMap((uri) => [uri, `${uri}/`]), MICROSOFT_GRAPH.appId]);

function bearerToken(authorization: string | undefined): string {
  const match = /^Bearer\s+(.*)$/i.exec(authorization ?? '');
  return match?.[1]?.trim() ?? '';
}

async function verifiedClaims(token: string, verifier: TokenVerifier): Promise<JWTPayload> {
  if (token.split('.').length !== 3) throw graphErrors.tokenNotAJwt();
  let kid: unknown;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch {
    throw graphErrors.tokenNotAJwt();
  }
  if (kid !== verifier.kid) throw graphErrors.tokenInvalid();
  try {
    const { payload } = await jwtVerify(token, verifier.publicKey, { algorithms: ['RS256'], currentDate: new Date(verifier.now()) });
    return payload;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw graphErrors.tokenExpired();
    if (error instanceof joseErrors.JWTClaimValidationFailed) throw graphErrors.tokenNotYetValid();
    if (error instanceof joseErrors.JWTInvalid || error instanceof joseErrors.JWSInvalid) throw graphErrors.tokenNotAJwt();
    throw graphErrors.tokenInvalid();
  }
}

export async function authenticate(authorization: string | undefined, verifier: TokenVerifier): Promise<GraphCaller> {
  const token = bearerToken(authorization);
  if (token === '') throw graphErrors.tokenEmpty();
  const claims = await verifiedClaims(token, verifier);
  if (typeof claims.aud !== 'string' || !GRAPH_AUDIENCES.has(claims.aud)) throw graphErrors.tokenInvalid('Invalid audience.');
  const tenant = typeof claims.tid === 'string' ? verifier.state.tenant(claims.tid) : undefined;
  if (!tenant || claims.iss !== v1Issuer(tenant.id)) throw graphErrors.tokenInvalid('Invalid issuer.');
  const clientId = typeof claims.appid === 'string' ? claims.appid : '';
  if (typeof claims.scp === 'string') {
    const user = typeof claims.oid === 'string' ? verifier.state.user(claims.oid) : undefined;
    if (user?.tenantId !== tenant.id) throw graphErrors.tokenInvalid();
    return { kind: 'delegated', tenant, user, clientId, scopes: new Set(claims.scp.split(' ').filter((s) => s !== '')) };
  }
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
  return { kind: 'application', tenant, clientId, roles: new Set(roles) };
}

/** What an operation accepts: any one of these delegated scopes, or of these app roles. */
export interface PermissionSet {
  delegated: readonly string[];
  application: readonly string[];
}

/** Whether the caller holds any of the scopes (delegated) or app roles (app-only) that the operation accepts. */
export function holdsAny(caller: GraphCaller, permissions: PermissionSet): boolean {
  return caller.kind === 'delegated' ? permissions.delegated.some((p) => caller.scopes.has(p)) : permissions.application.some((p) => caller.roles.has(p));
}
