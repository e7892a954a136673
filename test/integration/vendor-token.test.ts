import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenRejectedError, createVendorTokenVerifier, type TokenRejection, type VendorTokenVerifier, type VendorTokenVerifierDeps } from '../../src/api/auth/verify-vendor-token.js';
import type { JwtIssuer } from '../../src/domain/access.js';
import { keys } from '../../src/store/repositories.js';
import { assertValidKey } from '../../src/store/table-repository.js';
import { startKeyServer, type KeyServer } from '../support/key-server.js';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

const ISSUER = 'https://vendor.example/token-service';
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('vendor tokens verified against an HTTPS key URL', () => {
  let directory: string;
  let server: KeyServer;
  let defaultCas: string[];
  let rsa: KeyPair;
  let ec: KeyPair;
  let otherRsa: KeyPair;
  /** The verifier's clock, in ms; tokens are signed against it. */
  let clock: number;
  let issuers: Map<string, JwtIssuer>;
  /** Every `iss` the verifier looked up. */
  let lookups: string[];

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'vendor-token-'));
    server = await startKeyServer({ caDirectory: join(directory, 'ca') });
    defaultCas = tls.getCACertificates('default');
    tls.setDefaultCACertificates([...defaultCas, server.caPem]);
    [rsa, ec, otherRsa] = await Promise.all([
      generateKeyPair('RS256', { extractable: true }),
      generateKeyPair('ES256', { extractable: true }),
      generateKeyPair('RS256', { extractable: true }),
    ]);
  });

  afterAll(async () => {
    tls.setDefaultCACertificates(defaultCas);
    await server.stop();
    await rm(directory, { recursive: true, force: true });
  });

  beforeEach(() => {
    clock = Date.now();
    issuers = new Map();
    lookups = [];
    register();
  });

  const seconds = (offset = 0) => Math.floor(clock / 1000) + offset;

  function register(overrides: Partial<JwtIssuer> = {}): JwtIssuer {
    const issuer: JwtIssuer = { issuer: ISSUER, keyUrl: server.url, customerScope: '*', createdAt: new Date(clock).toISOString(), ...overrides };
    issuers.set(issuer.issuer, issuer);
    return issuer;
  }

  function verifier(overrides: Partial<VendorTokenVerifierDeps> = {}): VendorTokenVerifier {
    return createVendorTokenVerifier({
      findIssuer: (iss) => {
        lookups.push(iss);
        // The composition root's lookup: a Table row key made of the issuer, which throws for a key Table Storage refuses.
        assertValidKey(keys.jwtIssuer(iss));
        return Promise.resolve(issuers.get(iss));
      },
      allowPrivateNetwork: true,
      now: () => new Date(clock),
      ...overrides,
    });
  }

  async function jwks(...entries: [CryptoKey, string][]): Promise<string> {
    return JSON.stringify({ keys: await Promise.all(entries.map(async ([key, kid]) => ({ ...(await exportJWK(key)), kid, use: 'sig' }))) });
  }

  async function serveJwks(...entries: [CryptoKey, string][]): Promise<void> {
    server.serve({ body: await jwks(...entries) });
  }

  interface TokenOptions {
    privateKey?: CryptoKey;
    alg?: 'RS256' | 'ES256';
    kid?: string;
    iat?: number;
    exp?: number;
    claims?: JWTPayload;
  }

  /** A token as a vendor's backend signs it; `claims` may override or (with undefined) remove any claim. */
  function sign(options: TokenOptions = {}): Promise<string> {
    const iat = options.iat ?? seconds();
    return new SignJWT({ iss: ISSUER, sub: 'acme', iat, nbf: iat, exp: options.exp ?? iat + 300, ...options.claims })
      .setProtectedHeader({ alg: options.alg ?? 'RS256', typ: 'JWT', kid: options.kid ?? 'rsa-1' })
      .sign(options.privateKey ?? rsa.privateKey);
  }

  /** The rejection, checked for its reason and for not echoing the token. */
  async function rejected(check: VendorTokenVerifier, token: string, reason: TokenRejection): Promise<string> {
    const error: unknown = await check.verify(token).then(
      () => new Error('the token was accepted'),
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(TokenRejectedError);
    const rejection = error as TokenRejectedError;
    expect({ reason: rejection.reason, message: rejection.message }).toMatchObject({ reason });
    for (const part of token.split('.').filter((p) => p.length > 8)) expect(rejection.message).not.toContain(part);
    return rejection.message;
  }

  describe('accepts', () => {
    it('RS256 and ES256 tokens from a JWKS, with context tags from "context" and "lwicontexts"', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1'], [ec.publicKey, 'ec-1']);
      const check = verifier();

      await expect(
        check.verify(
          await sign({
            claims: { lwicontexts: JSON.stringify({ msdyn_cartvalue: '10000', msdyn_isvip: 'false', portalcontactid: 'aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb' }) },
          }),
        ),
      ).resolves.toEqual({
        issuer: ISSUER,
        customerId: 'acme',
        contextTags: { msdyn_cartvalue: '10000', msdyn_isvip: 'false', portalcontactid: 'aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb' },
      });

      const es256 = await sign({ alg: 'ES256', kid: 'ec-1', privateKey: ec.privateKey, claims: { context: { account: 'A-1042', seats: 25, trial: false } } });
      await expect(check.verify(es256)).resolves.toEqual({ issuer: ISSUER, customerId: 'acme', contextTags: { account: 'A-1042', seats: '25', trial: 'false' } });

      const both = await sign({ claims: { context: { plan: 'pro', region: 'eu' }, lwicontexts: '{"region":"eu","msdyn_isvip":true}' } });
      await expect(check.verify(both)).resolves.toMatchObject({ contextTags: { plan: 'pro', region: 'eu', msdyn_isvip: 'true' } });
      await expect(check.verify(await sign())).resolves.toMatchObject({ contextTags: {} });
      expect(server.requests).toBeGreaterThan(0);
    });

    it('tokens signed with a key from the Dynamics 365 key list (base64 of a PEM, expiry)', async () => {
      const pem = await exportSPKI(rsa.publicKey);
      server.serve({ body: JSON.stringify([{ kid: 'qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid=', publicKey: Buffer.from(pem).toString('base64'), expiry: seconds(86_400) }]) });
      await expect(verifier().verify(await sign({ kid: 'qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid=' }))).resolves.toMatchObject({ customerId: 'acme' });
    });

    it('tokens signed with the one key of a PEM key URL, whatever kid they name', async () => {
      server.serve({ body: await exportSPKI(ec.publicKey) });
      const check = verifier();
      await expect(check.verify(await sign({ alg: 'ES256', kid: 'any', privateKey: ec.privateKey }))).resolves.toMatchObject({ customerId: 'acme' });
      await expect(check.verify(await sign({ alg: 'ES256', kid: 'other', privateKey: ec.privateKey }))).resolves.toMatchObject({ customerId: 'acme' });
    });

    it('a sub within a one-customer issuer\'s scope, and an aud that includes the required audience', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      register({ customerScope: 'acme', audience: 'https://connector.example/api' });
      const token = await sign({ claims: { aud: ['https://other.example', 'https://connector.example/api'] } });
      await expect(verifier().verify(token)).resolves.toMatchObject({ customerId: 'acme' });
    });
  });

  describe('times', () => {
    beforeEach(async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
    });

    it('rejects an expired token, and accepts one that expired within the 60 s skew', async () => {
      const check = verifier();
      const message = await rejected(check, await sign({ iat: seconds(-400), exp: seconds(-61) }), 'expired');
      expect(message).toMatch(/^The token expired at .*Z \(the connector's time is .*, 60 s of skew allowed\); sign a new one\.$/);
      await expect(check.verify(await sign({ iat: seconds(-400), exp: seconds(-59) }))).resolves.toMatchObject({ customerId: 'acme' });
    });

    it('rejects a token not valid yet beyond the skew (nbf or iat), and accepts one within it', async () => {
      const check = verifier();
      await rejected(check, await sign({ iat: seconds(), claims: { nbf: seconds(61) } }), 'not-yet-valid');
      const message = await rejected(check, await sign({ iat: seconds(61), exp: seconds(361), claims: { nbf: seconds() } }), 'not-yet-valid');
      expect(message).toMatch(/issued in the future .* check your server's clock\.$/);
      await expect(check.verify(await sign({ iat: seconds(59), exp: seconds(359), claims: { nbf: seconds(59) } }))).resolves.toMatchObject({ customerId: 'acme' });
    });

    it('rejects a lifetime over 10 minutes, with no skew added: iat and exp come from the same clock', async () => {
      const check = verifier();
      const message = await rejected(check, await sign({ exp: seconds(601) }), 'lifetime-too-long');
      expect(message).toBe('The token lives 601 s (exp - iat); tokens may live at most 600 s, sign shorter-lived ones.');
      await expect(check.verify(await sign({ exp: seconds(600) }))).resolves.toMatchObject({ customerId: 'acme' });
    });

    it('requires iat and exp as NumericDates', async () => {
      const check = verifier();
      expect(await rejected(check, await sign({ claims: { exp: undefined } }), 'missing-claim')).toContain('no "exp" claim');
      expect(await rejected(check, await sign({ claims: { iat: undefined } }), 'missing-claim')).toContain('no "iat" claim');
      const textExp = await sign({ claims: { exp: String(seconds(60)) } as unknown as JWTPayload });
      expect(await rejected(check, textExp, 'invalid-claim')).toBe('The "exp" claim must be a number of seconds since 1970 (a NumericDate).');
    });
  });

  describe('keys', () => {
    it('refetches on an unknown kid at most once per cooldown, however many bad tokens arrive', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      const check = verifier();
      const before = server.requests;
      await check.verify(await sign());
      const afterFirst = server.requests;
      expect(afterFirst).toBe(before + 1);

      // Within the cooldown of the first fetch: no request at all.
      const early = await sign({ kid: 'nope' });
      const message = await rejected(check, early, 'unknown-key');
      expect(message).toBe('The issuer\'s key URL publishes no key with kid "nope"; publish the key there or sign with one it lists.');
      expect(server.requests).toBe(afterFirst);

      clock += 61_000;
      const flood = await Promise.all(Array.from({ length: 25 }, (_, i) => sign({ kid: `bad-${i}` })));
      await Promise.all(flood.map((token) => rejected(check, token, 'unknown-key')));
      for (const token of flood.slice(0, 5)) await rejected(check, token, 'unknown-key');
      expect(server.requests).toBe(afterFirst + 1);

      clock += 30_000;
      await rejected(check, await sign({ kid: 'still-bad' }), 'unknown-key');
      expect(server.requests).toBe(afterFirst + 1);

      clock += 31_000;
      await rejected(check, await sign({ kid: 'still-bad' }), 'unknown-key');
      expect(server.requests).toBe(afterFirst + 2);
      // The known key keeps working throughout, from the cache.
      await expect(check.verify(await sign())).resolves.toMatchObject({ customerId: 'acme' });
      expect(server.requests).toBe(afterFirst + 2);
    });

    it('shares one request among callers that need the keys at the same time', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      const check = verifier({ keyRefetchCooldownMs: 0 });
      const before = server.requests;
      const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => sign({ kid: `unknown-${i}` })));
      await Promise.all(tokens.map((token) => rejected(check, token, 'unknown-key')));
      expect(server.requests).toBe(before + 1);
      // Without a cooldown, one after the other, each asks again: the sharing above was not the cooldown.
      await rejected(check, await sign({ kid: 'x' }), 'unknown-key');
      await rejected(check, await sign({ kid: 'y' }), 'unknown-key');
      expect(server.requests).toBe(before + 3);
    });

    it('picks up a key published later (rotation), and drops a key no longer published', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      const check = verifier();
      await check.verify(await sign());

      await serveJwks([rsa.publicKey, 'rsa-1'], [ec.publicKey, 'ec-2']);
      const rotated = await sign({ alg: 'ES256', kid: 'ec-2', privateKey: ec.privateKey });
      // Published within the cooldown of the last fetch: seen once the cooldown has passed.
      await rejected(check, rotated, 'unknown-key');
      clock += 60_000;
      await expect(check.verify(await sign({ alg: 'ES256', kid: 'ec-2', privateKey: ec.privateKey }))).resolves.toMatchObject({ customerId: 'acme' });

      await serveJwks([ec.publicKey, 'ec-2']);
      clock += 3_600_000;
      await rejected(check, await sign(), 'unknown-key');
    });

    it('refuses a key past its expiry, even one fetched while it was valid', async () => {
      const publicKey = Buffer.from(await exportSPKI(rsa.publicKey)).toString('base64');
      server.serve({
        body: JSON.stringify([
          { kid: 'old', publicKey, expiry: seconds(-10) },
          { kid: 'soon', publicKey, expiry: seconds(120) },
        ]),
      });
      const check = verifier();
      const message = await rejected(check, await sign({ kid: 'old' }), 'expired-key');
      expect(message).toBe(`The key "old" expired at ${new Date(seconds(-10) * 1000).toISOString()} (its "expiry" at the key URL); sign with a current key.`);
      await expect(check.verify(await sign({ kid: 'soon' }))).resolves.toMatchObject({ customerId: 'acme' });

      const requests = server.requests;
      clock += 121_000;
      await rejected(check, await sign({ kid: 'soon' }), 'expired-key');
      // An expired key is worth one look for a renewed one (cooldown permitting), and this one was not renewed.
      expect(server.requests).toBe(requests + 1);
    });

    it('keeps using the last good keys when a refetch fails, and says the keys are unavailable only when it must', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      const check = verifier();
      await check.verify(await sign());

      server.serve({ body: 'Service Unavailable', status: 503 });
      clock += 3_600_000;
      const requests = server.requests;
      await expect(check.verify(await sign())).resolves.toMatchObject({ customerId: 'acme' });
      expect(server.requests).toBe(requests + 1);

      const message = await rejected(check, await sign({ kid: 'new' }), 'keys-unavailable');
      expect(message).toBe('The issuer\'s public keys are unavailable: the key URL answered HTTP 503. Tokens of this issuer cannot be checked until its key URL serves its keys.');
      expect(server.requests).toBe(requests + 1);

      server.serve({ body: '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}' });
      clock += 60_000;
      expect(await rejected(check, await sign({ kid: 'hmac' }), 'keys-unavailable')).toContain('has no usable key (entry 1 (kid "hmac"): only RSA and EC P-256 keys are accepted, not kty "oct")');
    });

    it('refuses a key URL on 127.0.0.1 unless private networks are allowed, without connecting', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      const before = { requests: server.requests, connections: server.connections };
      const message = await rejected(verifier({ allowPrivateNetwork: false }), await sign(), 'keys-unavailable');
      expect(message).toBe(
        'The issuer\'s public keys are unavailable: the key URL must be on a public address: 127.0.0.1 is not a public address. Tokens of this issuer cannot be checked until its key URL serves its keys.',
      );
      expect({ requests: server.requests, connections: server.connections }).toEqual(before);
      await expect(verifier({ allowPrivateNetwork: true }).verify(await sign())).resolves.toMatchObject({ customerId: 'acme' });
    });

    it('rejects a token whose alg does not fit its key', async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
      const message = await rejected(verifier(), await sign({ alg: 'ES256', kid: 'rsa-1', privateKey: ec.privateKey }), 'algorithm-not-allowed');
      expect(message).toBe('The key "rsa-1" is an RSA key; sign with RS256.');
    });
  });

  describe('rejects', () => {
    beforeEach(async () => {
      await serveJwks([rsa.publicKey, 'rsa-1']);
    });

    it('an unknown issuer, without fetching anything', async () => {
      const before = { requests: server.requests, connections: server.connections };
      const message = await rejected(verifier(), await sign({ claims: { iss: 'https://nobody.example' } }), 'unknown-issuer');
      expect(message).toMatch(/not a registered issuer/);
      expect({ requests: server.requests, connections: server.connections }).toEqual(before);
    });

    it('an "iss" no issuer can have (over 512 characters, empty, not a string), without looking it up', async () => {
      const longest = `https://vendor.example/${'x'.repeat(512 - 23)}`;
      register({ issuer: longest });
      const check = verifier();
      await expect(check.verify(await sign({ claims: { iss: longest } }))).resolves.toMatchObject({ issuer: longest });
      expect(lookups).toEqual([longest]);

      for (const iss of [`${longest}x`, `https://vendor.example/${'x'.repeat(777)}`, '', 42]) {
        const message = await rejected(check, await sign({ claims: { iss } as unknown as JWTPayload }), 'unknown-issuer');
        expect(message).toMatch(/not a registered issuer/);
      }
      expect(lookups).toEqual([longest]);
    });

    it('alg "none"', async () => {
      const token = `${b64url({ alg: 'none', typ: 'JWT', kid: 'rsa-1' })}.${b64url({ iss: ISSUER, sub: 'acme', iat: seconds(), exp: seconds(60) })}.`;
      expect(await rejected(verifier(), token, 'algorithm-not-allowed')).toBe('Tokens must be signed with RS256 or ES256, not "none".');
    });

    it('HS256 signed with the RSA public key as the HMAC secret, without fetching anything', async () => {
      const pem = await exportSPKI(rsa.publicKey);
      const before = server.requests;
      for (const secret of [pem, pem.trim(), JSON.stringify(await exportJWK(rsa.publicKey))]) {
        const token = await new SignJWT({ iss: ISSUER, sub: 'acme' })
          .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
          .setIssuedAt(seconds())
          .setExpirationTime(seconds(60))
          .sign(new TextEncoder().encode(secret));
        expect(await rejected(verifier(), token, 'algorithm-not-allowed')).toBe('Tokens must be signed with RS256 or ES256, not "HS256".');
      }
      expect(server.requests).toBe(before);
    });

    it('a tampered payload and a tampered signature', async () => {
      const check = verifier();
      const [header, payload, signature] = (await sign({ claims: { context: { plan: 'basic' } } })).split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as JWTPayload;
      const forgedPayload = b64url({ ...claims, sub: 'globex', context: { plan: 'enterprise' } });
      expect(await rejected(check, `${header}.${forgedPayload}.${signature}`, 'bad-signature')).toBe(
        'The token\'s signature does not verify with the key "rsa-1"; the token was altered, or signed with another key.',
      );
      const middle = Math.floor(signature.length / 2);
      const flipped = `${signature.slice(0, middle)}${signature[middle] === 'A' ? 'B' : 'A'}${signature.slice(middle + 1)}`;
      await rejected(check, `${header}.${payload}.${flipped}`, 'bad-signature');
      await rejected(check, `${header}.${payload}.`, 'bad-signature');
    });

    it('a token signed by another key under a published kid', async () => {
      await rejected(verifier(), await sign({ privateKey: otherRsa.privateKey }), 'bad-signature');
    });

    it('a missing kid, iss or sub, and a sub that is no customer id', async () => {
      const check = verifier();
      const noKid = await new SignJWT({ iss: ISSUER, sub: 'acme' }).setProtectedHeader({ alg: 'RS256' }).setIssuedAt(seconds()).setExpirationTime(seconds(60)).sign(rsa.privateKey);
      await rejected(check, noKid, 'missing-kid');
      await rejected(check, await sign({ claims: { iss: undefined } }), 'missing-claim');
      expect(await rejected(check, await sign({ claims: { sub: undefined } }), 'missing-claim')).toBe(
        'The token has no "sub" claim; tokens carry iss, sub (the customer id), iat and exp.',
      );
      expect(await rejected(check, await sign({ claims: { sub: 'not a customer!' } }), 'invalid-claim')).toMatch(/^The "sub" claim must be a customer id: customer ids are/);
    });

    it('a sub outside the issuer\'s customer scope', async () => {
      register({ customerScope: 'acme' });
      expect(await rejected(verifier(), await sign({ claims: { sub: 'globex' } }), 'customer-out-of-scope')).toBe(
        'This issuer is not registered for the customer in "sub"; sign tokens only for the customer its registration names.',
      );
    });

    it('a missing or different aud when the issuer requires one', async () => {
      register({ audience: 'https://connector.example/api' });
      const check = verifier();
      const expected = 'The token\'s "aud" must include "https://connector.example/api", the audience this issuer is registered with.';
      expect(await rejected(check, await sign(), 'audience-mismatch')).toBe(expected);
      expect(await rejected(check, await sign({ claims: { aud: 'https://other.example' } }), 'audience-mismatch')).toBe(expected);
    });

    it('context claims that cannot become tags', async () => {
      const check = verifier();
      const cases: [JWTPayload, RegExp][] = [
        [{ context: 'plan=pro' }, /"context" claim must be a JSON object/],
        [{ context: { plan: { tier: 'pro' } } }, /"plan" in "context" must be a string, number or boolean/],
        [{ context: { 'bad name': 'x' } }, /cannot become tags: "bad name": tag names are 1-64 letters/],
        [{ context: { note: 'x'.repeat(300) } }, /"note": tag values are at most 256 characters/],
        [{ context: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])) }, /at most 20 tags/],
        [{ lwicontexts: { msdyn_isvip: 'false' } }, /"lwicontexts" claim must be a string holding a JSON object/],
        [{ lwicontexts: '{msdyn_isvip: false}' }, /"lwicontexts" claim is not valid JSON/],
        [{ lwicontexts: '["a"]' }, /"lwicontexts" claim must be a JSON object/],
        [{ context: { plan: 'pro' }, lwicontexts: '{"plan":"basic"}' }, /"plan" has different values in "context" and "lwicontexts"/],
      ];
      for (const [claims, reason] of cases) {
        expect(await rejected(check, await sign({ claims }), 'invalid-context')).toMatch(reason);
      }
    });

    it('things that are not JWTs', async () => {
      const check = verifier();
      for (const token of ['', 'abc', 'a.b', 'a.b.c.d.e', `${b64url({ alg: 'RS256', kid: 'rsa-1' })}.bm90IGpzb24.c2ln`]) {
        await rejected(check, token, 'malformed');
      }
    });
  });
});
