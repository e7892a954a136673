import { beforeAll, describe, expect, it } from 'vitest';
import { CHECK_INTERVAL_MS, checkAgain, MAX_CHECKED_MAILBOXES, type CheckAgainDeps } from '../../src/connect/check-again.js';
import { ConnectResults, type ConnectOutcome } from '../../src/connect/connect-results.js';
import type { CheckOptions } from '../../src/connectivity/check-connection.js';
import type { Connection, ConnectionState } from '../../src/domain/connection.js';
import type { ConnectionCheck } from '../../src/domain/connection-check.js';
import { exchangeSetup } from '../../src/domain/exchange-setup.js';
import { newId } from '../../src/domain/ids.js';
import { provisionStorage } from '../../src/store/provision-storage.js';
import { createRepositories, keys, type Repositories } from '../../src/store/repositories.js';
import { testStorage } from '../support/storage.js';

/**
 * "Check again" on the Exchange set-up page, on Azurite: which results may run the checker, for
 * which connection and mailboxes, and the per-result rate limit that holds across instances. The
 * checker itself is a recording stand-in here; the browser journey runs the real one.
 */

const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const SERVICE_PRINCIPAL_ID = '6a2b0c6e-9f1d-4b7e-8c3a-5d4e3f2a1b0c';
let repositories: Repositories;
let clock = Date.parse('2026-03-02T10:00:00Z');
const now = () => new Date(clock);

beforeAll(async () => {
  const storage = testStorage();
  await provisionStorage(storage);
  repositories = createRepositories(storage);
});

async function connection(overrides: { mode?: Connection['mode']; state?: ConnectionState } = {}): Promise<Connection> {
  const at = now().toISOString();
  const value: Connection = {
    id: newId('con'),
    customerId: 'check-again',
    mode: overrides.mode ?? 'application',
    state: overrides.state ?? 'connected',
    tags: {},
    appId: 'default',
    transports: { send: 'smtp', receive: 'imap' },
    tenantId: TENANT_ID,
    createdAt: at,
    updatedAt: at,
    stateChangedAt: at,
  };
  await repositories.connections.create(keys.connection(value.customerId, value.id), value);
  return value;
}

function setupOutcome(mailboxes: string[]): ConnectOutcome {
  return {
    kind: 'exchange-app-setup',
    tenant: { id: TENANT_ID },
    setup: exchangeSetup({
      tenantId: TENANT_ID,
      appId: '00001111-aaaa-2222-bbbb-3333cccc4444',
      servicePrincipalObjectId: SERVICE_PRINCIPAL_ID,
      displayName: 'Fabrikam Helpdesk',
      mailboxes: mailboxes.map((address) => ({ address, protocols: ['imap', 'smtp'] })),
      enableSmtpClientAuthentication: true,
    }),
  };
}

/** The use-case with a checker that records what it was asked. */
function deps(results = new ConnectResults(repositories.connectResults, now)) {
  const calls: { connectionId: string; options: CheckOptions }[] = [];
  const value: CheckAgainDeps = {
    results,
    connections: repositories.connections,
    checkConnection(checked, options) {
      calls.push({ connectionId: checked.id, options });
      const check: ConnectionCheck = { connectionId: checked.id, state: checked.state, checkedAt: now().toISOString(), ok: true, steps: [] };
      return Promise.resolve(check);
    },
  };
  return { deps: value, calls, results };
}

describe('check again', () => {
  it("runs the checker for the result's own connection and the page's mailboxes, never with a test message", async () => {
    const { deps: d, calls, results } = deps();
    const app = await connection();
    const mailboxes = Array.from({ length: MAX_CHECKED_MAILBOXES + 2 }, (_, i) => `box${String(i)}@northwind.example`);
    const id = await results.save(setupOutcome(mailboxes), { customerId: app.customerId, connectionId: app.id });

    const checked = await checkAgain(d, id);
    expect(checked).toMatchObject({ kind: 'checked', connection: { id: app.id }, check: { connectionId: app.id } });
    // The commands on the page name these mailboxes; a press checks the first few of them and nothing else.
    expect(calls).toEqual([{ connectionId: app.id, options: { mailboxes: mailboxes.slice(0, MAX_CHECKED_MAILBOXES) } }]);
    expect(calls[0]?.options).not.toHaveProperty('testMessageTo');
  });

  it(`allows one check per ${String(CHECK_INTERVAL_MS / 1000)} seconds per result, also when pressed twice at once`, async () => {
    const { deps: d, calls, results } = deps();
    const app = await connection();
    const id = await results.save(setupOutcome(['support@northwind.example']), { customerId: app.customerId, connectionId: app.id });
    const other = await results.save(setupOutcome(['support@northwind.example']), { customerId: app.customerId, connectionId: app.id });

    const both = await Promise.all([checkAgain(d, id), checkAgain(d, id)]);
    expect(both.map((result) => result.kind).sort()).toEqual(['checked', 'wait']);
    expect(calls).toHaveLength(1);

    clock += 4_000;
    expect(await checkAgain(d, id)).toMatchObject({ kind: 'wait', retryAfterMs: CHECK_INTERVAL_MS - 4_000, outcome: { kind: 'exchange-app-setup' } });
    // Another result page has a limit of its own.
    expect(await checkAgain(d, other)).toMatchObject({ kind: 'checked' });
    clock += CHECK_INTERVAL_MS - 4_000;
    expect(await checkAgain(d, id)).toMatchObject({ kind: 'checked' });
    expect(calls).toHaveLength(3);
  });

  it('refuses results that are gone, of another kind, or whose connection is no longer an active application connection', async () => {
    const { deps: d, calls, results } = deps();
    const subjectOf = (c: Connection) => ({ customerId: c.customerId, connectionId: c.id });

    expect(await checkAgain(d, 'x'.repeat(43))).toEqual({ kind: 'gone' });
    expect(await checkAgain(d, '../../etc')).toEqual({ kind: 'gone' });
    const app = await connection();
    const expiring = await results.save(setupOutcome(['a@northwind.example']), subjectOf(app));
    const connected = await results.save({ kind: 'connected', mode: 'application', tenant: { id: TENANT_ID }, permissions: [], mailboxes: [] }, subjectOf(app));
    const withoutSubject = await results.save(setupOutcome(['a@northwind.example']));
    const withoutMailboxes = await results.save(setupOutcome([]), subjectOf(app));
    expect(await checkAgain(d, connected)).toMatchObject({ kind: 'not-checkable' });
    expect(await checkAgain(d, withoutSubject)).toMatchObject({ kind: 'not-checkable' });
    expect(await checkAgain(d, withoutMailboxes)).toMatchObject({ kind: 'not-checkable' });

    for (const refused of [await connection({ state: 'disconnected' }), await connection({ state: 'pending' }), await connection({ mode: 'delegated' })]) {
      const id = await results.save(setupOutcome(['a@northwind.example']), subjectOf(refused));
      expect(await checkAgain(d, id), `${refused.mode} ${refused.state}`).toMatchObject({ kind: 'unavailable', outcome: { kind: 'exchange-app-setup' } });
    }
    const removed = await connection();
    await repositories.connections.delete(keys.connection(removed.customerId, removed.id));
    expect(await checkAgain(d, await results.save(setupOutcome(['a@northwind.example']), subjectOf(removed)))).toMatchObject({ kind: 'unavailable' });

    // A failed token step may have moved the connection on; the administrator fixing it can still check.
    const needsAdmin = await connection({ state: 'needs_admin' });
    expect(await checkAgain(d, await results.save(setupOutcome(['a@northwind.example']), subjectOf(needsAdmin)))).toMatchObject({ kind: 'checked' });

    clock += 25 * 60 * 60_000;
    expect(await checkAgain(d, expiring)).toEqual({ kind: 'gone' });
    expect(calls.map((call) => call.connectionId)).toEqual([needsAdmin.id]);
  });
});
