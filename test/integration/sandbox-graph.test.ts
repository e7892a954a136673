import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { ConfidentialClientApplication } from '@azure/msal-node';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import { createSigningKeyMaterial, loadSigningKey, type SigningKey } from '../../local/sandbox/identity/signing-key.js';
import { mintAppAccessToken } from '../../local/sandbox/identity/tokens.js';
import { GRAPH, SANDBOX_PASSWORD, organization, type Organization } from '../support/sandbox-organization.js';

/**
 * The sandbox Microsoft Graph (local/sandbox/graph) called with Node's fetch and real tokens that the
 * unmodified @azure/msal-node got from the sandbox identity platform (password grant for a user,
 * client credentials for an app), as the connector will call graph.microsoft.com: its answers,
 * Graph's error JSON, and the faults the control API injects on a movable clock.
 */

const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
const PASSWORD = SANDBOX_PASSWORD;
const MINUTE = 60_000;

let sandbox: RunningSandboxIdentity;
let workDir: string;
/** The sandbox's signing key, so a test can mint tokens the sandbox would never issue. */
let signingKey: SigningKey;
/** Added to the sandbox's clock. */
let clockOffset = 0;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'sandbox-graph-'));
  const material = await createSigningKeyMaterial();
  signingKey = await loadSigningKey(material);
  sandbox = await startSandboxIdentity({
    caDirectory: join(workDir, 'ca'),
    signingKey: material,
    lifetimes: { accessTokenSeconds: 3600 },
    now: () => Date.now() + clockOffset,
  });
  // msal-node's fetch and this file's fetch trust the sandbox's CA.
  setDefaultCACertificates([...getCACertificates('default'), sandbox.caPem]);
});

afterEach(async () => {
  clockOffset = 0;
  await sandbox.control.failGraphRequests({ status: 503, count: 0 });
  await sandbox.control.failTokenRequests({ status: 503, count: 0 });
});

afterAll(async () => {
  await sandbox.stop();
  await rm(workDir, { recursive: true, force: true });
});

function msalClient(org: Organization, tenant: string): ConfidentialClientApplication {
  const options = sandbox.msalAuthOptions(tenant);
  return new ConfidentialClientApplication({ auth: { clientId: org.clientId, clientSecret: org.secret, authority: options.authority, knownAuthorities: options.knownAuthorities } });
}

/** A delegated Graph token for a user of the organization. */
async function userToken(org: Organization, upn: string, scopes = [`${GRAPH}/.default`]): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- the password grant gets a real user token without a browser
  const result = await msalClient(org, org.tenant.id).acquireTokenByUsernamePassword({ scopes, username: upn, password: PASSWORD });
  if (!result) throw new Error('msal returned no token');
  return result.accessToken;
}

/** An app-only token (client credentials) for a tenant, the customer's by default. */
async function appToken(org: Organization, tenant = org.tenant.id, scope = `${GRAPH}/.default`): Promise<string> {
  const result = await msalClient(org, tenant).acquireTokenByClientCredential({ scopes: [scope] });
  if (!result) throw new Error('msal returned no token');
  return result.accessToken;
}

interface GraphAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function graph(path: string, token?: string, headers: Record<string, string> = {}): Promise<GraphAnswer> {
  const response = await fetch(`${sandbox.graphBase}/v1.0${path}`, { headers: { ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }), ...headers } });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** Graph's error JSON, its ids matching the response headers. */
function expectGraphError(answer: GraphAnswer, status: number, code: string, message?: string): void {
  expect({ status: answer.status, body: answer.body }).toEqual({
    status,
    body: {
      error: {
        code,
        message: message ?? (expect.any(String) as unknown),
        innerError: {
          date: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/) as unknown,
          'request-id': answer.headers.get('request-id'),
          'client-request-id': answer.headers.get('client-request-id'),
        },
      },
    },
  });
}

async function rejection(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected the call to fail');
}

const CHALLENGE = new RegExp(`^Bearer realm="", authorization_uri="https://127\\.0\\.0\\.1:\\d+/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"$`);

describe('bearer tokens', () => {
  it('serves /me to a delegated token msal-node got, with request ids and the OData content type', async () => {
    const org = await organization(sandbox, 'Contoso', { delegated: ['User.Read', 'Mail.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    expect(decodeJwt(token)).toMatchObject({ aud: GRAPH, scp: expect.stringContaining('User.Read') as unknown });
    const clientRequestId = randomUUID();
    const me = await graph('/me', token, { 'client-request-id': clientRequestId });
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users/$entity`,
      businessPhones: [],
      displayName: 'Megan Bowen',
      givenName: null,
      jobTitle: null,
      mail: org.megan.userPrincipalName,
      mobilePhone: null,
      officeLocation: null,
      preferredLanguage: null,
      surname: null,
      userPrincipalName: org.megan.userPrincipalName,
      id: org.megan.id,
    });
    expect(me.headers.get('content-type')).toMatch(/^application\/json;odata\.metadata=minimal/);
    expect(me.headers.get('client-request-id')).toBe(clientRequestId);
    expect(me.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // Without a client-request-id, Graph answers with its request id in both.
    const again = await graph('/ME', token);
    expect(again.headers.get('client-request-id')).toBe(again.headers.get('request-id'));
  });

  it("accepts Graph's app id as the audience, as Entra issues it for bare scope names", async () => {
    const org = await organization(sandbox, 'Bare Scopes', { delegated: ['User.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName, ['User.Read']);
    expect(decodeJwt(token).aud).toBe(GRAPH_APP_ID);
    expect((await graph('/me', token)).body).toMatchObject({ id: org.megan.id });
  });

  it('refuses what Graph refuses with 401 InvalidAuthenticationToken and its WWW-Authenticate challenge', async () => {
    const org = await organization(sandbox, 'Bad Tokens', { delegated: ['User.Read'], appRoles: ['User.Read.All'] });
    const now = Date.now();
    const app = { clientId: org.clientId, displayName: 'Bad Tokens connector', appidacr: '1' as const };
    const outlook = await appToken(org, org.tenant.id, 'https://outlook.office365.com/.default');
    const foreign = await loadSigningKey(await createSigningKeyMaterial());
    const cases: [string, string | undefined, string][] = [
      ['no token', undefined, 'Access token is empty.'],
      ['not a JWT', 'not-a-token', 'CompactToken parsing failed with error code: 80049217'],
      ['an Exchange token', outlook, 'Access token validation failure. Invalid audience.'],
      [
        'signed by another key under the sandbox kid',
        await mintAppAccessToken({ kid: signingKey.kid, privateKey: foreign.privateKey }, { now, lifetimeSeconds: 3600, audience: GRAPH, tenantId: org.tenant.id, servicePrincipalId: randomUUID(), client: app, roles: ['User.Read.All'] }),
        'Access token validation failure.',
      ],
      [
        'from a tenant the sandbox does not have',
        await mintAppAccessToken(signingKey, { now, lifetimeSeconds: 3600, audience: GRAPH, tenantId: randomUUID(), servicePrincipalId: randomUUID(), client: app, roles: ['User.Read.All'] }),
        'Access token validation failure. Invalid issuer.',
      ],
    ];
    for (const [name, token, message] of cases) {
      const answer = await graph(`/users/${org.megan.id}`, token);
      expectGraphError(answer, 401, 'InvalidAuthenticationToken', message);
      expect(answer.headers.get('www-authenticate'), name).toMatch(CHALLENGE);
    }
    // The sandbox's own app-only token for that app opens the same resource.
    expect((await graph(`/users/${org.megan.id}`, await appToken(org))).status).toBe(200);
  });

  it('checks expiry and not-before on the sandbox clock', async () => {
    const org = await organization(sandbox, 'Clock', { delegated: ['User.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    clockOffset = 59 * MINUTE;
    expect((await graph('/me', token)).status).toBe(200);
    clockOffset = 61 * MINUTE;
    const expired = await graph('/me', token);
    expectGraphError(expired, 401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    expect(expired.headers.get('www-authenticate')).toMatch(CHALLENGE);
    // innerError's date is the sandbox's, an hour ahead.
    const { innerError } = expired.body.error as { innerError: { date: string } };
    expect(Math.abs(Date.parse(`${innerError.date}Z`) - (Date.now() + clockOffset))).toBeLessThan(5000);

    clockOffset = -10 * MINUTE;
    expectGraphError(await graph('/me', token), 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
  });
});

describe('GET /me and /users/{id | userPrincipalName}', () => {
  it('/me needs User.Read, and a user: an app gets 400, a token without User.Read 403', async () => {
    const org = await organization(sandbox, 'Me', { delegated: ['Mail.Read'], appRoles: ['User.Read.All'] });
    expectGraphError(await graph('/me', await userToken(org, org.megan.userPrincipalName)), 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    expectGraphError(await graph('/me', await appToken(org)), 400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
  });

  it('a delegated caller reads themselves by id or upn, anyone else is 403; $select picks properties', async () => {
    const org = await organization(sandbox, 'Users', { delegated: ['User.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    expect((await graph(`/users/${org.megan.id}`, token)).body).toMatchObject({ id: org.megan.id, userPrincipalName: org.megan.userPrincipalName });
    expect((await graph(`/users/${org.megan.userPrincipalName.toUpperCase()}`, token)).body).toMatchObject({ id: org.megan.id });
    expectGraphError(await graph(`/users/${org.adele.userPrincipalName}`, token), 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');

    const selected = await graph(`/users/${encodeURIComponent(org.megan.userPrincipalName)}?$select=displayName,MAIL,accountEnabled`, token);
    expect(selected.body).toEqual({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users(displayName,mail,accountEnabled)/$entity`,
      displayName: 'Megan Bowen',
      mail: org.megan.userPrincipalName,
      accountEnabled: true,
    });
    expectGraphError(await graph('/me?$select=shoeSize', token), 400, 'BadRequest', "Parsing OData Select and Expand failed: Could not find a property named 'shoeSize' on type 'microsoft.graph.user'.");
  });

  it('an app reads any user of its tenant with User.Read.All (403 without it), 404 for nobody', async () => {
    const org = await organization(sandbox, 'App Users', { appRoles: ['User.Read.All'] });
    const unlicensed = await sandbox.control.createUser(org.tenant.id, { userPrincipalName: `kiosk@${org.domain}`, mailbox: false });
    const token = await appToken(org);
    expect(decodeJwt(token)).toMatchObject({ idtyp: 'app', roles: ['User.Read.All'] });
    expect((await graph(`/users/${org.adele.userPrincipalName}`, token)).body).toMatchObject({ id: org.adele.id, mail: org.adele.userPrincipalName });
    expect((await graph(`/users/${unlicensed.id}`, token)).body).toMatchObject({ userPrincipalName: unlicensed.userPrincipalName, mail: null });
    const nobody = `nobody@${org.domain}`;
    expectGraphError(await graph(`/users/${nobody}`, token), 404, 'Request_ResourceNotFound', `Resource '${nobody}' does not exist or one of its queried reference-property objects are not present.`);
    // A user of another tenant is nobody here.
    const other = await organization(sandbox, 'Elsewhere', {});
    expect((await graph(`/users/${other.megan.id}`, token)).status).toBe(404);

    const withoutRole = await organization(sandbox, 'No Role', { appRoles: ['Mail.Read'] });
    expectGraphError(await graph(`/users/${withoutRole.megan.id}`, await appToken(withoutRole)), 403, 'Authorization_RequestDenied');
  });
});

describe('GET …/mailFolders/{id}', () => {
  const ACCESS_DENIED = 'Access is denied. Check credentials and try again.';

  it('serves the signed-in user their inbox by well-known name and by id, with $select', async () => {
    const org = await organization(sandbox, 'Folders', { delegated: ['Mail.ReadBasic'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    const inbox = await graph('/me/mailFolders/inbox', token);
    expect(inbox.status).toBe(200);
    expect(inbox.body).toEqual({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users('${org.megan.id}')/mailFolders/$entity`,
      id: expect.stringMatching(/^AAMk[A-Za-z0-9\-_]+=*$/) as unknown,
      displayName: 'Inbox',
      parentFolderId: expect.stringMatching(/^AAMk/) as unknown,
      childFolderCount: 0,
      unreadItemCount: 0,
      totalItemCount: 0,
      sizeInBytes: 0,
      isHidden: false,
    });
    const id = inbox.body.id as string;
    expect((await graph(`/me/mailFolders/${id}`, token)).body).toEqual(inbox.body);
    expect((await graph("/me/mailFolders('Inbox')", token)).body).toEqual(inbox.body);
    expect((await graph(`/users/${org.megan.userPrincipalName}/mailFolders/inbox`, token)).body).toMatchObject({ id });
    expect((await graph('/me/mailFolders/sentitems', token)).body).toMatchObject({ displayName: 'Sent Items', parentFolderId: inbox.body.parentFolderId });

    const selected = await graph('/me/mailFolders/inbox?$select=displayName,totalItemCount', token);
    expect(selected.body).toEqual({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users('${org.megan.id}')/mailFolders(displayName,totalItemCount)/$entity`,
      id,
      displayName: 'Inbox',
      totalItemCount: 0,
    });
    expectGraphError(await graph('/me/mailFolders/inbox?$select=colour', token), 400, 'RequestBroker--ParseUri', "Could not find a property named 'colour' on type 'Microsoft.OutlookServices.MailFolder'.");
    expectGraphError(await graph('/me/mailFolders/nosuchfolder', token), 400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
    expectGraphError(await graph(`/me/mailFolders/${id.slice(0, -8)}AAAAAAA=`, token), 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  });

  it("delegated: the user's own mailbox and those they have FullAccess to, nothing else, and only with a Mail scope", async () => {
    const org = await organization(sandbox, 'Shared', { delegated: ['Mail.Read'] });
    const shared = `support@${org.domain}`;
    await sandbox.control.createMailbox(org.tenant.id, { address: shared, displayName: 'Support', fullAccess: [org.megan.userPrincipalName] });
    const megan = await userToken(org, org.megan.userPrincipalName);
    const adele = await userToken(org, org.adele.userPrincipalName);

    const sharedInbox = await graph(`/users/${shared}/mailFolders/inbox`, megan);
    expect(sharedInbox.body).toMatchObject({ '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#users('${encodeURIComponent(shared)}')/mailFolders/$entity`, displayName: 'Inbox' });
    expect(sharedInbox.body.id).not.toBe((await graph('/me/mailFolders/inbox', megan)).body.id);
    expectGraphError(await graph(`/users/${shared}/mailFolders/inbox`, adele), 403, 'ErrorAccessDenied', ACCESS_DENIED);
    expectGraphError(await graph(`/users/${org.adele.id}/mailFolders/inbox`, megan), 403, 'ErrorAccessDenied', ACCESS_DENIED);

    const profileOnly = await organization(sandbox, 'Profile Only', { delegated: ['User.Read'] });
    expectGraphError(await graph('/me/mailFolders/inbox', await userToken(profileOnly, profileOnly.megan.userPrincipalName)), 403, 'ErrorAccessDenied', ACCESS_DENIED);
  });

  it('app-only: any mailbox of the tenant with Mail.Read or Mail.ReadWrite; unknown addresses and users without a mailbox are 404', async () => {
    const org = await organization(sandbox, 'App Mail', { appRoles: ['Mail.ReadWrite'] });
    const shared = `sales@${org.domain}`;
    await sandbox.control.createMailbox(org.tenant.id, { address: shared });
    const unlicensed = await sandbox.control.createUser(org.tenant.id, { userPrincipalName: `kiosk@${org.domain}`, mailbox: false });
    const token = await appToken(org);
    expect((await graph(`/users/${org.adele.userPrincipalName}/mailFolders/inbox`, token)).body).toMatchObject({ displayName: 'Inbox' });
    expect((await graph(`/users/${org.adele.id}/mailFolders('inbox')?$select=displayName`, token)).body).toMatchObject({ displayName: 'Inbox' });
    expect((await graph(`/users/${shared}/mailFolders/inbox`, token)).status).toBe(200);

    const nobody = `nobody@${org.domain}`;
    expectGraphError(await graph(`/users/${nobody}/mailFolders/inbox`, token), 404, 'ErrorInvalidUser', `The requested user '${nobody}' is invalid.`);
    const other = await organization(sandbox, 'Other Mail', {});
    expectGraphError(await graph(`/users/${other.megan.userPrincipalName}/mailFolders/inbox`, token), 404, 'ErrorInvalidUser');
    expectGraphError(await graph(`/users/${unlicensed.userPrincipalName}/mailFolders/inbox`, token), 404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');
    expectGraphError(await graph('/me/mailFolders/inbox', token), 400, 'BadRequest', '/me request is only valid with delegated authentication flow.');

    const withoutRole = await organization(sandbox, 'No Mail Role', { appRoles: ['User.Read.All'] });
    expectGraphError(await graph(`/users/${withoutRole.megan.id}/mailFolders/inbox`, await appToken(withoutRole)), 403, 'ErrorAccessDenied', ACCESS_DENIED);
  });

  it('a signed-in user without a mailbox gets MailboxNotEnabledForRESTAPI', async () => {
    const org = await organization(sandbox, 'Unlicensed', { delegated: ['Mail.Read'] });
    const kiosk = await sandbox.control.createUser(org.tenant.id, { userPrincipalName: `kiosk@${org.domain}`, password: PASSWORD, mailbox: false });
    expectGraphError(await graph('/me/mailFolders/inbox', await userToken(org, kiosk.userPrincipalName)), 404, 'MailboxNotEnabledForRESTAPI');
  });
});

describe('GET /applications', () => {
  it('shows the vendor its registration in its home tenant: credentials with start and end, never a secret value', async () => {
    const org = await organization(sandbox, 'Vendor Customer', { appRoles: ['Application.Read.All'] });
    expect((await sandbox.control.listTenants()).map((t) => t.id)).toContain(org.homeTenantId);
    await sandbox.control.grantConsent(org.homeTenantId, { clientId: org.clientId });
    const expiring = await sandbox.control.addClientSecret(org.clientId, { displayName: 'rotating', expiresAt: new Date(Date.now() + 10 * 86_400_000).toISOString() });
    const material = await createSigningKeyMaterial();
    const certificate = await sandbox.control.addCertificate(org.clientId, { displayName: 'CN=vendor', certificatePem: material.certificatePem, expiresAt: Date.now() + 30 * 86_400_000 });
    expect(certificate.startDateTime).toBeLessThanOrEqual(Date.now());

    const token = await appToken(org, org.homeTenantId);
    const answer = await graph(`/applications(appId='${org.clientId}')`, token);
    expect(answer.status).toBe(200);
    const iso = (ms: number) => new Date(ms).toISOString();
    expect(answer.body).toMatchObject({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#applications/$entity`,
      id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
      appId: org.clientId,
      displayName: 'Vendor Customer connector',
      keyCredentials: [
        {
          keyId: certificate.keyId,
          type: 'AsymmetricX509Cert',
          usage: 'Verify',
          customKeyIdentifier: certificate.thumbprintSha1,
          displayName: 'CN=vendor',
          startDateTime: iso(certificate.startDateTime),
          endDateTime: iso(certificate.endDateTime),
          key: null,
        },
      ],
    });
    const secrets = answer.body.passwordCredentials as Record<string, unknown>[];
    expect(secrets).toHaveLength(2);
    const [first, second] = secrets;
    expect(first).toMatchObject({ displayName: 'sandbox secret', hint: org.secret.slice(0, 3), secretText: null });
    // The portal's default: 180 days from creation.
    expect(Date.parse(String(first?.endDateTime)) - Date.parse(String(first?.startDateTime))).toBe(180 * 86_400_000);
    expect(second).toEqual({ customKeyIdentifier: null, displayName: 'rotating', keyId: expiring.keyId, hint: expiring.hint, secretText: null, startDateTime: iso(expiring.startDateTime), endDateTime: iso(expiring.endDateTime) });
    expect(JSON.stringify(answer.body)).not.toContain(org.secret);
    expect(JSON.stringify(answer.body)).not.toContain(expiring.value);

    const filtered = await graph(`/applications?$filter=${encodeURIComponent(`appId eq '${org.clientId}'`)}&$select=id,appId,passwordCredentials`, token);
    expect(filtered.body).toEqual({
      '@odata.context': `${sandbox.graphBase}/v1.0/$metadata#applications(id,appId,passwordCredentials)`,
      value: [{ id: answer.body.id, appId: org.clientId, passwordCredentials: secrets }],
    });
    expect((await graph(`/applications/${String(answer.body.id)}`, token)).body).toEqual(answer.body);
    const credentialsOnly = await graph(`/applications(appId='${org.clientId}')?$select=passwordCredentials,keyCredentials`, token);
    expect(Object.keys(credentialsOnly.body)).toEqual(['@odata.context', 'keyCredentials', 'passwordCredentials']);
    expectGraphError(await graph(`/applications?$filter=${encodeURIComponent("displayName eq 'x'")}`, token), 400, 'Request_UnsupportedQuery');
  });

  it('another tenant does not see the registration, and a token without Application.Read.All is refused', async () => {
    const org = await organization(sandbox, 'Customer Reads', { appRoles: ['Application.Read.All'] });
    const customerToken = await appToken(org);
    expectGraphError(await graph(`/applications(appId='${org.clientId}')`, customerToken), 404, 'Request_ResourceNotFound');
    expect((await graph(`/applications?$filter=appId eq '${org.clientId}'`, customerToken)).body).toMatchObject({ value: [] });

    const unprivileged = await organization(sandbox, 'No App Read', { appRoles: ['Mail.Read'] });
    await sandbox.control.grantConsent(unprivileged.homeTenantId, { clientId: unprivileged.clientId });
    expectGraphError(await graph(`/applications(appId='${unprivileged.clientId}')`, await appToken(unprivileged, unprivileged.homeTenantId)), 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
  });
});

describe('injected faults', () => {
  it('failGraphRequests with count: the next requests fail, with Retry-After, before the token is even looked at', async () => {
    const org = await organization(sandbox, 'Throttled', { delegated: ['User.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    await sandbox.control.failGraphRequests({ status: 429, count: 2, retryAfterSeconds: 3 });
    const first = await graph('/me', token);
    expectGraphError(first, 429, 'TooManyRequests', 'Please retry again later.');
    expect(first.headers.get('retry-after')).toBe('3');
    expectGraphError(await graph('/me'), 429, 'TooManyRequests');
    expect((await graph('/me', token)).status).toBe(200);

    await sandbox.control.failGraphRequests({ status: 500, count: 1 });
    const broken = await graph('/me', token);
    expectGraphError(broken, 500, 'generalException', 'General exception while processing.');
    expect(broken.headers.get('retry-after')).toBeNull();
    expect((await graph('/me', token)).status).toBe(200);
  });

  it('failGraphRequests with forSeconds: every request fails until the sandbox clock passes the window', async () => {
    const org = await organization(sandbox, 'Outage', { delegated: ['User.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    await sandbox.control.failGraphRequests({ status: 503, forSeconds: 20 * 60 });
    for (let i = 0; i < 5; i += 1) expectGraphError(await graph('/me', token), 503, 'serviceNotAvailable', 'Service unavailable');
    clockOffset = 20 * MINUTE - 1000;
    expectGraphError(await graph('/me', token), 503, 'serviceNotAvailable');
    clockOffset = 20 * MINUTE;
    expect((await graph('/me', token)).status).toBe(200);

    // With both, whichever runs out first: here the window.
    await sandbox.control.failGraphRequests({ status: 503, count: 100, forSeconds: 60 });
    expect((await graph('/me', token)).status).toBe(503);
    clockOffset += MINUTE;
    expect((await graph('/me', token)).status).toBe(200);
  });

  it('failTokenRequests with forSeconds: the token endpoint answers 503 for 20 minutes of the sandbox clock', async () => {
    const org = await organization(sandbox, 'Entra Outage', { appRoles: ['User.Read.All'] });
    await sandbox.control.failTokenRequests({ status: 503, forSeconds: 20 * 60, retryAfterSeconds: 1 });
    // A new msal client each time: msal-node remembers a 5xx for its Retry-After on the real clock.
    for (let i = 0; i < 3; i += 1) expect(await rejection(appToken(org))).toMatchObject({ name: 'ServerError', errorCode: 'temporarily_unavailable', status: 503 });
    clockOffset = 19 * MINUTE;
    expect(await rejection(appToken(org))).toMatchObject({ status: 503 });
    clockOffset = 20 * MINUTE + 1000;
    expect((await graph(`/users/${org.megan.id}`, await appToken(org))).status).toBe(200);
  });

  it('refuses a fault without an end, and a status it cannot fake', async () => {
    await expect(sandbox.control.failTokenRequests({ status: 503 })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/count, forSeconds or both/) as unknown });
    await expect(sandbox.control.failGraphRequests({ status: 503, retryAfterSeconds: 5 })).rejects.toMatchObject({ status: 400 });
    await expect(sandbox.control.failGraphRequests({ status: 404 as 503, count: 1 })).rejects.toMatchObject({ status: 400 });
  });
});

describe('the Graph router', () => {
  it("answers Graph's errors for a version or a path it does not serve", async () => {
    const org = await organization(sandbox, 'Paths', { delegated: ['User.Read'] });
    const token = await userToken(org, org.megan.userPrincipalName);
    const beta = await fetch(`${sandbox.graphBase}/beta/me`, { headers: { Authorization: `Bearer ${token}` } });
    expect([beta.status, ((await beta.json()) as { error: { code: string } }).error.code]).toEqual([400, 'BadRequest']);
    expectGraphError(await graph('/me/nonsense', token), 400, 'BadRequest', "Resource not found for the segment 'nonsense'.");
  });
});
