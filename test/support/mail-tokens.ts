import { createHash, randomUUID, type JsonWebKey } from 'node:crypto';
import { SignJWT, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, type CryptoKey, type JWTPayload } from 'jose';

/**
 * Access tokens shaped like the ones Entra ID issues for Exchange Online (v1 tokens), signed with
 * keys the local mail servers trust (local/sandbox/mail-server). Delegated tokens come from scopes
 * like https://outlook.office.com/IMAP.AccessAsUser.All and carry that audience; app-only ones come
 * from https://outlook.office365.com/.default and carry https://outlook.office365.com. Dovecot
 * compares exp, nbf and iat with its clock without leeway and requires `typ: "JWT"`, `sub` and
 * `exp`; everything else mirrors what a connector receives.
 */

export const EXCHANGE_DELEGATED_AUDIENCE = 'https://outlook.office.com';
export const EXCHANGE_APP_AUDIENCE = 'https://outlook.office365.com';
export const DELEGATED_SCOPES = 'IMAP.AccessAsUser.All POP.AccessAsUser.All SMTP.Send';
export const APP_ROLES = ['IMAP.AccessAsApp', 'POP.AccessAsApp', 'SMTP.SendAsApp'];

export interface TokenSigner {
  kid: string;
  privateKey: CryptoKey;
}

export interface GeneratedSigningKey extends TokenSigner {
  privateKeyPem: string;
  publicKeyPem: string;
  publicJwk: JsonWebKey;
}

export async function generateSigningKey(kid: string): Promise<GeneratedSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return {
    kid,
    privateKey,
    privateKeyPem: await exportPKCS8(privateKey),
    publicKeyPem: await exportSPKI(publicKey),
    publicJwk: { ...jwk, kid, alg: 'RS256', use: 'sig' },
  };
}

/** For a key made in another process (the global setup) and passed on as PKCS#8 PEM. */
export async function importSigningKey(kid: string, privateKeyPem: string): Promise<TokenSigner> {
  return { kid, privateKey: await importPKCS8(privateKeyPem, 'RS256') };
}

export interface TokenOptions {
  tenantId: string;
  /** The client the token was issued to (v1 `appid`). */
  clientId?: string;
  /** Only v2 tokens carry azp; Dovecot then looks the key up under it. */
  azp?: string;
  /** Defaults to the audience Entra gives this kind of token (EXCHANGE_DELEGATED_AUDIENCE, EXCHANGE_APP_AUDIENCE). */
  audience?: string | string[];
  /** Defaults to the tenant's v1 issuer, https://sts.windows.net/<tenant>/. */
  issuer?: string;
  /** Seconds since the epoch; defaults to 5 s ago so that a server clock a little behind still accepts it. */
  issuedAt?: number;
  lifetimeSeconds?: number;
  /** Set last: adds claims, or replaces any of the above (e.g. a future `nbf`). */
  claims?: JWTPayload;
}

export interface DelegatedTokenOptions extends TokenOptions {
  upn: string;
  scp?: string;
}

export interface AppTokenOptions extends TokenOptions {
  roles?: string[];
}

const DEFAULT_CLIENT_ID = '00000000-0000-4000-8000-00000000c11e';

// Entra's oid is stable per user and tenant, and sub per user and client; derive both the same way.
function stableId(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\n')).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

async function sign(signer: TokenSigner, options: TokenOptions, audience: string, claims: JWTPayload): Promise<string> {
  const issuedAt = options.issuedAt ?? Math.floor(Date.now() / 1000) - 5;
  const clientId = options.clientId ?? DEFAULT_CLIENT_ID;
  const payload: JWTPayload = {
    aud: options.audience ?? audience,
    iss: options.issuer ?? `https://sts.windows.net/${options.tenantId}/`,
    iat: issuedAt,
    nbf: issuedAt,
    exp: issuedAt + (options.lifetimeSeconds ?? 3600),
    appid: clientId,
    ...(options.azp === undefined ? {} : { azp: options.azp }),
    tid: options.tenantId,
    uti: randomUUID(),
    ver: '1.0',
    ...claims,
    ...options.claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: signer.kid, x5t: signer.kid })
    .sign(signer.privateKey);
}

/** A token a user's sign-in yields (authorization code flow): opens that user's mailbox only. */
export function mintDelegatedToken(signer: TokenSigner, options: DelegatedTokenOptions): Promise<string> {
  const oid = stableId(options.tenantId, options.upn);
  return sign(signer, options, EXCHANGE_DELEGATED_AUDIENCE, {
    idtyp: 'user',
    oid,
    sub: stableId(oid, options.clientId ?? DEFAULT_CLIENT_ID),
    upn: options.upn,
    unique_name: options.upn,
    scp: options.scp ?? DELEGATED_SCOPES,
  });
}

/** A client-credentials token: no user, roles instead of scopes; opens any mailbox it is granted. */
export function mintAppToken(signer: TokenSigner, options: AppTokenOptions): Promise<string> {
  const oid = stableId(options.tenantId, 'service principal', options.clientId ?? DEFAULT_CLIENT_ID);
  return sign(signer, options, EXCHANGE_APP_AUDIENCE, {
    idtyp: 'app',
    oid,
    sub: oid,
    roles: options.roles ?? APP_ROLES,
  });
}
