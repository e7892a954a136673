import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { aadsts } from './aadsts.js';
import type { AppRegistration, CertificateCredential, FederatedCredential } from './sandbox-state.js';

/**
 * Client authentication at the token endpoint, the three ways Entra accepts:
 * - a client secret, in the form (`client_secret_post`) or in a Basic header;
 * - a certificate: a `private_key_jwt` assertion whose header names the registered certificate by
 *   `x5t#S256` (msal-node 7 with `thumbprintSha256`, signed PS256) or `x5t` (SHA-1, RS256), with
 *   iss = sub = client id and aud = this token endpoint;
 * - a federated credential: an assertion from a trusted issuer for a configured subject and
 *   audience (`api://AzureADTokenExchange` by default), verified with the keys configured for it;
 *   a user-assigned managed identity's token is the typical one.
 * The result is Entra's `appidacr`: 0 public client, 1 secret, 2 certificate or assertion.
 */

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export type AuthenticatedClient = '0' | '1' | '2';

export interface ClientAuthenticationInput {
  app: AppRegistration;
  form: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The token endpoint URLs a certificate assertion may name as its audience. */
  tokenEndpoints: string[];
  /** A public client may go without a credential (device code flow). */
  publicClientAllowed: boolean;
  now: number;
}

/** The client id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1: each form-urlencoded). */
export function basicCredentials(headers: IncomingHttpHeaders): { clientId: string; secret: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(headers.authorization ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unescape = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
  return { clientId: unescape(decoded.slice(0, colon)), secret: unescape(decoded.slice(colon + 1)) };
}

export async function authenticateClient(input: ClientAuthenticationInput): Promise<AuthenticatedClient> {
  const { app, form, now } = input;
  const assertionType = form.get('client_assertion_type');
  const assertion = form.get('client_assertion');
  if (assertionType !== null || assertion !== null) {
    if (assertionType !== JWT_BEARER) throw aadsts.unsupportedAssertionType(assertionType ?? '');
    if (!assertion) throw aadsts.missingParameter('client_assertion');
    await verifyAssertion(input, assertion);
    return '2';
  }
  const secret = form.get('client_secret') ?? basicCredentials(input.headers)?.secret;
  if (secret !== undefined) {
    const registered = app.secrets.find((s) => s.value === secret);
    if (!registered) throw aadsts.invalidClientSecret(app.clientId);
    if (registered.endDateTime <= now) throw aadsts.clientSecretExpired(app.clientId);
    return '1';
  }
  if (input.publicClientAllowed && app.publicClient) return '0';
  throw aadsts.credentialRequired();
}

function decoded(assertion: string): { header: Record<string, unknown>; payload: JWTPayload } {
  try {
    return { header: decodeProtectedHeader(assertion), payload: decodeJwt(assertion) };
  } catch {
    throw aadsts.assertionSignatureInvalid();
  }
}

/**
 * An assertion the app signed itself names the app as issuer; anything else is a token from
 * another identity provider, to be matched against the federated credentials (a managed
 * identity's token carries `x5t` too, so the header alone does not tell them apart).
 */
async function verifyAssertion(input: ClientAuthenticationInput, assertion: string): Promise<void> {
  const { header, payload } = decoded(assertion);
  if (payload.iss !== input.app.clientId) {
    await verifyFederatedAssertion(input, assertion, payload);
    return;
  }
  const sha256 = header['x5t#S256'];
  const sha1 = header.x5t;
  if (typeof sha256 === 'string') await verifyCertificateAssertion(input, assertion, payload, { sha256 });
  else if (typeof sha1 === 'string') await verifyCertificateAssertion(input, assertion, payload, { sha1 });
  else throw aadsts.assertionSignatureInvalid();
}

const base64urlOfHex = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');

async function verifyCertificateAssertion(
  input: ClientAuthenticationInput,
  assertion: string,
  payload: JWTPayload,
  thumbprint: { sha256: string } | { sha1: string },
): Promise<void> {
  const { app } = input;
  const matches = (c: CertificateCredential) =>
    'sha256' in thumbprint ? base64urlOfHex(c.thumbprintSha256) === thumbprint.sha256 : base64urlOfHex(c.thumbprintSha1) === thumbprint.sha1;
  const certificate = app.certificates.find(matches);
  const presented = Buffer.from('sha256' in thumbprint ? thumbprint.sha256 : thumbprint.sha1, 'base64url').toString('hex').toUpperCase();
  if (!certificate || certificate.endDateTime <= input.now) throw aadsts.certificateNotRegistered(presented, app.clientId);
  await verifySignature(assertion, createPublicKey(certificate.certificatePem), input.now);
  if (payload.sub !== app.clientId) throw aadsts.assertionSubjectMismatch();
  const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud ?? ''];
  if (!audiences.some((aud) => input.tokenEndpoints.includes(aud))) throw aadsts.assertionAudienceInvalid(audiences.join(' '));
}

async function verifyFederatedAssertion(input: ClientAuthenticationInput, assertion: string, payload: JWTPayload): Promise<void> {
  const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud ?? ''];
  const credential = input.app.federatedCredentials.find(
    (f: FederatedCredential) => f.issuer === payload.iss && f.subject === payload.sub && f.audiences.some((a) => audiences.includes(a)),
  );
  if (!credential) throw aadsts.noFederatedCredential(payload.iss ?? '', payload.sub ?? '', audiences.join(' '));
  const key = credential.jwks ? createLocalJWKSet(credential.jwks) : createPublicKey(credential.publicKeyPem ?? '');
  await verifySignature(assertion, key, input.now);
}

async function verifySignature(assertion: string, key: KeyObject | JWTVerifyGetKey, now: number): Promise<void> {
  try {
    await jwtVerify(assertion, key, { algorithms: ['PS256', 'RS256', 'ES256'], currentDate: new Date(now), clockTolerance: 300 });
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired || error instanceof joseErrors.JWTClaimValidationFailed) throw aadsts.assertionExpired();
    throw aadsts.assertionSignatureInvalid();
  }
}

/** The portal's thumbprints of a certificate (SHA-1 and SHA-256 of its DER, upper-case hex) and its validity. */
export function certificateThumbprints(certificatePem: string): { sha1: string; sha256: string; notBefore: number; notAfter: number } {
  const certificate = new X509Certificate(certificatePem);
  return {
    sha1: createHash('sha1').update(certificate.raw).digest('hex').toUpperCase(),
    sha256: createHash('sha256').update(certificate.raw).digest('hex').toUpperCase(),
    notBefore: Date.parse(certificate.validFrom),
    notAfter: Date.parse(certificate.validTo),
  };
}
