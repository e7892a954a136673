import { describe, expect, it } from 'vitest';
import { applicationEntity, applicationObjectId } from '../../local/sandbox/graph/applications.js';
import { errorResponse, graphErrors, innerErrorDate } from '../../local/sandbox/graph/errors.js';
import { folderId } from '../../local/sandbox/graph/mail-folders.js';
import { odataContext, project, selectedProperties } from '../../local/sandbox/graph/odata.js';
import type { AppRegistration } from '../../local/sandbox/identity/sandbox-state.js';

const ROOT = 'https://127.0.0.1:4443/graph/v1.0';
const unknown = (name: string) => graphErrors.outlookPropertyUnknown(name, 'MailFolder');

describe('$select and @odata.context', () => {
  it('reads $select case-insensitively, in the type spelling, once each', () => {
    const query = new URLSearchParams({ $select: 'displayname, TotalItemCount,displayName,' });
    expect(selectedProperties(query, ['id', 'displayName', 'totalItemCount'], unknown)).toEqual(['displayName', 'totalItemCount']);
    expect(selectedProperties(new URLSearchParams(), ['id'], unknown)).toBeUndefined();
  });

  it('refuses a property the type does not have, in the words the type family uses', () => {
    expect(() => selectedProperties(new URLSearchParams({ $select: 'colour' }), ['id'], unknown)).toThrow(
      expect.objectContaining({ status: 400, code: 'RequestBroker--ParseUri', message: "Could not find a property named 'colour' on type 'Microsoft.OutlookServices.MailFolder'." }),
    );
  });

  it('keeps the selected properties plus those always returned', () => {
    const entity = { id: 'x', displayName: 'Inbox', totalItemCount: 0, isHidden: false };
    expect(project(entity, ['displayName'], ['id'])).toEqual({ id: 'x', displayName: 'Inbox' });
    expect(project(entity, ['displayName'])).toEqual({ displayName: 'Inbox' });
    expect(project(entity, undefined)).toEqual(entity);
  });

  it('names the entity set, the selection and the shape', () => {
    expect(odataContext(ROOT, 'users', undefined, 'entity')).toBe(`${ROOT}/$metadata#users/$entity`);
    expect(odataContext(ROOT, "users('a%40b.test')/mailFolders", ['displayName', 'id'], 'entity')).toBe(`${ROOT}/$metadata#users('a%40b.test')/mailFolders(displayName,id)/$entity`);
    expect(odataContext(ROOT, 'applications', undefined, 'collection')).toBe(`${ROOT}/$metadata#applications`);
  });
});

describe('errors', () => {
  it("are Graph's JSON, with the request ids and the date to the second in innerError", () => {
    const now = Date.UTC(2026, 10, 22, 9, 8, 7, 654);
    const response = errorResponse(graphErrors.invalidUser('nobody@contoso.test'), { requestId: 'r-1', clientRequestId: 'c-1', now });
    expect(response.status).toBe(404);
    expect(response.headers).toMatchObject({ 'request-id': 'r-1', 'client-request-id': 'c-1', 'Content-Type': 'application/json' });
    expect(JSON.parse(response.body)).toEqual({
      error: {
        code: 'ErrorInvalidUser',
        message: "The requested user 'nobody@contoso.test' is invalid.",
        innerError: { date: '2026-11-22T09:08:07', 'request-id': 'r-1', 'client-request-id': 'c-1' },
      },
    });
    expect(innerErrorDate(now)).toBe('2026-11-22T09:08:07');
  });
});

describe('mail folder ids', () => {
  const mailbox = { tenantId: '99999999-8888-4777-8666-555555555555', address: 'Megan@contoso.test' };

  it('look like Exchange ids and stay the same for a mailbox and folder, whatever the address case', () => {
    const id = folderId(mailbox, 'inbox');
    expect(id).toMatch(/^AAMk[A-Za-z0-9\-_]{83}=$/);
    expect(folderId({ ...mailbox, address: 'megan@CONTOSO.test' }, 'inbox')).toBe(id);
    expect(folderId(mailbox, 'sentitems')).not.toBe(id);
    expect(folderId({ ...mailbox, address: 'shared@contoso.test' }, 'inbox')).not.toBe(id);
  });
});

describe('application entity', () => {
  const app: AppRegistration = {
    clientId: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
    displayName: 'Vendor connector',
    redirectUris: [],
    publicClient: false,
    homeTenantId: '99999999-8888-4777-8666-555555555555',
    delegatedPermissions: [],
    appRoles: [],
    secrets: [{ keyId: 'k-1', displayName: 'prod', hint: 'abc', value: 'abc8Q~never-shown', startDateTime: Date.UTC(2026, 0, 1), endDateTime: Date.UTC(2026, 5, 30) }],
    certificates: [
      { keyId: 'k-2', displayName: 'CN=vendor', certificatePem: '-----BEGIN CERTIFICATE-----', thumbprintSha1: 'AB12', thumbprintSha256: 'CD34', startDateTime: Date.UTC(2026, 0, 1), endDateTime: Date.UTC(2027, 0, 1) },
    ],
    federatedCredentials: [],
  };

  it('shows credentials with their start and end, secrets by hint only, certificates by SHA-1 thumbprint', () => {
    const entity = applicationEntity(app);
    expect(entity).toMatchObject({ id: applicationObjectId(app.clientId), appId: app.clientId, displayName: 'Vendor connector' });
    expect(entity.passwordCredentials).toEqual([
      { customKeyIdentifier: null, displayName: 'prod', endDateTime: '2026-06-30T00:00:00.000Z', hint: 'abc', keyId: 'k-1', secretText: null, startDateTime: '2026-01-01T00:00:00.000Z' },
    ]);
    expect(entity.keyCredentials).toEqual([
      { customKeyIdentifier: 'AB12', displayName: 'CN=vendor', endDateTime: '2027-01-01T00:00:00.000Z', key: null, keyId: 'k-2', startDateTime: '2026-01-01T00:00:00.000Z', type: 'AsymmetricX509Cert', usage: 'Verify' },
    ]);
    expect(JSON.stringify(entity)).not.toContain('never-shown');
  });

  it('has an object id of its own, stable and unlike the appId', () => {
    expect(applicationObjectId(app.clientId)).toBe(applicationObjectId(app.clientId.toUpperCase()));
    expect(applicationObjectId(app.clientId)).not.toBe(app.clientId);
    expect(applicationObjectId(app.clientId)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
