import { Readable } from 'node:stream';
import { AuthError, ClientAuthError, ServerError } from '@azure/msal-node';
import { describe, expect, it } from 'vitest';
import { PASSWORD_ENV, readPassword } from '../../src/admin/read-password.js';
import { CLOUDS } from '../../src/identity/clouds.js';
import { deviceCodeError, reportMicrosoftError, reportOutcome } from '../../src/connect/operator-sign-in-errors.js';
import { refuseConnection, signInTarget, type OperatorSignInDeps } from '../../src/connect/operator-sign-in.js';
import type { Connection } from '../../src/domain/connection.js';
import { MsalClients } from '../../src/identity/msal-clients.js';
import { createLogger, type LogRecord } from '../../src/telemetry/logger.js';

const CORRELATION = '0a2cf92d-1111-4222-8333-444455556666';
const at = '2026-01-01T00:00:00.000Z';
const connection: Connection = {
  id: 'con_01J00000000000000000000000',
  customerId: 'acme',
  mode: 'delegated',
  state: 'pending',
  tags: {},
  appId: 'default',
  transports: { send: 'graph', receive: 'imap' },
  createdAt: at,
  updatedAt: at,
  stateChangedAt: at,
};
const logs: LogRecord[] = [];
const msal = new MsalClients({
  apps: [{ id: 'default', clientId: '11111111-2222-4333-8444-555555555555', cloud: CLOUDS.global, credential: { kind: 'secret', secretName: 's' } }],
  credential: () => Promise.reject(new Error('no credential needed')),
  logger: createLogger({ level: 'error', sink: () => undefined }),
});
const deps: OperatorSignInDeps = {
  flow: { finishDelegated: () => Promise.reject(new Error('not reached')) },
  msal,
  links: { issue: (customerId, connectionId, purpose) => Promise.resolve({ url: `https://connector.test/api/connect/${purpose}-${customerId}-${connectionId}`, token: 't', expiresAt: new Date() }) },
  logger: createLogger({ level: 'debug', sink: (record) => logs.push(record) }),
};

/** What a Graph sender asks Graph for: sending, drafts and Sent Items, in shared mailboxes too, and the profile. */
const GRAPH_MAIL_SCOPES = ['Mail.Send', 'Mail.Send.Shared', 'Mail.ReadWrite', 'Mail.ReadWrite.Shared', 'User.Read'].map((scope) => `https://graph.microsoft.com/${scope}`);

describe('operator sign-in', () => {
  it('asks for the primary resource at organizations, or at the tenant on a reconnect', () => {
    expect(signInTarget(msal, connection)).toEqual({
      tenant: 'organizations',
      scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All'],
      other: {
        resource: 'graph',
        scopes: GRAPH_MAIL_SCOPES,
      },
    });
    const tenantId = '99999999-8888-4777-8666-555555555555';
    const graphOnly = signInTarget(msal, { ...connection, tenantId, transports: { send: 'graph', receive: 'graph' } });
    expect(graphOnly).toEqual({
      tenant: tenantId,
      scopes: GRAPH_MAIL_SCOPES,
    });
  });

  it('takes delegated connections that are not disconnected', () => {
    expect(refuseConnection(connection)).toBeUndefined();
    expect(refuseConnection({ ...connection, state: 'needs_reauth' })).toBeUndefined();
    expect(refuseConnection({ ...connection, mode: 'application' })).toMatchObject({ kind: 'refused', reason: expect.stringContaining('application connection') as unknown });
    expect(refuseConnection({ ...connection, state: 'disconnected' })).toMatchObject({ kind: 'refused', nextStep: 'Create a new connection for the customer.' });
  });

  it('reads msal-node\'s device code polling errors as the OAuth errors they carry', () => {
    expect(deviceCodeError(new AuthError('post_request_failed', CORRELATION, 'authorization_declined'))).toMatchObject({ error: 'authorization_declined', correlationId: CORRELATION });
    expect(deviceCodeError(new AuthError('post_request_failed', CORRELATION, 'expired_token'))).toMatchObject({ error: 'expired_token' });
    expect(deviceCodeError(new ClientAuthError('device_code_expired', CORRELATION))).toMatchObject({ error: 'expired_token' });
    expect(deviceCodeError(new ServerError('invalid_client', CORRELATION, 'AADSTS7000218: The request body must contain …', undefined, '7000218', 401))).toMatchObject({ error: 'invalid_client', aadsts: 7000218 });
    expect(deviceCodeError(new Error('boom'))).toBeUndefined();
  });

  it('explains Microsoft\'s refusals with a next step, an admin-grant link where an administrator must act, and the codes', async () => {
    const explain = async (error: Parameters<typeof reportMicrosoftError>[3], method: 'device-code' | 'password' = 'password') => reportMicrosoftError(deps, connection, method, error);
    expect(await explain({ error: 'invalid_grant', aadsts: 50126, traceId: 't-1' })).toEqual({
      kind: 'refused',
      reason: 'Microsoft did not accept the username and password; nothing was connected.',
      nextStep: 'Check both and try again. Repeated failures can lock the account (Smart Lockout).',
      reference: { error: 'invalid_grant', aadsts: 50126, traceId: 't-1' },
    });
    expect(await explain({ error: 'invalid_grant', aadsts: 50076 })).toMatchObject({ nextStep: 'Use --device-code instead.' });
    const consent = await explain({ error: 'invalid_grant', aadsts: 65001 });
    expect(consent).toMatchObject({ reason: expect.stringContaining('a password sign-in cannot ask for consent') as unknown });
    expect(consent.kind === 'refused' && consent.nextStep).toMatch(/\n {2}https:\/\/connector\.test\/api\/connect\/admin-grant-acme-con_/);
    expect(await explain({ error: 'authorization_declined' }, 'device-code')).toMatchObject({ reason: expect.stringContaining('declined') as unknown });
    expect(await explain({ error: 'expired_token' }, 'device-code')).toMatchObject({ reason: expect.stringContaining('expired') as unknown });
    expect(await explain({ error: 'invalid_grant', aadsts: 53003 })).toMatchObject({ reason: expect.stringContaining('Conditional Access') as unknown });
    expect(await explain({ error: 'unauthorized_client', aadsts: 700016 }, 'device-code')).toMatchObject({ nextStep: expect.stringContaining('Allow public client flows') as unknown });
    expect(await explain({ error: 'temporarily_unavailable', status: 503 })).toMatchObject({ nextStep: 'Run the command again in a few minutes.' });
    expect(await explain({ error: 'invalid_request', aadsts: 90100 })).toMatchObject({ reason: 'Microsoft refused the sign-in (invalid_request, AADSTS90100); nothing was connected.' });
    // Logged by code, never with Microsoft's description (it can name the user).
    expect(logs.map((record) => record.message)).toContain('connect: Microsoft refused the vendor app; check its registration and credential');
    expect(JSON.stringify(logs)).not.toContain('description');
  });

  it('explains the connect flow\'s refusals', () => {
    expect(reportOutcome({ kind: 'wrong-account', reason: 'other-tenant', expected: 'tenant-a', actual: 'tenant-b' }, connection)).toMatchObject({
      reason: 'tenant-b is not of the connection\'s Microsoft 365 tenant (tenant-a); nothing was changed.',
    });
    expect(reportOutcome({ kind: 'link-invalid', reason: 'unknown' }, connection)).toMatchObject({ nextStep: 'Create a new connection.' });
    expect(reportOutcome({ kind: 'sign-in-error', reference: { oauthError: 'invalid_id_token' } }, connection)).toMatchObject({ reference: { error: 'invalid_id_token' } });
  });
});

describe('reading the password', () => {
  it('takes CONNECT_PASSWORD when set, without touching standard input', async () => {
    const input = Readable.from(['from stdin\n']);
    expect(await readPassword({ [PASSWORD_ENV]: 'from env' }, input, () => undefined)).toBe('from env');
    expect(input.readableEnded).toBe(false);
  });

  it('takes the first line of piped input, without its line ending, and nothing from empty input', async () => {
    expect(await readPassword({}, Readable.from(['s3cret pass\r\nsecond line\n']), () => undefined)).toBe('s3cret pass');
    expect(await readPassword({ [PASSWORD_ENV]: '' }, Readable.from(['no newline']), () => undefined)).toBe('no newline');
    expect(await readPassword({}, Readable.from([]), () => undefined)).toBe('');
  });
});
