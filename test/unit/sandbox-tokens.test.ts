import { decodeJwt, decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../local/sandbox/identity/sandbox-state.js';
import { createSigningKeyMaterial, loadSigningKey, type SigningKey } from '../../local/sandbox/identity/signing-key.js';
import { clientInfo, mintAppAccessToken, mintIdToken, mintUserAccessToken, pairwiseSubject } from '../../local/sandbox/identity/tokens.js';

const user: User = {
  id: '11111111-2222-4333-8444-555555555555',
  tenantId: '99999999-8888-4777-8666-555555555555',
  userPrincipalName: 'megan@contoso.test',
  displayName: 'Megan Bowen',
  isAdmin: false,
  tokensValidFrom: 0,
};
const client = { clientId: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', displayName: 'Connector', appidacr: '1' as const };
const now = Date.UTC(2026, 10, 22, 12, 0, 0);

let key: SigningKey;
beforeAll(async () => {
  key = await loadSigningKey(await createSigningKeyMaterial());
});

describe('token minting', () => {
  it('makes v1 user access tokens with the claims Exchange and Graph validators read', async () => {
    const token = await mintUserAccessToken(key, { now, lifetimeSeconds: 3600, audience: 'https://outlook.office.com', user, client, scopes: ['IMAP.AccessAsUser.All', 'SMTP.Send'], sessionId: 'session' });
    expect(decodeProtectedHeader(token)).toEqual({ typ: 'JWT', alg: 'RS256', x5t: key.kid, kid: key.kid });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      aud: 'https://outlook.office.com',
      iss: `https://sts.windows.net/${user.tenantId}/`,
      iat: now / 1000 - 300,
      nbf: now / 1000 - 300,
      exp: now / 1000 + 3600,
      tid: user.tenantId,
      oid: user.id,
      upn: user.userPrincipalName,
      unique_name: user.userPrincipalName,
      appid: client.clientId,
      appidacr: '1',
      scp: 'IMAP.AccessAsUser.All SMTP.Send',
      idtyp: 'user',
      ver: '1.0',
      sub: pairwiseSubject(user.id, client.clientId),
    });
  });

  it('makes app-only tokens with roles, and without the claim when nothing was granted', async () => {
    const input = { now, lifetimeSeconds: 3600, audience: 'https://graph.microsoft.com', tenantId: user.tenantId, servicePrincipalId: 'sp', client };
    expect(decodeJwt(await mintAppAccessToken(key, { ...input, roles: ['Mail.Send'] }))).toMatchObject({ idtyp: 'app', roles: ['Mail.Send'], oid: 'sp', sub: 'sp' });
    expect(decodeJwt(await mintAppAccessToken(key, { ...input, roles: [] }))).not.toHaveProperty('roles');
  });

  it('makes v2 ID tokens for the client, with the nonce', async () => {
    const token = await mintIdToken(key, { now, lifetimeSeconds: 3600, issuer: `https://127.0.0.1:1/${user.tenantId}/v2.0`, clientId: client.clientId, user, sessionId: 's', nonce: 'n-1' });
    expect(decodeJwt(token)).toMatchObject({ aud: client.clientId, iss: `https://127.0.0.1:1/${user.tenantId}/v2.0`, nonce: 'n-1', preferred_username: user.userPrincipalName, ver: '2.0' });
  });

  it('keeps sub stable for a user and an app, and different across apps', () => {
    expect(pairwiseSubject(user.id, client.clientId)).toBe(pairwiseSubject(user.id, client.clientId.toUpperCase()));
    expect(pairwiseSubject(user.id, client.clientId)).not.toBe(pairwiseSubject(user.id, 'another-app'));
  });

  it('encodes client_info as msal-node reads it', () => {
    expect(JSON.parse(Buffer.from(clientInfo(user.id, user.tenantId), 'base64url').toString())).toEqual({ uid: user.id, utid: user.tenantId });
  });
});
