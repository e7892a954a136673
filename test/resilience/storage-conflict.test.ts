import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signInWithPassword } from '../../src/connect/password-sign-in.js';
import { AppHealthService } from '../../src/connection-health/app-health.js';
import { VENDOR_EVENTS } from '../../src/domain/events.js';
import { changeConnectionState, updateConnectionTags, type ConnectionDeps } from '../../src/connections/connections.js';
import { InvalidTransitionError, type Connection, type ConnectionState } from '../../src/domain/connection.js';
import type { StoredEvent } from '../../src/domain/events.js';
import type { OutboundMessage } from '../../src/domain/outbound-message.js';
import type { SendOutcome } from '../../src/sending/send-message.js';
import { keys } from '../../src/store/repositories.js';
import { ConcurrencyError, UNCHANGED } from '../../src/store/table-repository.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { PASSWORD, sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { Crash, overlay } from './crash-points.js';
import { quiet } from './use-cases.js';
import { RecordingMetrics } from '../../src/telemetry/metrics.js';

/**
 * Concurrent writers on one row, through the repositories' update (read, change, write with the
 * ETag, again on a lost race) and the ETag writes of the use-cases: one connection row (tag
 * changes, state changes and a sign-in at once), one outbox row (increments; conditional
 * replaces), and one message sent by several workers at once. Nothing written may be lost: every
 * increment and field is there at the end, every state change has its event and the events chain
 * up, and a message goes out once.
 */

const CUSTOMER = `conflict-${String(process.pid)}`;
let env: ConnectEnvironment;
let kit: SendTestKit;
let contoso: Directory;

beforeAll(async () => {
  env = await startConnectEnvironment({ storageConnectionString: inject('storageConnectionString'), env: { ALLOW_ROPC: 'true', 'AzureWebJobs.refresh-timer.Disabled': 'true' } });
  kit = await sendTestKit(env);
  contoso = await env.createDirectory('Contoso Conflict');
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

let users = 0;
async function sender(): Promise<string> {
  users += 1;
  const upn = `conflict${String(users)}@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: upn, displayName: `Conflict ${String(users)}`, password: PASSWORD });
  return upn;
}

async function stateEvents(connection: Pick<Connection, 'customerId' | 'id'>): Promise<StoredEvent[]> {
  return (await env.services.repositories.events.all(connection.customerId)).filter((event) => event.connectionId === connection.id && event.type === 'connection.state_changed');
}

/**
 * Whether the state changes chain up: a walk from `from` to `to` that takes every change once
 * (an Euler path of the from→to edges). A change written over a stale row would break it.
 */
function chainsUp(changes: { from: string; to: string }[], from: string, to: string): boolean {
  const balance = new Map<string, number>();
  for (const change of changes) {
    balance.set(change.from, (balance.get(change.from) ?? 0) + 1);
    balance.set(change.to, (balance.get(change.to) ?? 0) - 1);
  }
  if (from !== to) {
    balance.set(from, (balance.get(from) ?? 0) - 1);
    balance.set(to, (balance.get(to) ?? 0) + 1);
  }
  if ([...balance.values()].some((value) => value !== 0)) return false;
  // Every change reachable from the start.
  const reached = new Set([from]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const change of changes) {
      if (reached.has(change.from) && !reached.has(change.to)) {
        reached.add(change.to);
        grew = true;
      }
    }
  }
  return changes.every((change) => reached.has(change.from));
}

/**
 * The writers told they succeeded (by index), and how many were refused: with ConcurrencyError (lost every round),
 * or a move the state machine forbids from the state another writer left (InvalidTransitionError) when allowed.
 */
function settle(results: PromiseSettledResult<unknown>[], options: { invalidTransitions?: boolean } = {}): { succeeded: number[]; refused: number } {
  const rejected = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
  const expected = (reason: unknown) => reason instanceof ConcurrencyError || (options.invalidTransitions === true && reason instanceof InvalidTransitionError);
  expect(rejected.filter((reason) => !expected(reason)).map(String)).toEqual([]);
  return { succeeded: results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : [])), refused: rejected.length };
}

describe('concurrent writers on one row', () => {
  it('20 concurrent tag changes of one connection (update with ETags): all 20 tags are there', async () => {
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'none' }, []);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => updateConnectionTags(env.services.api.connections, CUSTOMER, connection.id, { [`team${String(i)}`]: `value ${String(i)}` })),
    );
    // A writer that lost every one of update's rounds is told so (ConcurrencyError: the API's 409 "repeat the
    // request"); every one that was told it succeeded is in the row.
    const { succeeded, refused } = settle(results);
    const stored = await env.connection(connection);
    expect(Object.keys(stored.tags).sort()).toEqual(succeeded.map((i) => `team${String(i)}`).sort());
    expect(stored.state).toBe('connected');
    expect(succeeded.length).toBeGreaterThan(0);
    console.log(`connection row: 20 concurrent tag changes, ${String(succeeded.length)} applied, ${String(refused)} refused with ConcurrencyError, none lost`);
  });

  it('20 concurrent increments of one outbox row: none lost; of 20 conditional replaces with one ETag, exactly one wins', async () => {
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'none' }, [await sender()]);
    const message = await kit.submitUnqueued(connection, { to: [`adele@${contoso.domain}`], subject: 'Counted', text: 'x' });
    const key = keys.outboundMessage(CUSTOMER, message.id);
    const outbox = env.services.repositories.outbox;
    let runs = 0;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        outbox.update(key, (current) => {
          runs++;
          return current ? { ...current, attemptCount: current.attemptCount + 1 } : UNCHANGED;
        }),
      ),
    );
    const { succeeded, refused } = settle(results);
    expect((await kit.message(CUSTOMER, message.id)).attemptCount).toBe(succeeded.length);
    expect(succeeded.length).toBeGreaterThan(0);
    console.log(`outbox row: 20 concurrent increments, ${String(succeeded.length)} applied in ${String(runs)} read-change-write rounds, ${String(refused)} refused with ConcurrencyError, none lost`);

    const read = await outbox.get(key);
    if (!read) throw new Error('the message vanished');
    const replaced = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => outbox.replace(key, { ...read.value, attemptCount: 100 + i } satisfies OutboundMessage, read.etag)),
    );
    const won = replaced.filter((result) => result.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(replaced.filter((result) => result.status === 'rejected').every((result) => result.reason instanceof ConcurrencyError)).toBe(true);
    const winner = won[0]?.status === 'fulfilled' ? won[0].value.value.attemptCount : undefined;
    expect((await kit.message(CUSTOMER, message.id)).attemptCount).toBe(winner);
  });

  it('state changes, tag changes and a sign-in at once on one connection: every field kept, every change has its event, and the events chain up', async () => {
    const upn = await sender();
    const created = await env.createConnection({ customerId: CUSTOMER, mode: 'delegated', transports: { send: 'graph', receive: 'graph' } });
    const signIn = () =>
      signInWithPassword({ flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger: quiet, allowRopc: true }, created, {
        username: upn,
        password: () => Promise.resolve(PASSWORD),
      });
    expect(await signIn()).toMatchObject({ kind: 'connected' });
    const connection = await env.connection(created);
    const deps: ConnectionDeps = env.services.api.connections;
    const targets: ConnectionState[] = ['degraded', 'needs_admin', 'connected', 'needs_reauth', 'connected', 'degraded', 'app_misconfigured', 'connected', 'needs_reauth', 'connected'];
    const work: Promise<unknown>[] = [
      ...targets.map((to, i) => changeConnectionState(deps, CUSTOMER, connection.id, to, to === 'connected' ? undefined : { code: `test-${String(i)}`, message: `change ${String(i)}` })),
      ...Array.from({ length: 10 }, (_, i) => updateConnectionTags(deps, CUSTOMER, connection.id, { [`k${String(i)}`]: String(i) })),
      signIn(),
    ];
    const results = await Promise.allSettled(work);
    const { refused } = settle(results, { invalidTransitions: true });

    const stored = await env.connection(connection);
    // The tags, and the sign-in's fields, survived every state change written around them.
    const tagged = results.slice(targets.length, targets.length + 10).flatMap((result, i) => (result.status === 'fulfilled' ? [`k${String(i)}`] : []));
    expect(Object.keys(stored.tags).sort()).toEqual(tagged.sort());
    expect(stored).toMatchObject({ tenantId: contoso.tenant.id, account: { upn }, signInMethod: 'password' });
    // Every change has its event; from the first sign-in's connected to the state the row ends in, they chain up.
    const changes = (await stateEvents(connection)).map((event) => ({ from: String(event.data.from), to: String(event.data.to) }));
    const sinceSignIn = changes.slice(1);
    expect(changes[0]).toEqual({ from: 'pending', to: 'connected' });
    expect(chainsUp(sinceSignIn, 'connected', stored.state), JSON.stringify(changes)).toBe(true);
    expect(await env.services.repositories.events.get(keys.event(CUSTOMER, stored.lastEvent?.id ?? ''))).toBeDefined();
    console.log(`connection row: ${String(work.length)} concurrent writers (${String(refused)} refused: a lost race or a move the state left by another writer forbids), ${String(sinceSignIn.length)} state changes recorded, ending ${stored.state}`);

    // The sign-in's tokens are intact: a token for the connection comes from them.
    if (stored.state === 'needs_reauth') await changeConnectionState(deps, CUSTOMER, connection.id, 'connected', undefined);
    await expect(env.identity.accessTokens.getAccessToken(await env.connection(connection), 'graph', { fresh: true })).resolves.toMatchObject({ token: expect.any(String) as unknown });
  });

  it('8 workers send one message at once (a duplicated queue message), for 3 messages: each goes out once', async () => {
    const from = await sender();
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'none' }, [from]);
    const to = `adele-${String(process.pid)}@${contoso.domain}`;
    await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: to, displayName: 'Adele Vance' });
    const messages = await Promise.all(Array.from({ length: 3 }, (_, i) => kit.submitUnqueued(connection, { to: [to], subject: `Raced ${String(i)}`, text: 'once' })));
    const run = kit.direct();
    const outcomes = await Promise.all(messages.flatMap((message) => Array.from({ length: 8 }, () => run.send({ customerId: CUSTOMER, messageId: message.id }))));
    const sent = outcomes.filter((outcome: SendOutcome) => outcome.outcome === 'sent');
    expect(sent).toHaveLength(3);
    // The others found the row claimed (busy), the attempt under way (waiting), or the message sent (done).
    expect(outcomes.filter((outcome) => !['sent', 'busy', 'waiting', 'done'].includes(outcome.outcome))).toEqual([]);
    const inbox = await env.sandbox.control.messages(to, 'inbox');
    const events = await env.services.repositories.events.all(CUSTOMER);
    for (const message of messages) {
      expect(await kit.message(CUSTOMER, message.id)).toMatchObject({ status: 'sent', attemptCount: 1 });
      expect(inbox.filter((m) => m.internetMessageId === message.internetMessageId)).toHaveLength(1);
      expect(events.filter((event) => event.type === 'message.sent' && event.data.messageId === message.id)).toHaveLength(1);
    }
    console.log(`send: 24 concurrent attempts of 3 messages: ${outcomes.map((outcome) => outcome.outcome).sort().join(' ')}`);
  });

  // A connection change's event is recorded after its row write. A writer that dies in between leaves the event
  // only on the row; when another writer's update then loses the ETag race to that write, it is retried on the
  // row carrying the unrecorded event, and its write would replace it. It records that event first (on the very
  // version it replaces, by id), so the event is never lost and never recorded twice.
  it('a writer that dies between writing a state change and recording its event, while another writer changes the same connection: the other writer records that event first, once', async () => {
    const connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'none' }, []);
    const repository = env.services.repositories.connections;
    let aWrote: () => void = () => undefined;
    const written = new Promise<void>((resolve) => (aWrote = resolve));
    let lostEventId: string | undefined;
    // B read the row (and recorded its event) before A wrote; its update runs after A's write.
    const b = changeConnectionState(
      {
        ...env.services.api.connections,
        connections: overlay(repository, {
          async update(key, mutate, options) {
            await written;
            return repository.update(key, mutate, options);
          },
        }),
      },
      CUSTOMER,
      connection.id,
      'needs_admin',
      { code: 'AADSTS65001', message: 'consent revoked' },
    );
    // A writes its change and its process dies before the event is recorded.
    const a = changeConnectionState(
      {
        ...env.services.api.connections,
        connections: overlay(repository, {
          async update(key, mutate, options) {
            const result = await repository.update(key, mutate, options);
            lostEventId = result?.value.lastEvent?.id;
            aWrote();
            throw new Crash('connections.update');
          },
        }),
      },
      CUSTOMER,
      connection.id,
      'degraded',
      { code: 'AADSTS90006', message: 'Microsoft failed every token request for 72 hours.' },
    );
    await expect(a).rejects.toBeInstanceOf(Crash);
    await b;
    // A's queue message comes back: the change is tried again from where the row is now (needs_admin cannot become
    // degraded: the newer state stands, as the token lifecycle decides).
    await changeConnectionState(env.services.api.connections, CUSTOMER, connection.id, 'degraded', { code: 'AADSTS90006', message: 'Microsoft failed every token request for 72 hours.' }).catch((error: unknown) => {
      if (!(error instanceof InvalidTransitionError)) throw error;
    });
    const changes = (await stateEvents(connection)).map((event) => ({ from: String(event.data.from), to: String(event.data.to) }));
    expect(lostEventId).toBeDefined();
    expect((await env.connection(connection)).state).toBe('needs_admin');
    const recorded = (await env.services.repositories.events.get(keys.event(CUSTOMER, lostEventId ?? ''))) !== undefined;
    const chained = chainsUp(changes.slice(1), 'connected', 'needs_admin');
    // The vendor hears of connected → degraded → needs_admin, each change once.
    expect({ recorded, chained, changes }).toEqual({
      recorded: true,
      chained: true,
      changes: [
        { from: 'pending', to: 'connected' },
        { from: 'connected', to: 'degraded' },
        { from: 'degraded', to: 'needs_admin' },
      ],
    });
  });

  // The same for the app's own row: app.recovered written by a writer that dies, and app.misconfigured by another
  // that read the row before that write and updates it after.
  it('a writer that dies between marking the app working and recording app.recovered, while another marks it misconfigured again: every event is recorded, once', async () => {
    const appId = `conflict-app-${String(process.pid)}`;
    const repository = env.services.repositories.appHealth;
    const connections = env.services.api.connections;
    const service = (appHealth: typeof repository) =>
      new AppHealthService({ appHealth, recordEvent: (event) => connections.recordEvent(event), clientIdOf: (id) => `client-${id}`, logger: quiet, metrics: new RecordingMetrics(), now: () => new Date() });
    const failure = { kind: 'app_config', state: 'app_misconfigured', code: 'AADSTS7000222', explanation: 'The client secret expired.', nextStep: 'Add a new secret.', remedy: 'vendor' } as const;
    await service(repository).markMisconfigured(appId, failure);

    let bRead: () => void = () => undefined;
    const read = new Promise<void>((resolve) => (bRead = resolve));
    let aWrote: () => void = () => undefined;
    const written = new Promise<void>((resolve) => (aWrote = resolve));
    let lostEventId: string | undefined;
    // B reads the row (misconfigured) first; its update runs only after A's write.
    const b = service(
      overlay(repository, {
        async get(key) {
          const row = await repository.get(key);
          bRead();
          return row;
        },
        async update(key, mutate, options) {
          await written;
          return repository.update(key, mutate, options);
        },
      }),
    ).markMisconfigured(appId, failure);
    // A marks the app working after B's read, writes, and its process dies before the event is recorded.
    const a = service(
      overlay(repository, {
        async update(key, mutate, options) {
          await read;
          const result = await repository.update(key, mutate, options);
          lostEventId = result?.value.lastEvent?.id;
          aWrote();
          throw new Crash('appHealth.update');
        },
      }),
    ).markWorking(appId);
    await expect(a).rejects.toBeInstanceOf(Crash);
    await b;

    const events = (await env.services.repositories.events.all(VENDOR_EVENTS)).filter((event) => event.data.appId === appId);
    expect(lostEventId).toBeDefined();
    expect(events.map((event) => event.type)).toEqual(['app.misconfigured', 'app.recovered', 'app.misconfigured']);
    expect(events[1]?.id).toBe(lostEventId);
    expect((await service(repository).get(appId))?.misconfigured).toBeDefined();
  });
});
