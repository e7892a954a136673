import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { AppHealthService } from '../../src/connection-health/app-health.js';
import { ConnectionHealthStore } from '../../src/connection-health/health-store.js';
import { refreshConnection, type RefreshDeps, type RefreshMessage } from '../../src/connection-health/refresh-connection.js';
import { enqueueDueRefreshes } from '../../src/connection-health/schedule-refreshes.js';
import { TokenLifecycle } from '../../src/connection-health/token-lifecycle.js';
import { signInWithPassword } from '../../src/connect/password-sign-in.js';
import { changeConnectionState, disconnectConnection } from '../../src/connections/connections.js';
import { connectionView, type Connection } from '../../src/domain/connection.js';
import { DEFAULT_REFRESH_POLICY, type ConnectionHealth } from '../../src/domain/connection-health.js';
import { VENDOR_EVENTS, type StoredEvent } from '../../src/domain/events.js';
import type { NewEvent } from '../../src/events/record-event.js';
import { AccessTokens } from '../../src/identity/access-tokens.js';
import { loadAppCredential } from '../../src/identity/app-credentials.js';
import { MsalClients } from '../../src/identity/msal-clients.js';
import { keys } from '../../src/store/repositories.js';
import { generateApiKey } from '../../src/api/auth/api-keys.js';
import { UNCHANGED } from '../../src/store/table-repository.js';
import { QUEUES } from '../../src/store/storage-layout.js';
import { createLogger, type LogRecord } from '../../src/telemetry/logger.js';
import { RecordingMetrics } from '../../src/telemetry/metrics.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { waitFor } from '../support/wait.js';

/**
 * Token upkeep against the sandbox identity platform: the refresh timer's fan-out, the refresh
 * lease, Microsoft's failures sorted into who must act, and what the vendor hears of it. Most
 * tests drive the use-cases with a clock of their own (shared with the sandbox), so hours and days
 * pass in milliseconds; the concurrency test goes through the real queue and local host.
 */

const PASSWORD = 'correct horse battery staple';
const HOUR = 3_600_000;
let env: ConnectEnvironment;
let clockOffset = 0;
const clock = () => new Date(Date.now() + clockOffset);
const logs: LogRecord[] = [];
const logger = createLogger({ level: 'debug', sink: (record) => logs.push(record) });
/** What the process wrote to stdout and stderr: the services' JSON log lines. */
const output: string[] = [];

function capture(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream);
  vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    output.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  });
}

beforeAll(async () => {
  capture(process.stdout);
  capture(process.stderr);
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    env: { ALLOW_ROPC: 'true', LOG_LEVEL: 'debug' },
    sandbox: { now: () => clock().getTime() },
  });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

/** A tenant that consented, with a service account signed in to a new delegated connection by password. */
async function connected(name: string): Promise<{ directory: Directory; connection: Connection; upn: string }> {
  const directory = await env.createDirectory(name);
  const upn = `svc-mail@${directory.domain}`;
  await env.sandbox.control.createUser(directory.tenant.id, { userPrincipalName: upn, displayName: 'Mail service account', password: PASSWORD });
  await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
  const created = await env.createConnection({ customerId: `life-${name.toLowerCase().replace(/\W/g, '-')}`, mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });
  const report = await signInWithPassword(
    { flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger, allowRopc: true },
    created,
    { username: upn, password: () => Promise.resolve(PASSWORD) },
  );
  expect(report).toMatchObject({ kind: 'connected' });
  return { directory, connection: await env.connection(created), upn };
}

/** The refresh use-case on the test's clock, with its retries kept instead of queued. */
function refresher(metrics = new RecordingMetrics(), msal = env.identity.msal) {
  const retries: { message: RefreshMessage; delaySeconds: number }[] = [];
  const policy = { ...DEFAULT_REFRESH_POLICY, degradedAfterMs: env.identity.policy.degradedAfterMs };
  const health = new ConnectionHealthStore({ health: env.services.repositories.connectionHealth, policy, now: clock, owner: `test-${String(Math.random())}` });
  const apps = new AppHealthService({ appHealth: env.services.repositories.appHealth, recordEvent: (event) => env.services.recordEvent(event), clientIdOf: () => env.clientId, logger, metrics, now: clock });
  const lifecycle = new TokenLifecycle({
    connections: { ...env.services.api.connections, now: clock },
    health,
    apps,
    async issueLink(connection, purpose) {
      const link = await env.identity.links.issue(connection.customerId, connection.id, purpose);
      return { url: link.url, expiresAt: link.expiresAt.toISOString() };
    },
    logger,
    metrics,
  });
  const tokens = new AccessTokens({
    msal,
    secrets: env.services.secrets,
    leases: health,
    appGate: (appId) => apps.gate(appId),
    onFailure: (connection, failure) => lifecycle.failed(connection, failure),
    onSuccess: (connection, outcome) => lifecycle.succeeded(connection, outcome),
    metrics,
    logger,
    now: clock,
  });
  const deps: RefreshDeps = {
    connections: env.services.repositories.connections,
    health,
    tokens,
    lifecycle,
    apps,
    queues: {
      publish(queue, payload, options) {
        expect(queue).toBe(QUEUES.refreshConnection);
        retries.push({ message: payload as RefreshMessage, delaySeconds: options?.delaySeconds ?? 0 });
        return Promise.resolve();
      },
    },
    policy,
    logger,
    metrics,
    now: clock,
    random: () => 0.5,
  };
  return { deps, retries, metrics, tokens, health };
}

function message(connection: Connection): RefreshMessage {
  return { customerId: connection.customerId, connectionId: connection.id };
}

async function healthOf(connection: Connection): Promise<ConnectionHealth> {
  const found = await env.services.repositories.connectionHealth.get(keys.connectionHealth(connection.customerId, connection.id));
  if (!found) throw new Error('no health row');
  return found.value;
}

async function makeDue(connection: Connection): Promise<void> {
  const updated = await env.services.repositories.connectionHealth.update(keys.connectionHealth(connection.customerId, connection.id), (current) =>
    current ? { ...current, dueAt: new Date(clock().getTime() - 60_000).toISOString() } : UNCHANGED,
  );
  if (!updated) throw new Error('no health row');
}

async function eventsOf(customerId: string): Promise<StoredEvent[]> {
  return env.services.repositories.events.all(customerId);
}

function refreshTokensOf(upn: string) {
  return env.sandbox.control.issued(env.clientId).then((issued) => issued.refreshTokens.filter((token) => token.user === upn));
}

describe('token refresh', () => {
  it('10 concurrent refresh messages for one connection make exactly one token call, and the rotated refresh token is kept', async () => {
    const { connection, upn } = await connected('Concurrent');
    const before = await refreshTokensOf(upn);
    await makeDue(connection);

    for (let i = 0; i < 10; i++) await env.services.queues.publish(QUEUES.refreshConnection, message(connection));
    // Done when the health row shows the refresh and no one holds the lease any more.
    await waitFor(async () => {
      const health = await healthOf(connection);
      return health.lease === undefined && health.lastAttemptAt !== undefined && health.dueAt > clock().toISOString() && health;
    }, 30_000);
    await waitFor(async () => (await env.services.storage.queueService.getQueueClient(QUEUES.refreshConnection).getProperties()).approximateMessagesCount === 0, 30_000);

    const after = await refreshTokensOf(upn);
    expect(after).toHaveLength(before.length + 1);
    const health = await healthOf(connection);
    // Version 1 was the sign-in's cache, 2 the refresh's; the other nine found the lease taken or the work done.
    expect(health).toMatchObject({ consecutiveFailures: 0, cacheVersion: 2 });
    const contended = output.join('').split('\n').filter((line) => line.includes(connection.id) && /"outcome":"busy"|lease_contention/.test(line));
    expect(contended.length).toBeGreaterThanOrEqual(1);
    expect(Date.parse(health.dueAt)).toBeGreaterThan(Date.now() + 20 * HOUR);

    // The refresh token the next refresh redeems is the one the first one got: it was persisted.
    const newest = after.reduce((a, b) => (b.issuedAt > a.issuedAt ? b : a));
    expect(newest.lastRedeemedAt).toBeUndefined();
    const { deps } = refresher();
    await makeDue(connection);
    expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'refreshed' });
    const redeemed = (await refreshTokensOf(upn)).find((token) => token.issuedAt === newest.issuedAt);
    expect(redeemed?.lastRedeemedAt).toBeDefined();
  });

  it('getAccessToken serves each resource from memory, and reads the secret store once per connection until the cache changes', async () => {
    const { connection } = await connected('Economy');
    const { tokens, metrics } = refresher();
    const outlook = await tokens.getAccessToken(connection, 'outlook');
    for (let i = 0; i < 5; i++) expect((await tokens.getAccessToken(connection, 'outlook')).token).toBe(outlook.token);
    await tokens.getAccessToken(connection, 'graph');
    expect(metrics.total('secretstore.reads', { connectionId: connection.id })).toBe(1);
    expect(metrics.total('token.requests', { connectionId: connection.id, source: 'memory' })).toBe(5);

    // Another instance refreshed (the cache version moved on): this one reads the store again, once.
    const other = refresher();
    await makeDue(connection);
    expect(await refreshConnection(other.deps, message(connection))).toMatchObject({ outcome: 'refreshed' });
    clockOffset += 2 * HOUR;
    try {
      await tokens.getAccessToken(connection, 'outlook');
      await tokens.getAccessToken(connection, 'graph');
    } finally {
      clockOffset -= 2 * HOUR;
    }
    expect(metrics.total('secretstore.reads', { connectionId: connection.id })).toBe(2);
  });

  it('an idle connection is enqueued and refreshed once a day, and not before', async () => {
    const { connection } = await connected('Idle');
    const signedIn = await healthOf(connection);
    expect(Date.parse(signedIn.dueAt) - Date.parse(signedIn.lastSuccessAt ?? '')).toBe(24 * HOUR);

    const published: unknown[] = [];
    const schedule = { health: env.services.repositories.connectionHealth, queues: { publish: (_queue: string, payload: unknown) => Promise.resolve(published.push(payload)) }, pageSize: 1000 };
    const drain = async (dueBefore: string) => {
      published.length = 0;
      let scan = await enqueueDueRefreshes(schedule, { dueBefore });
      while (scan.more) {
        const next = published.pop() as { continuationToken: string };
        scan = await enqueueDueRefreshes(schedule, { dueBefore, continuationToken: next.continuationToken });
      }
      return published.filter((payload) => (payload as RefreshMessage).connectionId === connection.id);
    };
    expect(await drain(new Date(Date.now() + 23 * HOUR).toISOString())).toHaveLength(0);
    expect(await drain(new Date(Date.now() + 25 * HOUR).toISOString())).toEqual([message(connection)]);

    const { deps } = refresher();
    expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'skipped', reason: 'not_due' });
    clockOffset += 25 * HOUR;
    try {
      expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'refreshed' });
      const refreshed = await healthOf(connection);
      expect(Date.parse(refreshed.lastSuccessAt ?? '')).toBeGreaterThan(Date.now() + 24 * HOUR);
      expect(Date.parse(refreshed.dueAt) - Date.parse(refreshed.lastSuccessAt ?? '')).toBe(24 * HOUR);
    } finally {
      clockOffset -= 25 * HOUR;
    }
  });
});

describe('failures, sorted by who must act', () => {
  it("revoking the user's sessions makes the connection needs_reauth, with a reconnect link in the event", async () => {
    const { directory, connection, upn } = await connected('Revoked');
    await env.sandbox.control.revokeSessions(directory.tenant.id, upn);
    const { deps } = refresher();
    await makeDue(connection);
    expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'failed', kind: 'reauth', code: 'AADSTS50173' });

    const stored = await env.connection(connection);
    expect(stored).toMatchObject({ state: 'needs_reauth', stateReason: { code: 'AADSTS50173' } });
    const event = (await eventsOf(connection.customerId)).find((e) => e.type === 'connection.state_changed' && e.data.to === 'needs_reauth');
    expect(event?.data).toMatchObject({
      from: 'connected',
      to: 'needs_reauth',
      reason: { code: 'AADSTS50173', message: expect.stringMatching(/revoked/) as unknown, nextStep: expect.stringMatching(/reconnect link/) as unknown },
      remedy: 'reconnect',
      link: { url: expect.stringMatching(new RegExp(`^${env.baseUrl}/api/connect/`)) as unknown, purpose: 'connect' },
    });
    // Nothing is refreshed while it waits for the user.
    expect((await healthOf(connection)).dueAt.startsWith('9999')).toBe(true);
    expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'skipped', reason: 'needs_reauth' });

    // Disconnected: skipped, and off the timer's list for good.
    await disconnectConnection({ ...env.services.api.connections, forgetTokens: () => Promise.resolve() }, connection.customerId, connection.id, { code: 'test', message: 'test' });
    await makeDue(connection);
    expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'skipped', reason: 'disconnected' });
    expect((await healthOf(connection)).dueAt.startsWith('9999')).toBe(true);
  });

  it('a refresh whose lifecycle fails before the revoked connection moved leaves it due, so the retry moves it', async () => {
    const { directory, connection, upn } = await connected('Revoked Midway');
    await env.sandbox.control.revokeSessions(directory.tenant.id, upn);
    const { deps, health } = refresher();
    // The connection's row is out of reach once, when the lifecycle is told (a process that died there is alike).
    let outage = true;
    const tokens = new AccessTokens({
      msal: env.identity.msal,
      secrets: env.services.secrets,
      leases: health,
      async onFailure(current, failure) {
        if (outage) {
          outage = false;
          throw new Error('table storage is out of reach');
        }
        await deps.lifecycle.failed(current, failure);
      },
      logger,
      now: clock,
    });
    await makeDue(connection);
    await expect(refreshConnection({ ...deps, tokens }, message(connection))).rejects.toThrow('table storage is out of reach');

    // Not moved, and so not scheduled as if it had: still due, the lease let go.
    expect((await env.connection(connection)).state).toBe('connected');
    const after = await healthOf(connection);
    expect(after.lease).toBeUndefined();
    expect(after.dueAt <= clock().toISOString()).toBe(true);
    // The queue's retry of the message.
    expect(await refreshConnection({ ...deps, tokens }, message(connection))).toMatchObject({ outcome: 'failed', kind: 'reauth' });
    expect((await env.connection(connection)).state).toBe('needs_reauth');
    expect((await eventsOf(connection.customerId)).filter((e) => e.data.to === 'needs_reauth')).toHaveLength(1);
    expect((await healthOf(connection)).dueAt.startsWith('9999')).toBe(true);
  });

  it('a refresh records the last change of a connection whose writer died before recording its event, once', async () => {
    const { connection } = await connected('Unrecorded');
    // Moved to needs_admin by a writer that ended after writing the row, before the event was recorded.
    const dying = { ...env.services.api.connections, recordEvent: (event: NewEvent) => (event.data.to === 'needs_admin' ? Promise.reject(new Error('process ended')) : env.services.recordEvent(event)) };
    await expect(changeConnectionState(dying, connection.customerId, connection.id, 'needs_admin', { code: 'AADSTS65001', message: 'consent removed' })).rejects.toThrow('process ended');
    const moved = await env.connection(connection);
    expect(moved.state).toBe('needs_admin');
    const unrecorded = moved.lastEvent?.id ?? '';
    expect(await env.services.repositories.events.get(keys.event(connection.customerId, unrecorded))).toBeUndefined();

    const { deps } = refresher();
    await refreshConnection(deps, message(connection));
    await refreshConnection(deps, message(connection));
    const changes = (await eventsOf(connection.customerId)).filter((e) => e.type === 'connection.state_changed');
    expect(changes.map((e) => [e.id === unrecorded, e.data.from, e.data.to])).toEqual([
      [false, 'pending', 'connected'],
      [true, 'connected', 'needs_admin'],
    ]);
  });

  it('removing the consent makes it needs_admin with an admin link; granting it again brings it back by itself', async () => {
    const { directory, connection } = await connected('Unconsented');
    await env.sandbox.control.removeAppFromTenant(directory.tenant.id, env.clientId);
    const { deps } = refresher();
    await makeDue(connection);
    const failed = await refreshConnection(deps, message(connection));
    expect(failed).toMatchObject({ outcome: 'failed', kind: 'consent' });

    const stored = await env.connection(connection);
    expect(stored.state).toBe('needs_admin');
    const event = (await eventsOf(connection.customerId)).find((e) => e.data.to === 'needs_admin');
    expect(event?.data).toMatchObject({ remedy: 'admin_consent', link: { purpose: 'admin-grant' } });

    // Checked again a day later: once the administrator granted consent again, it is connected.
    await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
    expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'skipped', reason: 'not_due' });
    clockOffset += 25 * HOUR;
    try {
      expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'refreshed' });
    } finally {
      clockOffset -= 25 * HOUR;
    }
    expect((await env.connection(connection)).state).toBe('connected');
    expect((await eventsOf(connection.customerId)).filter((e) => e.type === 'connection.state_changed').map((e) => e.data.to)).toEqual(['connected', 'needs_admin', 'connected']);
  });

  it('the token endpoint failing with 503 for 20 minutes leaves the connection connected, and it recovers by itself', async () => {
    const { connection } = await connected('Outage');
    const { deps, retries, metrics } = refresher();
    const start = clockOffset;
    await env.sandbox.control.failTokenRequests({ status: 503, forSeconds: 20 * 60 });
    await makeDue(connection);
    try {
      let outcome = await refreshConnection(deps, message(connection));
      let attempts = 1;
      while (outcome.outcome === 'failed') {
        // Entra's 503 names its cause: AADSTS90006, "ExternalServerRetryableError".
        expect(outcome).toMatchObject({ kind: 'transient', code: 'AADSTS90006' });
        expect((await env.connection(connection)).state).toBe('connected');
        const retry = retries.at(-1);
        if (!retry) throw new Error('no retry was scheduled');
        clockOffset += retry.delaySeconds * 1000;
        outcome = await refreshConnection(deps, retry.message);
        attempts++;
        expect(attempts).toBeLessThan(10);
      }
      expect(outcome).toMatchObject({ outcome: 'refreshed' });
      expect(clockOffset - start).toBeGreaterThanOrEqual(20 * 60_000);
      // Back-off: each wait longer than the one before.
      const delays = retries.map((retry) => retry.delaySeconds);
      expect(delays).toEqual([...delays].sort((a, b) => a - b));
      expect(metrics.total('refresh.attempts', { connectionId: connection.id, outcome: 'failure', code: 'AADSTS90006' })).toBe(attempts - 1);
      expect(await healthOf(connection)).toMatchObject({ consecutiveFailures: 0 });
      expect((await eventsOf(connection.customerId)).filter((e) => e.type === 'connection.state_changed').map((e) => e.data.to)).toEqual(['connected']);
    } finally {
      clockOffset = start;
      await env.sandbox.control.failTokenRequests({ status: 503, count: 0 });
    }
  });

  it('transient failure for 72 hours makes the connection degraded; it returns to connected by itself', async () => {
    const { connection } = await connected('Degraded');
    const { deps } = refresher();
    const start = clockOffset;
    await env.sandbox.control.failTokenRequests({ status: 503, forSeconds: 80 * 3600 });
    await makeDue(connection);
    try {
      expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'failed', kind: 'transient' });
      clockOffset += 71 * HOUR;
      expect(await refreshConnection(deps, { ...message(connection), retryOf: (await healthOf(connection)).lastAttemptAt })).toMatchObject({ outcome: 'failed' });
      expect((await env.connection(connection)).state).toBe('connected');
      clockOffset += 2 * HOUR;
      expect(await refreshConnection(deps, { ...message(connection), retryOf: (await healthOf(connection)).lastAttemptAt })).toMatchObject({ outcome: 'failed' });
      expect(await env.connection(connection)).toMatchObject({ state: 'degraded', stateReason: { code: 'AADSTS90006' } });
      clockOffset += 8 * HOUR;
      expect(await refreshConnection(deps, { ...message(connection), retryOf: (await healthOf(connection)).lastAttemptAt })).toMatchObject({ outcome: 'refreshed' });
      expect((await env.connection(connection)).state).toBe('connected');
      expect((await eventsOf(connection.customerId)).filter((e) => e.type === 'connection.state_changed').map((e) => e.data.to)).toEqual(['connected', 'degraded', 'connected']);
    } finally {
      clockOffset = start;
      await env.sandbox.control.failTokenRequests({ status: 503, count: 0 });
    }
  });

  it('an expired client secret raises one app.misconfigured event for the app, however many connections fail; a new secret brings it back', async () => {
    const first = await connected('Secret One');
    const second = await connected('Secret Two');
    await env.sandbox.control.expireClientSecret(env.clientId, env.secretKeyId);
    const { deps } = refresher();
    for (const { connection } of [first, second]) {
      await makeDue(connection);
      expect(await refreshConnection(deps, message(connection))).toMatchObject({ outcome: 'failed', kind: 'app_config', code: 'AADSTS7000222' });
    }
    // Tried again within the probe interval: refused without asking Microsoft.
    await makeDue(first.connection);
    expect(await refreshConnection(deps, message(first.connection))).toMatchObject({ outcome: 'failed', kind: 'app_config' });

    // Other test files share the vendor partition; this app's event is the one whose connections failed.
    const vendorEvents = (await eventsOf(VENDOR_EVENTS)).filter((e) => e.type === 'app.misconfigured' && e.data.clientId === env.clientId);
    expect(vendorEvents).toHaveLength(1);
    expect(vendorEvents[0]?.data).toMatchObject({ appId: 'default', clientId: env.clientId, code: 'AADSTS7000222', explanation: expect.stringMatching(/secret has expired/) as unknown });
    // The connections' own rows and events are untouched; the API shows them as the app's state.
    for (const { connection } of [first, second]) {
      expect((await env.connection(connection)).state).toBe('connected');
      expect((await eventsOf(connection.customerId)).filter((e) => e.type === 'connection.state_changed').map((e) => e.data.to)).toEqual(['connected']);
    }
    expect(logs.filter((record) => record.level === 'error' && record.message.startsWith('app registration misconfigured'))).toHaveLength(1);
    const problem = await env.services.api.appProblem('default');
    expect(connectionView(await env.connection(first.connection), problem)).toMatchObject({ state: 'app_misconfigured', stateReason: { code: 'AADSTS7000222' } });

    // The vendor puts a new secret in the secret store: within the probe interval one refresh tries
    // it (the service's own 5-minute credential cache is left out here), and the app recovers.
    const secret = await env.sandbox.control.addClientSecret(env.clientId);
    await env.services.secrets.set('entra-client-secret', secret.value);
    const apps = env.services.config.identity?.apps ?? [];
    const fresh = new MsalClients({ apps, credential: (app) => loadAppCredential(app, env.services.secrets, () => { throw new Error('no managed identity'); }), logger });
    const recovering = refresher(new RecordingMetrics(), fresh);
    clockOffset += 16 * 60_000;
    try {
      await makeDue(first.connection);
      expect(await refreshConnection(recovering.deps, message(first.connection))).toMatchObject({ outcome: 'refreshed' });
    } finally {
      clockOffset -= 16 * 60_000;
    }
    const recovered = (await eventsOf(VENDOR_EVENTS)).filter((e) => e.type === 'app.recovered' && e.data.clientId === env.clientId);
    expect(recovered).toHaveLength(1);

    // Through the API: credentials for every customer list and replay them; a customer's own get 404.
    const everyone = generateApiKey('*', 'app events', new Date());
    const oneCustomer = generateApiKey(first.connection.customerId, 'app events', new Date());
    for (const { record } of [everyone, oneCustomer]) await env.services.repositories.apiKeys.create(keys.apiKey(record.prefix), record);
    const get = (key: string, path: string, method = 'GET') => fetch(`${env.baseUrl}/api/v1/${path}`, { method, headers: { authorization: `Bearer ${key}` } });
    const listed = await get(everyone.key, 'app-events?type=app.misconfigured&limit=100');
    expect(listed.status).toBe(200);
    const items = ((await listed.json()) as { items: { id: string; data: { clientId?: string } }[] }).items.filter((e) => e.data.clientId === env.clientId);
    expect(items).toHaveLength(1);
    expect((await get(oneCustomer.key, 'app-events')).status).toBe(404);
    expect((await get(everyone.key, `app-events/${items[0]?.id ?? ''}/replay`, 'POST')).status).toBe(202);
    expect((await get(oneCustomer.key, `app-events/${items[0]?.id ?? ''}/replay`, 'POST')).status).toBe(404);
    expect(await env.identity.apps.get('default')).not.toHaveProperty('misconfigured');
  });
});

describe('secrets stay secret', () => {
  it('no token appears in logs, tables or events', async () => {
    const tables = env.services.repositories;
    const rows: unknown[] = [];
    for (const repository of [tables.connectionHealth, tables.appHealth, tables.connections, tables.events, tables.connectResults, tables.signInStates]) {
      for (let token: string | undefined, first = true; first || token !== undefined; first = false) {
        const page = await repository.pageBefore('PartitionKey', '~', { pageSize: 1000, ...(token !== undefined && { continuationToken: token }) });
        rows.push(...page.items.map((item) => item.value));
        token = page.continuationToken;
      }
    }
    const connections = rows.filter((row): row is Connection => typeof row === 'object' && row !== null && 'transports' in row && 'tenantId' in row);
    // The real secrets: every access and refresh token in the connections' stored msal caches (refresh tokens are opaque, not JWTs).
    const secrets: string[] = [];
    for (const connection of connections) {
      const cache = JSON.parse((await env.tokenCache(connection.id)) ?? '{}') as Record<string, Record<string, { secret?: string }> | undefined>;
      for (const section of ['AccessToken', 'RefreshToken', 'IdToken']) for (const entry of Object.values(cache[section] ?? {})) if (entry.secret) secrets.push(entry.secret);
    }
    expect(secrets.length).toBeGreaterThan(5);
    const text = JSON.stringify(rows) + JSON.stringify(logs) + output.join('');
    for (const secret of secrets) expect(text.includes(secret), 'a stored token appears in logs or tables').toBe(false);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
    // The services' own log lines (the local host's invocations included) were seen too.
    expect(output.join('')).toMatch(/tokens refreshed/);
  });
});
