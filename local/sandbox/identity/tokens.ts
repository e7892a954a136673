import { createHash, randomBytes } from 'node:crypto';
import { SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { User } from './sandbox-state.js';

/**
 * Token minting. Access tokens are v1 tokens, as Entra issues them for Microsoft Graph and
 * Exchange Online (`iss` https://sts.windows.net/<tid>/, `ver` 1.0, `appid`, `scp` or `roles`,
 * `upn` and `unique_name` for users, `idtyp`); ID tokens are v2 (`iss` = the metadata's issuer,
 * `aud` = client id, `preferred_username`, `nonce`). `iat` and `nbf` are five minutes in the past,
 * as Entra backdates them, so a validator whose clock lags a little still accepts a fresh token.
 * Refresh tokens, codes and device codes are opaque random strings shaped like Entra's (`1.A…`).
 */

export interface TokenSigner {
  kid: string;
  privateKey: CryptoKey;
}

const BACKDATE_SECONDS = 300;
/** Directory role template ids Entra lists in `wids`: every member is a User; admins are Global Administrators. */
const USER_ROLE_TEMPLATE = 'b79fbf4d-3ef9-4689-8143-76b194e85509';
const GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE = '62e90394-69f5-4237-9190-012177145e10';

export const v1Issuer = (tenantId: string) => `https://sts.windows.net/${tenantId}/`;
export const v2Issuer = (httpsBase: string, tenantId: string) => `${httpsBase}/${tenantId}/v2.0`;

export function opaqueToken(bytes = 96): string {
  return `1.A${randomBytes(bytes).toString('base64url')}`;
}

/** Entra's `sub` is pairwise: stable for one user and one app, different across apps. */
export function pairwiseSubject(objectId: string, clientId: string): string {
  return createHash('sha256').update(`${objectId}\n${clientId.toLowerCase()}`).digest('base64url').slice(0, 43);
}

/** What msal-node builds the account's homeAccountId (`<uid>.<utid>`) from. */
export function clientInfo(objectId: string, tenantId: string): string {
  return Buffer.from(JSON.stringify({ uid: objectId, utid: tenantId })).toString('base64url');
}

function opaqueClaims(): JWTPayload {
  return {
    aio: randomBytes(60).toString('base64'),
    rh: `0.A${randomBytes(40).toString('base64url')}.`,
    uti: randomBytes(16).toString('base64url'),
  };
}

async function sign(signer: TokenSigner, payload: JWTPayload): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ typ: 'JWT', alg: 'RS256', x5t: signer.kid, kid: signer.kid }).sign(signer.privateKey);
}

interface Lifetime {
  /** Milliseconds since the epoch. */
  now: number;
  lifetimeSeconds: number;
}

function times({ now, lifetimeSeconds }: Lifetime): JWTPayload {
  const seconds = Math.floor(now / 1000);
  return { iat: seconds - BACKDATE_SECONDS, nbf: seconds - BACKDATE_SECONDS, exp: seconds + lifetimeSeconds };
}

export interface ClientIdentity {
  clientId: string;
  displayName: string;
  /** 0 public client, 1 client secret, 2 certificate or other assertion. */
  appidacr: '0' | '1' | '2';
}

export interface UserAccessTokenInput extends Lifetime {
  audience: string;
  user: User;
  client: ClientIdentity;
  scopes: string[];
  sessionId: string;
}

export function mintUserAccessToken(signer: TokenSigner, input: UserAccessTokenInput): Promise<string> {
  const { user } = input;
  return sign(signer, {
    aud: input.audience,
    iss: v1Issuer(user.tenantId),
    ...times(input),
    acr: '1',
    amr: ['pwd'],
    app_displayname: input.client.displayName,
    appid: input.client.clientId,
    appidacr: input.client.appidacr,
    idtyp: 'user',
    ipaddr: '127.0.0.1',
    name: user.displayName,
    oid: user.id,
    scp: input.scopes.join(' '),
    sid: input.sessionId,
    sub: pairwiseSubject(user.id, input.client.clientId),
    tid: user.tenantId,
    unique_name: user.userPrincipalName,
    upn: user.userPrincipalName,
    ver: '1.0',
    wids: user.isAdmin ? [GLOBAL_ADMINISTRATOR_ROLE_TEMPLATE, USER_ROLE_TEMPLATE] : [USER_ROLE_TEMPLATE],
    ...opaqueClaims(),
  });
}

export interface AppAccessTokenInput extends Lifetime {
  audience: string;
  tenantId: string;
  servicePrincipalId: string;
  client: ClientIdentity;
  roles: string[];
}

export function mintAppAccessToken(signer: TokenSigner, input: AppAccessTokenInput): Promise<string> {
  return sign(signer, {
    aud: input.audience,
    iss: v1Issuer(input.tenantId),
    ...times(input),
    app_displayname: input.client.displayName,
    appid: input.client.clientId,
    appidacr: input.client.appidacr,
    idp: v1Issuer(input.tenantId),
    idtyp: 'app',
    oid: input.servicePrincipalId,
    // Entra leaves `roles` out when nothing was granted; the token then opens nothing.
    ...(input.roles.length > 0 ? { roles: input.roles } : {}),
    sub: input.servicePrincipalId,
    tid: input.tenantId,
    ver: '1.0',
    ...opaqueClaims(),
  });
}

export interface IdTokenInput extends Lifetime {
  issuer: string;
  clientId: string;
  user: User;
  sessionId: string;
  nonce?: string;
}

export function mintIdToken(signer: TokenSigner, input: IdTokenInput): Promise<string> {
  const { user } = input;
  return sign(signer, {
    aud: input.clientId,
    iss: input.issuer,
    ...times(input),
    name: user.displayName,
    ...(input.nonce === undefined ? {} : { nonce: input.nonce }),
    oid: user.id,
    preferred_username: user.userPrincipalName,
    sid: input.sessionId,
    sub: pairwiseSubject(user.id, input.clientId),
    tid: user.tenantId,
    ver: '2.0',
    ...opaqueClaims(),
  });
}
