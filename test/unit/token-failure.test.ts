import { describe, expect, it } from 'vitest';
import { classifyTokenFailure } from '../../src/domain/token-failure.js';

/** The failure taxonomy, one case per code the connector decides on (microsoft.md §2.4–2.5). */

describe('classifyTokenFailure', () => {
  const reauth = [50173, 700082, 70008, 50089, 70043, 50076, 50079, 50078, 50132, 50133, 700084];
  it.each(reauth)('AADSTS%i: the user must reconnect', (aadsts) => {
    expect(classifyTokenFailure({ error: 'invalid_grant', aadsts, status: 400 })).toMatchObject({
      kind: 'reauth',
      state: 'needs_reauth',
      code: `AADSTS${String(aadsts)}`,
      remedy: 'reconnect',
      nextStep: expect.stringMatching(/reconnect link/) as unknown,
    });
  });

  it('a bare invalid_grant, and an invalid_grant with a number nobody listed, mean reconnect', () => {
    expect(classifyTokenFailure({ error: 'invalid_grant', status: 400 })).toMatchObject({ kind: 'reauth', code: 'invalid_grant' });
    expect(classifyTokenFailure({ error: 'invalid_grant', aadsts: 9999999, status: 400 })).toMatchObject({ kind: 'reauth', code: 'AADSTS9999999' });
  });

  it.each(['interaction_required', 'login_required', 'bad_token', 'no_tokens_found', 'no_account_in_cache'])('%s: the user must reconnect', (error) => {
    expect(classifyTokenFailure({ error })).toMatchObject({ kind: 'reauth', state: 'needs_reauth' });
  });

  it.each([65001, 90094, 90093, 700016, 650056, 650057])('AADSTS%i: consent is missing or revoked, an administrator must grant it', (aadsts) => {
    expect(classifyTokenFailure({ error: aadsts === 700016 ? 'unauthorized_client' : 'invalid_grant', aadsts, status: 400 })).toMatchObject({
      kind: 'consent',
      state: 'needs_admin',
      remedy: 'admin_consent',
    });
  });

  it.each([53003, 530032, 50105, 50057, 500011, 650052])('AADSTS%i: the tenant policy refuses; needs_admin with the reason', (aadsts) => {
    const failure = classifyTokenFailure({ error: 'invalid_grant', aadsts, status: 400 });
    expect(failure).toMatchObject({ kind: 'policy', state: 'needs_admin', remedy: 'tenant_admin' });
    expect(failure.explanation.length).toBeGreaterThan(20);
  });

  it.each([7000215, 7000222, 700027, 50011])('AADSTS%i: the vendor\'s own configuration', (aadsts) => {
    expect(classifyTokenFailure({ error: 'invalid_client', aadsts, status: 401 })).toMatchObject({ kind: 'app_config', state: 'app_misconfigured', remedy: 'vendor' });
  });

  it('an invalid_client without a number is the app\'s configuration too; a bare unauthorized_client is the tenant\'s', () => {
    expect(classifyTokenFailure({ error: 'invalid_client', status: 401 })).toMatchObject({ kind: 'app_config' });
    expect(classifyTokenFailure({ error: 'unauthorized_client', status: 400 })).toMatchObject({ kind: 'consent', state: 'needs_admin' });
  });

  it.each([
    [{ error: 'temporarily_unavailable', status: 503 }, 'http_503'],
    [{ error: 'server_error', status: 500 }, 'http_500'],
    [{ error: 'invalid_request', status: 429 }, 'http_429'],
    [{ error: 'temporarily_unavailable' }, 'temporarily_unavailable'],
    [{ error: 'network_error' }, 'network_error'],
    [{ error: 'invalid_grant', aadsts: 90024, status: 400 }, 'AADSTS90024'],
  ])('%o is transient: retried, the connection stays', (signal, code) => {
    expect(classifyTokenFailure(signal)).toMatchObject({ kind: 'transient', state: undefined, code, remedy: 'wait' });
  });

  it('the AADSTS number decides before the HTTP status', () => {
    expect(classifyTokenFailure({ error: 'invalid_grant', aadsts: 50173, status: 500 })).toMatchObject({ kind: 'reauth' });
  });

  it('an unknown error is retried, and says it was not recognised', () => {
    expect(classifyTokenFailure({ error: 'invalid_request', status: 400 })).toMatchObject({ kind: 'transient', unrecognized: true, code: 'invalid_request' });
  });
});
