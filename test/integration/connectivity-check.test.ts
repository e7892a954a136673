import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../local/free-port.js';
import { generateApiKey } from '../../src/api/auth/api-keys.js';
import { addMailbox } from '../../src/connections/mailboxes.js';
import { checkConnection, type CheckDeps } from '../../src/connectivity/check-connection.js';
import { signInWithPassword } from '../../src/connect/password-sign-in.js';
import type { Connection, Transports } from '../../src/domain/connection.js';
import type { CheckStep } from '../../src/domain/connection-check.js';
import { probeGraph, probeImap, probePop3, probeSmtp } from '../../src/mail/probes.js';
import { listMailboxes } from '../../src/connections/mailboxes.js';
import { keys } from '../../src/store/repositories.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { mailHostSettings } from '../support/test-mail-server.js';

/**
 * The connectivity checker against the sandbox identity platform and Graph, and the real Dovecot
 * and Postfix as the tenant's IMAP, POP3 and SMTP: every step works for a healthy connection, and
 * each fault the sandbox can make is named at the step where it happens.
 */

const mailServer = inject('mailServer');
const PASSWORD = 'correct horse battery staple';
const logger = createLogger({ level: 'error', sink: () => undefined });
let env: ConnectEnvironment;
let contoso: Directory;
let apiKey: string;
let defaultCas: string[];

beforeAll(async () => {
  if (!mailServer) return;
  defaultCas = tls.getCACertificates('default');
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    signingKey: mailServer.sandboxSigningKey,
    env: { ALLOW_ROPC: 'true', ...mailHostSettings() },
  });
  // The mail server's certificate comes from its own CA; the process trusts it as it trusts the sandbox's.
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), mailServer.caPem]);
  contoso = await env.createDirectory('Contoso Check', mailServer.tenants[0]);
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
  const { key, record } = generateApiKey('*', 'connectivity check tests', new Date());
  await env.services.repositories.apiKeys.create(keys.apiKey(record.prefix), record);
  apiKey = key;
}, 60_000);

afterAll(async () => {
  if (!mailServer) return;
  await env.stop();
  tls.setDefaultCACertificates(defaultCas);
});

let users = 0;

/** A user of Contoso with a password, signed in to a new delegated connection with these transports. */
async function connected(transports: Transports): Promise<{ connection: Connection; upn: string }> {
  users += 1;
  const upn = `mailer${String(users)}@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: upn, displayName: `Mailer ${String(users)}`, password: PASSWORD });
  const created = await env.createConnection({ customerId: 'check', mode: 'delegated', transports });
  const report = await signInWithPassword(
    { flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger, allowRopc: true },
    created,
    { username: upn, password: () => Promise.resolve(PASSWORD) },
  );
  expect(report).toMatchObject({ kind: 'connected' });
  return { connection: await env.connection(created), upn };
}

function check(connection: Connection, options = {}) {
  const run = env.services.api.checkConnection;
  if (!run) throw new Error('the checker is not configured');
  return run(connection, options);
}

function summary(steps: CheckStep[]): string[] {
  return steps.map((step) => `${step.step}:${step.resource ?? step.mailbox ?? ''}:${step.outcome}${step.cause ? `:${step.cause.code}` : ''}`);
}

describe('connectivity check', () => {
  it('every step works for a healthy connection: tokens, IMAP login and SELECT, SMTP AUTH; and through the API', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection, upn } = await connected({ send: 'smtp', receive: 'imap' });
    const result = await check(connection);
    expect(summary(result.steps)).toEqual(['token:outlook:ok', `imap:${upn}:ok`, `smtp:${upn}:ok`]);
    expect(result.ok).toBe(true);

    const response = await fetch(`${env.baseUrl}/api/v1/customers/check/connections/${connection.id}/check`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ testMessageTo: upn }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { ok: boolean; steps: CheckStep[] };
    expect(body.ok).toBe(true);
    // Asked for a test message: the SMTP step says which one the server took.
    expect(body.steps.find((step) => step.step === 'smtp')?.detail).toMatchObject({ testMessageId: expect.stringMatching(/^<.+@.+>$/) as unknown });
  });

  it('Graph and POP3: the Graph probe for a Graph sender, POP3 login and STAT', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection, upn } = await connected({ send: 'graph', receive: 'pop3' });
    const result = await check(connection);
    expect(summary(result.steps)).toEqual(['token:graph:ok', 'token:outlook:ok', `graph:${upn}:ok`, `pop3:${upn}:ok`]);
  });

  it('a mailbox Graph does not know, and one the user may not open, are named at their step', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection } = await connected({ send: 'smtp', receive: 'graph' });
    const ghost = `nobody@${contoso.domain}`;
    await addMailbox({ mailboxes: env.services.repositories.mailboxes, receiveState: env.services.repositories.receiveState, now: () => new Date() }, connection, { address: ghost, kind: 'shared' });
    const result = await check(connection, { mailboxes: [ghost] });
    expect(summary(result.steps)).toEqual(['token:graph:ok', 'token:outlook:ok', `graph:${ghost}:failed:mailbox_not_found`, `smtp:${ghost}:failed:authentication_failed`]);
    const graph = result.steps.find((step) => step.step === 'graph');
    expect(graph?.cause?.explanation).toMatch(new RegExp(ghost.replace('.', '\\.')));
    expect(graph?.serverText).toMatch(/ErrorInvalidUser/);
  });

  it("revoked sessions fail the token step (sign_in_expired), skip the rest, and the connection needs its user", async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection, upn } = await connected({ send: 'smtp', receive: 'imap' });
    await env.sandbox.control.revokeSessions(contoso.tenant.id, upn);
    // Tokens from before the revocation are still in memory and in the cache: the check asks Microsoft anyway.
    expect((await env.identity.accessTokens.getAccessToken(connection, 'outlook')).token).toBeTruthy();
    const result = await check(connection);
    expect(summary(result.steps)).toEqual(['token:outlook:failed:sign_in_expired', `imap:${upn}:skipped`, `smtp:${upn}:skipped`]);
    expect(result.steps[0]?.cause).toMatchObject({ microsoftCode: 'AADSTS50173', nextStep: expect.stringMatching(/reconnect link/) as unknown });
    expect((await env.connection(connection)).state).toBe('needs_reauth');
  });

  it('an unreachable mail host is named network_unreachable', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection, upn } = await connected({ send: 'smtp', receive: 'imap' });
    const closed = await freePort();
    const cloud = env.identity.msal.app(connection.appId).cloud;
    const deps: CheckDeps = {
      tokens: env.identity.accessTokens,
      mailboxes: (c) => listMailboxes({ mailboxes: env.services.repositories.mailboxes }, c),
      cloud: () => ({ ...cloud, imap: { host: '127.0.0.1', port: closed }, smtp: { host: '127.0.0.1', port: closed } }),
      probes: { imap: probeImap, pop3: probePop3, smtp: probeSmtp, graph: probeGraph },
      vendorName: 'Fabrikam Helpdesk',
      now: () => new Date(),
      timeoutMs: 5_000,
    };
    const result = await checkConnection(deps, connection);
    expect(summary(result.steps)).toEqual(['token:outlook:ok', `imap:${upn}:failed:network_unreachable`, `smtp:${upn}:failed:network_unreachable`]);
    expect(result.steps[1]).toMatchObject({ errorCode: 'ECONNREFUSED' });
  });

  it('removed consent fails the token step as consent_missing', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const directory = await env.createDirectory('Fabrikam Check', mailServer.tenants[1]);
    await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
    const upn = `svc@${directory.domain}`;
    await env.sandbox.control.createUser(directory.tenant.id, { userPrincipalName: upn, password: PASSWORD });
    const created = await env.createConnection({ customerId: 'check', mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });
    await signInWithPassword({ flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger, allowRopc: true }, created, {
      username: upn,
      password: () => Promise.resolve(PASSWORD),
    });
    const connection = await env.connection(created);
    await env.sandbox.control.removeAppFromTenant(directory.tenant.id, env.clientId);
    const result = await check(connection);
    expect(summary(result.steps)[0]).toBe('token:outlook:failed:consent_missing');
    expect((await env.connection(connection)).state).toBe('needs_admin');
  });

  it('Microsoft failing (503) is named unavailable, and the connection stays connected', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection } = await connected({ send: 'smtp', receive: 'imap' });
    await env.sandbox.control.failTokenRequests({ status: 503, count: 5 });
    try {
      const result = await check(connection);
      expect(summary(result.steps)[0]).toBe('token:outlook:failed:unavailable');
      expect(result.steps[0]?.cause).toMatchObject({ microsoftCode: 'AADSTS90006' });
    } finally {
      await env.sandbox.control.failTokenRequests({ status: 503, count: 0 });
    }
    expect((await env.connection(connection)).state).toBe('connected');
  });

  // Last: it breaks the app's credential for the rest of the file.
  it("an expired client secret is named app_misconfigured: the vendor's to fix", async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const { connection } = await connected({ send: 'smtp', receive: 'imap' });
    await env.sandbox.control.expireClientSecret(env.clientId, env.secretKeyId);
    const result = await check(connection);
    expect(summary(result.steps)[0]).toBe('token:outlook:failed:app_misconfigured');
    expect(result.steps[0]?.cause).toMatchObject({ microsoftCode: 'AADSTS7000222', nextStep: expect.stringMatching(/secret/) as unknown });
  });

  it('a pending connection has nothing to check (409)', async (context) => {
    if (!mailServer) return context.skip('the mail server cannot run on this machine');
    const pending = await env.createConnection({ customerId: 'check', mode: 'delegated' });
    const response = await fetch(`${env.baseUrl}/api/v1/customers/check/connections/${pending.id}/check`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` } });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { detail: string }).detail).toMatch(/pending/);
  });
});
