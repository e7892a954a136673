// @peculiar/x509 needs a Reflect metadata polyfill loaded before it (its README says so).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, createPublicKey, webcrypto } from 'node:crypto';
import { importPKCS8, type CryptoKey } from 'jose';

/**
 * The sandbox's token signing key: RSA 2048 with a self-signed certificate, published the way
 * Entra publishes its keys (JWKS entries with `kid` = `x5t` = base64url SHA-1 thumbprint of the
 * certificate, plus `x5c`). Tokens carry `kid` and `x5t` in their header, so any validator that
 * looks keys up by either finds it; the test mail server loads the same public key by kid.
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;

export interface SigningKeyMaterial {
  privateKeyPem: string;
  certificatePem: string;
}

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKeyPem: string;
  /** The JWKS entry, as /discovery/v2.0/keys serves it. */
  jwk: Record<string, unknown>;
  material: SigningKeyMaterial;
}

export async function createSigningKeyMaterial(): Promise<SigningKeyMaterial> {
  const keys = await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: positiveSerial(),
    name: 'CN=m365-connector sandbox identity token signing',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 5 * 365 * 86_400_000),
    signingAlgorithm: RSA,
    keys,
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { privateKeyPem, certificatePem: cert.toString('pem') };
}

function positiveSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

export async function loadSigningKey(material: SigningKeyMaterial): Promise<SigningKey> {
  const certificate = new X509Certificate(material.certificatePem);
  const kid = createHash('sha1').update(certificate.raw).digest('base64url');
  const publicKey = createPublicKey(material.certificatePem);
  const { n, e } = publicKey.export({ format: 'jwk' });
  return {
    kid,
    privateKey: await importPKCS8(material.privateKeyPem, 'RS256'),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: { kty: 'RSA', use: 'sig', kid, x5t: kid, n, e, x5c: [certificate.raw.toString('base64')] },
    material,
  };
}
