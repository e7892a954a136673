import { describe, expect, it } from 'vitest';
import { aadsts, entraTimestamp, errorBody, errorDescription } from '../../local/sandbox/identity/aadsts.js';

const ids = { traceId: '0000aaaa-11bb-cccc-dd22-eeeeee333333', correlationId: 'aaaa0000-bb11-2222-33cc-444444dddddd', now: Date.UTC(2016, 0, 9, 2, 2, 12, 345) };

describe('Entra-shaped errors', () => {
  it('formats the timestamp as Entra does', () => {
    expect(entraTimestamp(ids.now)).toBe('2016-01-09 02:02:12Z');
  });

  it('ends every description with trace id, correlation id and timestamp, separated by CRLF', () => {
    expect(errorDescription(aadsts.codeRedeemed(), ids)).toBe(
      'AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2016-01-09 02:02:12Z',
    );
  });

  it('builds the JSON body with error_codes, ids, error_uri, and a suberror only where Entra sends one', () => {
    expect(errorBody(aadsts.sessionRevoked(0, 1000), ids)).toMatchObject({
      error: 'invalid_grant',
      error_codes: [50173],
      timestamp: '2016-01-09 02:02:12Z',
      trace_id: ids.traceId,
      correlation_id: ids.correlationId,
      error_uri: 'https://login.microsoftonline.com/error?code=50173',
      suberror: 'bad_token',
    });
    expect(errorBody(aadsts.invalidClientSecret('app'), ids)).not.toHaveProperty('suberror');
    expect(aadsts.invalidClientSecret('app').status).toBe(401);
  });
});
