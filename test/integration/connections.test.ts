import { beforeAll, describe, expect, it } from 'vitest';
import { changeConnectionState, createConnection } from '../../src/connections/connections.js';
import type { NewEvent } from '../../src/events/record-event.js';
import { createRepositories, type Repositories } from '../../src/store/repositories.js';
import { provisionStorage } from '../../src/store/provision-storage.js';
import { testStorage, uniqueName } from '../support/storage.js';

/** Connection changes never lose their events, even when recording one fails half-way. */
describe('connection changes and their events', () => {
  const storage = testStorage();
  let repositories: Repositories;

  beforeAll(async () => {
    await provisionStorage(storage);
    repositories = createRepositories(storage);
  });

  function recorder(failFirst: number) {
    const recorded: NewEvent[] = [];
    let failures = failFirst;
    return {
      recorded,
      deps: {
        connections: repositories.connections,
        now: () => new Date(),
        recordEvent: (event: NewEvent) => {
          if (failures-- > 0) return Promise.reject(new Error('queue unavailable'));
          recorded.push(event);
          return Promise.resolve();
        },
      },
    };
  }

  it('records an event that failed to record before the next change replaces it', async () => {
    const customerId = uniqueName('cust');
    const flaky = recorder(1);
    await expect(createConnection(flaky.deps, { customerId, mode: 'delegated', appId: 'default', transports: { send: 'graph', receive: 'graph' }, tags: { a: '1' } })).rejects.toThrow('queue unavailable');
    const [stored] = await repositories.connections.all(customerId);
    if (!stored) throw new Error('the connection row was not saved');

    const changed = await changeConnectionState(flaky.deps, customerId, stored.id, 'disconnected', { code: 'test', message: 'by test' });
    expect(changed?.state).toBe('disconnected');
    expect(flaky.recorded.map((e) => [e.type, e.id])).toEqual([
      ['connection.created', stored.lastEvent?.id],
      ['connection.state_changed', changed?.lastEvent?.id],
    ]);
    expect(flaky.recorded[1]).toMatchObject({ tags: { a: '1' }, data: { from: 'pending', to: 'disconnected' } });
  });

  it('records the event of a change whose recording failed when the call is repeated', async () => {
    const customerId = uniqueName('cust');
    const ok = recorder(0);
    const connection = await createConnection(ok.deps, { customerId, mode: 'application', appId: 'default', transports: { send: 'graph', receive: 'graph' }, tags: {} });
    const flaky = recorder(1);
    await expect(changeConnectionState(flaky.deps, customerId, connection.id, 'disconnected', undefined)).rejects.toThrow('queue unavailable');
    const repeated = await changeConnectionState(flaky.deps, customerId, connection.id, 'disconnected', undefined);
    expect(repeated?.state).toBe('disconnected');
    // The repeat changes nothing but records what the first call left unrecorded (and the created
    // event again, which the event store takes as already there).
    expect(flaky.recorded.map((e) => e.type)).toContain('connection.state_changed');
    expect(flaky.recorded.find((e) => e.type === 'connection.state_changed')?.id).toBe(repeated?.lastEvent?.id);
  });

  it('reports a connection that does not exist', async () => {
    expect(await changeConnectionState(recorder(0).deps, uniqueName('cust'), 'con_01JD0000000000000000000000', 'disconnected', undefined)).toBeUndefined();
  });
});
