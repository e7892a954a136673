// @peculiar/x509 needs a Reflect metadata polyfill loaded before it (its README says so).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../../src/atomic-file.js';

type CryptoKey = webcrypto.CryptoKey;

/**
 * A certificate authority of this machine's own, for the local stand-ins that must speak TLS
 * (msal-node insists on an https authority; the Key Vault SDK refuses bearer tokens over http).
 * The CA lives in a folder outside any deployment; processes trust it through
 * NODE_EXTRA_CA_CERTS (or tls.setDefaultCACertificates) and nothing else has to change.
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface LocalCa {
  /** Folder holding ca.pem and ca.key. */
  directory: string;
  certPath: string;
  certPem: string;
  /** A server certificate for these DNS names and IP addresses, signed by the CA. */
  issueServerCertificate(hosts?: string[]): Promise<{ certPem: string; keyPem: string }>;
}

/**
 * Loads the CA in `directory`, creating it (valid 5 years) on first use or when it is about to
 * expire. A CA that is there but unreadable is an error, not a reason to replace what other
 * processes already trust.
 */
export async function openLocalCa(directory: string): Promise<LocalCa> {
  const certPath = join(directory, 'ca.pem');
  const keyPath = join(directory, 'ca.key');
  const existing = await readCa(certPath, keyPath);
  const expiresSoon = existing && new x509.X509Certificate(existing.certPem).notAfter.getTime() < Date.now() + 7 * 86_400_000;
  const { certPem, caKey } = existing && !expiresSoon ? existing : await createCa(directory, certPath, keyPath);
  const caCert = new x509.X509Certificate(certPem);

  return {
    directory,
    certPath,
    certPem,
    async issueServerCertificate(hosts = ['localhost', '127.0.0.1', '::1']) {
      const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
      const names = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerial(),
        subject: `CN=${hosts[0] ?? 'localhost'}`,
        issuer: caCert.subject,
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 365 * 86_400_000),
        signingAlgorithm: SIGNING_ALGORITHM,
        publicKey: keys.publicKey,
        signingKey: caKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(names),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      return { certPem: cert.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey) };
    },
  };
}

async function readCa(certPath: string, keyPath: string): Promise<{ certPem: string; caKey: CryptoKey } | undefined> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`The local CA in ${certPath} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  try {
    return { certPem, caKey: await importPrivateKey(keyPem) };
  } catch (error) {
    throw new Error(`The local CA key ${keyPath} is damaged; delete the folder to create a new CA.`, { cause: error });
  }
}

async function createCa(directory: string, certPath: string, keyPath: string): Promise<{ certPem: string; caKey: CryptoKey }> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=m365-connector local development CA, O=m365-connector',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 5 * 365 * 86_400_000),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString('pem');
  // Key first, certificate last: a folder with a ca.pem always has the key that signed it.
  await writeFileAtomically(keyPath, await exportPrivateKey(keys.privateKey), 0o600);
  await writeFileAtomically(certPath, certPem, 0o644);
  return { certPem, caKey: keys.privateKey };
}


async function exportPrivateKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, true, ['sign']);
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
