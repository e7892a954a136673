import { describe, expect, it } from 'vitest';
import { createLogger, type LogRecord } from '../../src/telemetry/logger.js';
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
  ])('removes %s from text', (_what, text) => {
    const redacted = redactText(text);
    assertClean(redacted);
    expect(redacted).toContain(REDACTED);
    expect(redacted).not.toContain('c2VjcmV0a2V5');
  });

  it('leaves ordinary diagnostics alone', () => {
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
