import type { InvocationContext as InvocationContextType } from '@azure/functions';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createLogger, invocationLogger, redactInvocationLogs, type LogRecord } from '../../src/telemetry/logger.js';
import { REDACTED, redactText } from '../../src/telemetry/redact.js';

const jwt =
  'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbSIsInVwbiI6ImFsaWNlQGNvbnRvc28uY29tIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtZm9yLXRoZS10ZXN0LW9ubHk';
const refreshToken =
  '1.AXoAW8hNgq5lJ0e2XfPbKSr9QYcnlf3vpGBCtdVdCEq1tJB6AMh6AA.AgABAwEAAADW6jl31mB3T7ugrWTT8pFeAwDs_wUA9P_mXIELdWgaZG1xJC3Tlq-rSg_8dOLTZcRcXxa2kYVDq8L9Qfhx';
const authorizationCode =
  '0.AVAAW8hNgq5lJ0e2XfPbKSr9QYcnlf3vpGBCtdVdCEq1tJBQAPk.AgABBAIAAADW6jl31mB3T7ugrWTT8pFeAwDs_wUA9P-Uo7JXQb1s';
const clientSecret = 'xKq8Q~3fJ_aZ0bYc9.dEfGhIjKlMnOpQrStUvWx-YzA1';
const xoauth2 = `user=alice@contoso.com\x01auth=Bearer ${jwt}\x01\x01`;
const xoauth2Base64 = Buffer.from(xoauth2).toString('base64');
const oauthBearerBase64 = Buffer.from(`n,a=alice@contoso.com,\x01auth=Bearer ${jwt}\x01\x01`).toString('base64');
const secrets = { jwt, refreshToken, authorizationCode, clientSecret, xoauth2, xoauth2Base64, oauthBearerBase64 };

/** Everything a line could leak, checked as whole values and as their distinctive middle part. */
function assertClean(text: string): void {
  for (const [what, value] of Object.entries(secrets)) {
    expect(text, what).not.toContain(value);
    expect(text, what).not.toContain(value.slice(10, 40));
    // and no 30-character piece of its base64 form (a wrapped SASL string leaks in pieces)
    const encoded = Buffer.from(value).toString('base64');
    for (let i = 0; i + 30 <= encoded.length; i += 30) expect(text, `${what} (base64)`).not.toContain(encoded.slice(i, i + 30));
  }
}

describe('redaction', () => {
  it.each([
    ['a bearer header', `Authorization: Bearer ${jwt}`],
    ['a bare access token', `token was ${jwt} and more`],
    ['a refresh token', `refreshing with ${refreshToken}`],
    ['an authorization code', `redeeming ${authorizationCode}`],
    ['an authorization code in a callback URL', `GET /api/oauth/callback?code=${encodeURIComponent(authorizationCode)}&state=s1`],
    ['a client secret', `client secret ${clientSecret} rejected`],
    ['a client secret in a form body', `grant_type=client_credentials&client_secret=${encodeURIComponent(clientSecret)}&scope=x`],
    ['a refresh token in a form body', `grant_type=refresh_token&refresh_token=${refreshToken}`],
    ['a token response in JSON', JSON.stringify({ token_type: 'Bearer', access_token: jwt, refresh_token: refreshToken })],
    ['a SASL XOAUTH2 string', `sending ${xoauth2}`],
    ['a base64 SASL XOAUTH2 string', `C: AUTH XOAUTH2 ${xoauth2Base64}`],
    ['a base64 SASL OAUTHBEARER string', `C: A1 AUTHENTICATE OAUTHBEARER ${oauthBearerBase64}`],
    ['a storage account key', 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;EndpointSuffix=core.windows.net'],
    ['util.inspect output of a token response', `{ token_type: 'Bearer', access_token: '${refreshToken}', refresh_token: 'M.C107_c2VjcmV0a2V5' }`],
    ['util.inspect output of a password', "{ user: 'alice', password: 'c2VjcmV0a2V5' }"],
    ['a secret in JSON under a plain name', '{"secret":"c2VjcmV0a2V5-opaque"}'],
    ['JSON carried inside a JSON string', JSON.stringify({ body: JSON.stringify({ client_secret: 'c2VjcmV0a2V5', scope: 'x' }) })],
    ['a YAML-like credential line', `client_secret: ${clientSecret} and webhook_secret: c2VjcmV0a2V5`],
    ['a PEM private key', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nc2VjcmV0a2V5\n-----END PRIVATE KEY-----'],
    ['a connector API key', 'rejected key m365c_a1b2c3d4e5f6_c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V'],
    ['a webhook signing secret', 'secret whsec_c2VjcmV0a2V5c2VjcmV0a2V5'],
    ['a base64 SASL XOAUTH2 string wrapped at 76 columns', `AUTH XOAUTH2 ${xoauth2Base64.replace(/.{76}/g, '$&\r\n')}`],
  ])('removes %s from text', (_what, text) => {
    const redacted = redactText(text);
    assertClean(redacted);
    expect(redacted).toContain(REDACTED);
    expect(redacted).not.toContain('c2VjcmV0a2V5');
  });

  it('leaves ordinary diagnostics alone', () => {
    const diagnostics = "{ token_type: 'Bearer', expires_in: 3599, tokenEndpoint: 'https://login.microsoftonline.com/t/oauth2/v2.0/token' }";
    expect(redactText(diagnostics)).toBe(diagnostics);
    const text = 'AADSTS700082: The refresh token has expired due to inactivity. error_codes=[700082] code=EAUTH status=401';
    expect(redactText(text)).toBe(text);
    expect(redactText('AKV10000: Request is missing a Bearer or PoP token.')).toBe('AKV10000: Request is missing a Bearer or PoP token.');
    expect(redactText('connection c-123 of customer acme moved to needs_reauth')).toBe(
      'connection c-123 of customer acme moved to needs_reauth',
    );
  });
});

describe('logger', () => {
  it('writes one structured record with the ids and nothing secret, whatever the caller passes', () => {
    const records: LogRecord[] = [];
    const logger = createLogger({ level: 'debug', sink: (r) => records.push(r) }).child({
      customerId: 'acme',
      connectionId: 'c-1',
      invocationId: 'inv-1',
    });
    const failure = Object.assign(new Error(`token endpoint said invalid_grant for ${refreshToken}`), {
      code: 'invalid_grant',
      request: { headers: { authorization: `Bearer ${jwt}` } },
    });
    logger.info(`sending with ${xoauth2Base64}`, {
      mailboxId: 'm-1',
      accessToken: jwt,
      headers: { Authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      form: `client_secret=${clientSecret}`,
      nested: [{ refresh_token: refreshToken, code_verifier: 'verifier-value-1234567890' }],
    });
    logger.error('refresh failed', { error: failure, authorizationCode });

    expect(records).toHaveLength(2);
    const [sent, failed] = records;
    expect(sent).toMatchObject({
      level: 'info',
      customerId: 'acme',
      connectionId: 'c-1',
      invocationId: 'inv-1',
      mailboxId: 'm-1',
      accessToken: REDACTED,
      headers: { Authorization: REDACTED, 'content-type': 'application/json' },
      nested: [{ refresh_token: REDACTED, code_verifier: REDACTED }],
    });
    expect(failed).toMatchObject({ level: 'error', error: { name: 'Error', code: 'invalid_grant' }, authorizationCode: REDACTED });
    const serialized = JSON.stringify(records);
    assertClean(serialized);
    expect(serialized).not.toContain('verifier-value-1234567890');
  });

  it('drops values under credential-like names, however they are spelled', () => {
    const records: LogRecord[] = [];
    const logger = createLogger({ level: 'info', sink: (r) => records.push(r) });
    logger.info('x', {
      token: 'EwBwA8l6BAAU-opaque',
      webhookSecret: 'whsec_opaque',
      signingKey: 'k',
      pwd: 'p',
      privateKeyPem: 'pem',
      'X-Api-Key': 'key',
      tokenType: 'Bearer',
      tokenEndpoint: 'https://login.microsoftonline.com/t/oauth2/v2.0/token',
    });
    expect(records[0]).toMatchObject({
      token: REDACTED,
      webhookSecret: REDACTED,
      signingKey: REDACTED,
      pwd: REDACTED,
      privateKeyPem: REDACTED,
      'X-Api-Key': REDACTED,
      tokenType: 'Bearer',
      tokenEndpoint: 'https://login.microsoftonline.com/t/oauth2/v2.0/token',
    });
  });

  it('keeps the record\'s own level, message and time whatever fields the caller passes', () => {
    const records: LogRecord[] = [];
    const logger = createLogger({ level: 'info', sink: (r) => records.push(r) });
    logger.error('refresh failed', { level: 'info', message: 'all good', timestamp: 'yesterday' });
    expect(records[0]).toMatchObject({ level: 'error', message: 'refresh failed' });
    expect(records[0]?.timestamp).not.toBe('yesterday');
  });

  it('keeps an error\'s cause and copies an object referenced twice, cutting only true cycles', () => {
    const records: LogRecord[] = [];
    const logger = createLogger({ level: 'info', sink: (r) => records.push(r) });
    const root = new Error('outer');
    root.cause = Object.assign(new Error('inner'), { code: 'ETIMEDOUT' });
    const shared = { id: 'm-1' };
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    logger.error('failed', { error: root, first: shared, second: shared, cyclic });
    expect(records[0]).toMatchObject({
      error: { message: 'outer', cause: { message: 'inner', code: 'ETIMEDOUT' } },
      first: { id: 'm-1' },
      second: { id: 'm-1' },
      cyclic: { name: 'loop', self: '[Circular]' },
    });
  });

  it('drops records below the configured level', () => {
    const records: LogRecord[] = [];
    const logger = createLogger({ level: 'warn', sink: (r) => records.push(r) });
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(records.map((r) => r.level)).toEqual(['warn', 'error']);
  });
});

describe('invocation context logs', () => {
  // The real InvocationContext of @azure/functions (a CommonJS bundle, hence require).
  const { InvocationContext } = createRequire(import.meta.url)('@azure/functions') as {
    InvocationContext: new (init: { invocationId: string; functionName: string; logHandler: (level: string, ...args: unknown[]) => void }) => InvocationContextType;
  };

  it('redacts what a function writes directly with context.log, and writes logger records once', () => {
    const lines: string[] = [];
    const context = new InvocationContext({
      invocationId: 'inv-1',
      functionName: 'health',
      logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')),
    });
    redactInvocationLogs(context);
    redactInvocationLogs(context);

    context.log('token response', { access_token: jwt, refresh_token: refreshToken, expires_in: 3599 });
    context.warn(`retrying with ${xoauth2Base64}`);
    invocationLogger({ level: 'info' }, context).info('sent', { clientSecret });

    expect(lines).toHaveLength(3);
    assertClean(lines.join('\n'));
    expect(lines[0]).toContain('expires_in: 3599');
    expect(JSON.parse(lines[2] ?? '')).toMatchObject({ message: 'sent', clientSecret: REDACTED, invocationId: 'inv-1' });
  });
});
