import type { AuthenticationResult } from '@azure/msal-node';
import { describe, expect, it } from 'vitest';
import { signedInIdentity } from '../../src/identity/signed-in-identity.js';

const clientId = '11111111-2222-4333-8444-555555555555';
const tid = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const oid = '99999999-8888-4777-8666-555555555555';
const now = new Date('2026-11-22T12:00:00Z');
const expected = { clientId, loginUrl: 'https://login.microsoftonline.com', now };
const seconds = now.getTime() / 1000;

function result(claims: Record<string, unknown>): AuthenticationResult {
  return {
    idTokenClaims: { aud: clientId, iss: `https://login.microsoftonline.com/${tid}/v2.0`, exp: seconds + 3600, tid, oid, preferred_username: 'Megan@Contoso.com', name: 'Megan Bowen', ...claims },
    account: null,
  } as unknown as AuthenticationResult;
}

describe('who signed in, from the id token', () => {
  it('takes tenant, object id, name and sign-in name from a token for this app, from this cloud, still valid', () => {
    expect(signedInIdentity(result({ email: 'megan@contoso.com' }), expected)).toEqual({ tenantId: tid, oid, upn: 'Megan@Contoso.com', displayName: 'Megan Bowen', email: 'megan@contoso.com' });
    expect(signedInIdentity(result({ aud: ['other', clientId], exp: seconds - 200 }), expected)?.tenantId).toBe(tid);
  });

  it.each([
    ['another app', { aud: '00000000-0000-4000-8000-000000000000' }],
    ['another cloud', { iss: `https://login.microsoftonline.us/${tid}/v2.0` }],
    ['another tenant than the one it names', { iss: `https://login.microsoftonline.com/bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb/v2.0` }],
    ['the v1 issuer', { iss: `https://sts.windows.net/${tid}/` }],
    ['expired beyond the skew', { exp: seconds - 301 }],
    ['no expiry', { exp: undefined }],
    ['no tenant', { tid: undefined }],
    ['an object id that is not a GUID', { oid: 'x' }],
    ['no name to sign in with', { preferred_username: undefined }],
  ])('refuses a token of %s', (_case, claims) => {
    expect(signedInIdentity(result(claims), expected)).toBeUndefined();
  });
});
