import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, exportJWK, jwtVerify, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { KeySetError, parseKeySet, type IssuerKey } from '../../src/api/auth/key-set-parser.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const smallRsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ed25519 = generateKeyPairSync('ed25519');

const spkiPem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;
const base64 = (text: string) => Buffer.from(text).toString('base64');
const jwk = async (key: KeyObject, extra: Partial<JWK> = {}): Promise<JWK> => ({ ...(await exportJWK(key)), ...extra });

/** The key really verifies what its private half signed. */
async function expectVerifies(key: IssuerKey | undefined, privateKey: KeyObject): Promise<void> {
  if (!key) throw new Error('no key');
  const token = await new SignJWT({ sub: 'acme' }).setProtectedHeader({ alg: key.alg }).sign(privateKey);
  await expect(jwtVerify(token, key.key, { algorithms: [key.alg] })).resolves.toMatchObject({ payload: { sub: 'acme' } });
}

describe('parseKeySet: JWKS', () => {
  it('reads RSA keys for RS256 and EC P-256 keys for ES256', async () => {
    const document = JSON.stringify({ keys: [await jwk(rsa.publicKey, { kid: 'r1', use: 'sig', alg: 'RS256' }), await jwk(ec.publicKey, { kid: 'e1' })] });
    const { keys, skipped } = await parseKeySet(document);
    expect(skipped).toEqual([]);
    expect(keys.map((k) => [k.kid, k.alg, k.expiresAt])).toEqual([['r1', 'RS256', undefined], ['e1', 'ES256', undefined]]);
    await expectVerifies(keys[0], rsa.privateKey);
    await expectVerifies(keys[1], ec.privateKey);
  });

  it('skips entries it cannot use and keeps the rest', async () => {
    const { keys, skipped } = await parseKeySet(
      JSON.stringify({
        keys: [
          await jwk(smallRsa.publicKey, { kid: 'small' }),
          await jwk(p384.publicKey, { kid: 'p384' }),
          await jwk(ed25519.publicKey, { kid: 'ed' }),
          { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
          await jwk(rsa.privateKey, { kid: 'private' }),
          await jwk(rsa.publicKey, { kid: 'enc', use: 'enc' }),
          await jwk(rsa.publicKey, { kid: 'rs512', alg: 'RS512' }),
          await jwk(rsa.publicKey),
          { kty: 'RSA', kid: 'broken', n: (await exportJWK(rsa.publicKey)).n },
          'not an object',
          await jwk(ec.publicKey, { kid: 'good' }),
        ],
      }),
    );
    expect(keys.map((k) => k.kid)).toEqual(['good']);
    expect(skipped).toEqual([
      'entry 1 (kid "small"): RSA keys must have at least 2048 bits, this one has 1024',
      'entry 2 (kid "p384"): EC keys must use the P-256 curve (ES256), not "P-384"',
      'entry 3 (kid "ed"): only RSA and EC P-256 keys are accepted, not kty "OKP"',
      'entry 4 (kid "hmac"): only RSA and EC P-256 keys are accepted, not kty "oct"',
      'entry 5 (kid "private"): a private key; publish only the public part',
      'entry 6 (kid "enc"): "use" is not "sig"',
      'entry 7 (kid "rs512"): "alg" is "RS512", but RSA keys are accepted for RS256 only',
      'entry 8: no "kid"; tokens name their key by kid',
      'entry 9 (kid "broken"): not a usable public key',
      'entry 10: not a JSON object',
    ]);
  });

  it('fails a document with no usable key, saying why', async () => {
    await expect(parseKeySet(JSON.stringify({ keys: [await jwk(smallRsa.publicKey, { kid: 'small' })] }))).rejects.toThrow(
      new KeySetError('the key URL\'s document has no usable key (entry 1 (kid "small"): RSA keys must have at least 2048 bits, this one has 1024)'),
    );
    await expect(parseKeySet('{"keys":[]}')).rejects.toThrow(/no usable key$/);
    await expect(parseKeySet('{"keys":{}}')).rejects.toThrow(/neither a JWKS/);
    await expect(parseKeySet('{"kid":"a"}')).rejects.toThrow(/neither a JWKS/);
    await expect(parseKeySet('<html>Not found</html>')).rejects.toThrow(/neither JSON .* nor a PEM public key/);
  });
});

describe('parseKeySet: the Dynamics 365 Omnichannel key list', () => {
  it('reads the seed example: base64 of a PEM, expiry in unix seconds', async () => {
    // The two entries of the documentation's example (its first "publicKey" lacks quotes there).
    const publicKey =
      'LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0NCk1JSUJJakFOQmdrcWhraUc5dzBCQVFFRkFBT0NBUThBTUlJQkNnS0NBUUVBbjFLdXhtSEh3V3hjelZSWGRBVmMNCnBEaFZwa0FnYklhTGZBUWc1bFpvemZqc29vcWRGWkl0VlFMdmRERWFVeDNqTytrTkxZM0JFRnBYVDZTN3ZNZCsNCnZoM2hpMDNsQ1dINnNCTWtaSWtuUUliMnFpekFsT0diU2EvK3JrUElnYnpXQjRpT1QyWVhyOVB4bXR5d2o4WUINCnYram55VU5DSzMyZy9FYWsvM0k3YW1vZ2pJY0JISjNFTjVuQWJBMExVVnJwMW5DODJmeEVPOHNJTzNYdjlWNVUNCnc5QnVTVVFRSmtMejNQYVI5WTdRZUEyNW5LUGtqTXZ2Y0UxVU5oeVpIYlNLbmorSitkZmFjb1hsSGtyMEdGTXYNCldkSDZqR0pWcGNQMHBkNjFOa3JKa2c0aStheThwS2ZqdjNUOHN3NWdaVHFweFFaaitVRWxqaVM0SHRPTlhkNlENCnZRSURBUUFCDQotLS0tLUVORCBQVUJMSUMgS0VZLS0tLS0NCg==';
    const { keys } = await parseKeySet(
      JSON.stringify([
        { kid: 'qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp4in7hu4=', publicKey, expiry: 1608495423 },
        { kid: 'qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid=', publicKey, expiry: 1608495423 },
      ]),
    );
    expect(keys.map((k) => [k.kid, k.alg, k.expiresAt?.toISOString()])).toEqual([
      ['qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp4in7hu4=', 'RS256', '2020-12-20T20:17:03.000Z'],
      ['qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid=', 'RS256', '2020-12-20T20:17:03.000Z'],
    ]);
  });

  it('takes the public key as base64 of a PEM, as a PEM, or as base64 DER, with or without expiry', async () => {
    const der = (rsa.publicKey.export({ type: 'spki', format: 'der' })).toString('base64');
    const { keys, skipped } = await parseKeySet(
      JSON.stringify([
        { kid: 'b64pem', publicKey: base64(spkiPem(rsa.publicKey)), expiry: 4102444800 },
        { kid: 'pem', publicKey: spkiPem(ec.publicKey), expiry: '4102444800' },
        { kid: 'der', publicKey: der },
        { kid: 'pkcs1', publicKey: base64(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string), expiry: null },
      ]),
    );
    expect(skipped).toEqual([]);
    expect(keys.map((k) => [k.kid, k.alg, k.expiresAt?.toISOString()])).toEqual([
      ['b64pem', 'RS256', '2100-01-01T00:00:00.000Z'],
      ['pem', 'ES256', '2100-01-01T00:00:00.000Z'],
      ['der', 'RS256', undefined],
      ['pkcs1', 'RS256', undefined],
    ]);
    await expectVerifies(keys[1], ec.privateKey);
    await expectVerifies(keys[3], rsa.privateKey);
  });

  it('skips entries without a kid or a usable key, or with an unreadable expiry', async () => {
    const { keys, skipped } = await parseKeySet(
      JSON.stringify([
        { publicKey: base64(spkiPem(rsa.publicKey)) },
        { kid: 'none' },
        { kid: 'garbage', publicKey: 'bm90IGEga2V5' },
        { kid: 'small', publicKey: base64(spkiPem(smallRsa.publicKey)) },
        { kid: 'p384', publicKey: base64(spkiPem(p384.publicKey)) },
        { kid: 'ed', publicKey: spkiPem(ed25519.publicKey) },
        { kid: 'when', publicKey: spkiPem(rsa.publicKey), expiry: 'next year' },
        { kid: 'ok', publicKey: spkiPem(rsa.publicKey) },
      ]),
    );
    expect(keys.map((k) => k.kid)).toEqual(['ok']);
    expect(skipped).toEqual([
      'entry 1: no "kid"; tokens name their key by kid',
      'entry 2 (kid "none"): "publicKey" is missing',
      'entry 3 (kid "garbage"): not a readable public key',
      'entry 4 (kid "small"): RSA keys must have at least 2048 bits, this one has 1024',
      'entry 5 (kid "p384"): only RSA and EC P-256 keys are accepted',
      'entry 6 (kid "ed"): only RSA and EC P-256 keys are accepted',
      'entry 7 (kid "when"): "expiry" is not a time in seconds since 1970',
    ]);
  });
});

describe('parseKeySet: a single PEM public key', () => {
  it('reads one key without a kid', async () => {
    const { keys } = await parseKeySet(spkiPem(rsa.publicKey));
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ alg: 'RS256' });
    expect(keys[0]?.kid).toBeUndefined();
    await expectVerifies(keys[0], rsa.privateKey);
    await expect(parseKeySet(spkiPem(ec.publicKey))).resolves.toMatchObject({ keys: [{ alg: 'ES256' }] });
  });

  it('reads a pasted PEM: indented, trailing blanks, CRLF line ends (as in the Dynamics documentation)', async () => {
    const pasted = spkiPem(rsa.publicKey)
      .split('\n')
      .map((line) => `  ${line} `)
      .join('\r\n');
    const { keys } = await parseKeySet(pasted);
    await expectVerifies(keys[0], rsa.privateKey);
  });

  it('reads a PKCS#1 "RSA PUBLIC KEY"', async () => {
    const { keys } = await parseKeySet(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string);
    await expectVerifies(keys[0], rsa.privateKey);
  });

  it('refuses weak, unsupported, damaged or several keys', async () => {
    await expect(parseKeySet(spkiPem(smallRsa.publicKey))).rejects.toThrow('RSA keys must have at least 2048 bits, this one has 1024');
    await expect(parseKeySet(spkiPem(p384.publicKey))).rejects.toThrow('only RSA and EC P-256 keys are accepted');
    await expect(parseKeySet(spkiPem(rsa.publicKey).replace(/^(-+BEGIN PUBLIC KEY-+\n)M/, '$1N'))).rejects.toThrow('not a readable public key');
    await expect(parseKeySet(spkiPem(rsa.publicKey) + spkiPem(ec.publicKey))).rejects.toThrow('more than one PEM block');
    await expect(parseKeySet(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).rejects.toThrow('no "PUBLIC KEY" PEM block');
  });
});
