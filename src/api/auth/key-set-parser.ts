import { createPublicKey, type KeyObject } from 'node:crypto';
import { importJWK, importSPKI, type CryptoKey, type JWK } from 'jose';

/**
 * Reads the document at a token issuer's key URL into keys: a JWKS document, the Dynamics 365
 * Omnichannel list (`[{ "kid", "publicKey": base64 of a PEM, "expiry": unix seconds }]`), or one
 * PEM public key. Only RSA keys of 2048 bits or more (RS256) and EC P-256 keys (ES256) are taken;
 * an entry that is not one of them is skipped, so one bad entry cannot lock a vendor out.
 */

export type KeyAlgorithm = 'RS256' | 'ES256';
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['RS256', 'ES256'];

export interface IssuerKey {
  /** Absent only for a key URL that serves a single PEM key: it signs whatever kid a token names. */
  kid?: string;
  alg: KeyAlgorithm;
  key: CryptoKey;
  /** From the Omnichannel list's `expiry`; the key is not used from then on. */
  expiresAt?: Date;
}

export interface ParsedKeySet {
  keys: IssuerKey[];
  /** Why entries were left out, for the log: "entry 2 (kid "k1"): RSA keys must have at least 2048 bits". */
  skipped: string[];
}

/** The key URL gives no key we can use (fetching it fails too); the message says why, for the vendor. */
export class KeySetError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KeySetError';
  }
}

const MIN_RSA_BITS = 2048;
const PEM_BLOCK = /-----BEGIN ((?:RSA )?PUBLIC KEY)-----([\s\S]*?)-----END \1-----/g;

/** Reads a key URL's document in any of the three formats. */
export async function parseKeySet(document: string): Promise<ParsedKeySet> {
  const text = document.trim();
  if (text.startsWith('-----BEGIN')) {
    try {
      return { keys: [await importPem(text)], skipped: [] };
    } catch (error) {
      throw new KeySetError(`the key URL's PEM key cannot be used: ${error instanceof KeySetError ? error.message : 'not a usable public key'}`);
    }
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeySetError('the key URL answered with neither JSON (a JWKS or a key list) nor a PEM public key');
  }
  let entries: unknown[];
  let readEntry: (entry: unknown) => Promise<IssuerKey>;
  if (Array.isArray(json)) {
    entries = json;
    readEntry = readListEntry;
  } else if (isRecord(json) && Array.isArray(json.keys)) {
    entries = json.keys;
    readEntry = readJwk;
  } else {
    throw new KeySetError('the key URL\'s JSON is neither a JWKS ({"keys": [...]}) nor a list of {kid, publicKey, expiry} entries');
  }

  const keys: IssuerKey[] = [];
  const skipped: string[] = [];
  for (const [index, entry] of entries.entries()) {
    try {
      keys.push(await readEntry(entry));
    } catch (error) {
      const kid = isRecord(entry) && typeof entry.kid === 'string' ? ` (kid ${JSON.stringify(entry.kid.slice(0, 128))})` : '';
      skipped.push(`entry ${index + 1}${kid}: ${error instanceof KeySetError ? error.message : 'not a usable public key'}`);
    }
  }
  if (keys.length === 0) {
    throw new KeySetError(`the key URL's document has no usable key${skipped.length > 0 ? ` (${skipped.slice(0, 3).join('; ')})` : ''}`);
  }
  return { keys, skipped };
}

async function readJwk(entry: unknown): Promise<IssuerKey> {
  if (!isRecord(entry)) throw new KeySetError('not a JSON object');
  const kid = requireKid(entry.kid);
  if (entry.d !== undefined) throw new KeySetError('a private key; publish only the public part');
  if (entry.use !== undefined && entry.use !== 'sig') throw new KeySetError('"use" is not "sig"');
  let alg: KeyAlgorithm;
  if (entry.kty === 'RSA') {
    if (typeof entry.n !== 'string') throw new KeySetError('an RSA key without "n"');
    // The modulus is big-endian without leading zero bytes, so its bit length follows from its size.
    checkRsaBits(Buffer.from(entry.n, 'base64url').length * 8);
    alg = 'RS256';
  } else if (entry.kty === 'EC') {
    if (entry.crv !== 'P-256') throw new KeySetError(`EC keys must use the P-256 curve (ES256), not ${JSON.stringify(entry.crv)}`);
    alg = 'ES256';
  } else {
    throw new KeySetError(`only RSA and EC P-256 keys are accepted, not kty ${JSON.stringify(entry.kty)}`);
  }
  if (entry.alg !== undefined && entry.alg !== alg) throw new KeySetError(`"alg" is ${JSON.stringify(entry.alg)}, but ${entry.kty} keys are accepted for ${alg} only`);
  const key = await importJWK(entry as JWK, alg);
  if (key instanceof Uint8Array) throw new KeySetError('not a public key');
  return { kid, alg, key };
}

async function readListEntry(entry: unknown): Promise<IssuerKey> {
  if (!isRecord(entry)) throw new KeySetError('not a JSON object');
  const kid = requireKid(entry.kid);
  if (typeof entry.publicKey !== 'string') throw new KeySetError('"publicKey" is missing');
  const expiresAt = readExpiry(entry.expiry);
  return { kid, ...(await importPem(decodePublicKeyField(entry.publicKey))), ...(expiresAt && { expiresAt }) };
}

/** The Omnichannel list carries base64 of a PEM; some publishers put the PEM itself, or base64 DER. */
function decodePublicKeyField(value: string): string | Buffer {
  if (value.includes('-----BEGIN')) return value;
  const bytes = Buffer.from(value.replace(/\s/g, ''), 'base64');
  const text = bytes.toString('latin1');
  return text.includes('-----BEGIN') ? text : bytes;
}

function readExpiry(value: unknown): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const seconds = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw new KeySetError('"expiry" is not a time in seconds since 1970');
  return new Date(seconds * 1000);
}

async function importPem(source: string | Buffer): Promise<{ alg: KeyAlgorithm; key: CryptoKey }> {
  let keyObject: KeyObject;
  try {
    keyObject = typeof source === 'string' ? createPublicKey(normalizePem(source)) : createPublicKey({ key: source, format: 'der', type: 'spki' });
  } catch (error) {
    if (error instanceof KeySetError) throw error;
    throw new KeySetError('not a readable public key');
  }
  let alg: KeyAlgorithm;
  if (keyObject.asymmetricKeyType === 'rsa') {
    checkRsaBits(keyObject.asymmetricKeyDetails?.modulusLength ?? 0);
    alg = 'RS256';
  } else if (keyObject.asymmetricKeyType === 'ec' && keyObject.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    alg = 'ES256';
  } else {
    throw new KeySetError('only RSA and EC P-256 keys are accepted');
  }
  // SPKI whatever the PEM was (PKCS#1 "RSA PUBLIC KEY" too), which is what importSPKI reads.
  const spki = keyObject.export({ type: 'spki', format: 'pem' }) as string;
  return { alg, key: await importSPKI(spki, alg) };
}

/**
 * One PEM block, rebuilt: pasted keys come with indentation, trailing blanks and CRLF line ends
 * that OpenSSL's decoder refuses.
 */
function normalizePem(text: string): string {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const [block] = blocks;
  if (!block?.[1] || blocks.length > 1) {
    throw new KeySetError(blocks.length > 1 ? 'more than one PEM block where one key was expected' : 'no "PUBLIC KEY" PEM block');
  }
  const body = (block[2] ?? '').replace(/\s/g, '').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${block[1]}-----\n${body}-----END ${block[1]}-----\n`;
}

function checkRsaBits(bits: number): void {
  if (bits < MIN_RSA_BITS) throw new KeySetError(`RSA keys must have at least ${MIN_RSA_BITS} bits, this one has ${bits}`);
}

function requireKid(kid: unknown): string {
  if (typeof kid !== 'string' || kid === '') throw new KeySetError('no "kid"; tokens name their key by kid');
  return kid;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
