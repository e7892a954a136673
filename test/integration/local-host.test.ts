import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { startLocalHost, type LocalHost } from '../../local/host/host.js';
import type { InvocationLogEntry } from '../../local/host/invoke.js';
import type { Recorded } from '../fixtures/host-app/functions/recorder.js';
import { encodeQueueMessage } from '../../src/store/queue-publisher.js';
import { uniqueName } from '../support/storage.js';
import { waitFor } from '../support/wait.js';

/**
 * The local host runs a small fixture app (test/fixtures/host-app) registered through
 * @azure/functions exactly as functions/ is, and is checked against the Functions host's
 * trigger semantics.
 */

const appDir = fileURLToPath(new URL('../fixtures/host-app/', import.meta.url));
const recorded = (): Recorded =>
  (globalThis as unknown as Record<symbol, Recorded>)[Symbol.for('m365-connector.host-fixture')] as Recorded;

describe('local host', () => {
  const connectionString = inject('storageConnectionString');
  const queues = QueueServiceClient.fromConnectionString(connectionString);
  const workQueue = uniqueName('work-');
  const flakyQueue = uniqueName('flaky-');
  const parallelQueue = uniqueName('parallel-');
  const lateQueue = uniqueName('late-');
  const hostLog: string[] = [];
  const functionLog: string[] = [];
  const functionEntries: InvocationLogEntry[] = [];
  let host: LocalHost;

  beforeAll(async () => {
    // An occurrence of the yearly "monitored" timer was due while the host was down.
    const status = BlobServiceClient.fromConnectionString(connectionString).getContainerClient('azure-webjobs-hosts');
    await status.createIfNotExists();
    const missed = JSON.stringify({ Last: '2020-01-01T00:00:00.000Z', Next: '2021-01-01T00:00:00.000Z', LastUpdated: '2020-01-01T00:00:00.000Z' });
    await status.getBlockBlobClient('timers/fixture/Host.Functions.monitored/status').upload(missed, missed.length);

    // A message some earlier worker took three times (maxDequeueCount) without finishing.
    const late = queues.getQueueClient(lateQueue);
    await late.create();
    await late.sendMessage(encodeQueueMessage({ abandoned: true }));
    for (let i = 0; i < 3; i++) {
      const [message] = (await late.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
      if (!message) throw new Error('the abandoned message is not visible');
      await late.updateMessage(message.messageId, message.popReceipt, undefined, 0);
    }

    host = await startLocalHost({
      appDir,
      port: 0,
      hostId: 'fixture',
      env: {
        AzureWebJobsStorage: connectionString,
        WORK_QUEUE: workQueue,
        FLAKY_QUEUE: flakyQueue,
        PARALLEL_QUEUE: parallelQueue,
        LATE_QUEUE: lateQueue,
        MONITORED_SCHEDULE: '0 0 0 1 1 *',
        'AzureWebJobs.switchedOff.Disabled': 'true',
      },
      log: (level, message) => hostLog.push(`${level}: ${message}`),
      functionLog: (entry) => {
        functionLog.push(entry.message);
        functionEntries.push(entry);
      },
    });
  });

  afterAll(async () => {
    await host.stop();
    expect(recorded().hooks.at(-1)).toBe('appTerminate');
  });

  it('leaves out a function whose AzureWebJobs.<name>.Disabled setting is true, as the Functions host does', async () => {
    expect(host.functions.map((f) => f.name)).not.toContain('switchedOff');
    expect((await fetch(`${host.baseUrl}/api/switchedOff`)).status).toBe(404);
  });

  it('lists every registered function with its trigger', () => {
    const byName = Object.fromEntries(host.functions.map((f) => [f.name, f]));
    expect(byName.echo).toMatchObject({ trigger: 'http', detail: '/api/items/{id:int}/{*rest}', methods: ['GET', 'POST'] });
    expect(byName.defaultRoute).toMatchObject({ trigger: 'http', detail: '/api/defaultRoute' });
    expect(byName.work).toMatchObject({ trigger: 'queue', detail: workQueue });
    expect(byName.tick).toMatchObject({ trigger: 'timer', detail: '* * * * * *' });
    expect(recorded().hooks[0]).toBe('appStart');
  });

  it('routes HTTP requests by template, with the api prefix, parameters, query, headers, body and cookies', async () => {
    const response = await fetch(`${host.baseUrl}/api/ITEMS/42/a/b%20c?tag=x&tag=y`, {
      method: 'POST',
      headers: { 'x-test': 'hello', 'content-type': 'text/plain' },
      body: 'payload',
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-fixture')).toBe('yes');
    expect(response.headers.get('set-cookie')).toBe('session=abc; Path=/; HttpOnly; SameSite=Lax');
    expect(await response.json()).toEqual({
      method: 'POST',
      url: `${host.baseUrl}/api/ITEMS/42/a/b%20c?tag=x&tag=y`,
      params: { id: '42', rest: 'a/b c' },
      tag: 'x,y',
      header: 'hello',
      body: 'payload',
      functionName: 'echo',
    });
    expect(recorded().hooks).toEqual(expect.arrayContaining(['pre:echo', 'post:echo']));
  });

  it('answers 404 for unknown routes, unmet constraints, other methods and paths outside the prefix', async () => {
    for (const [method, path] of [
      ['GET', '/api/items/notanumber/x'],
      ['DELETE', '/api/items/1/x'],
      ['GET', '/api/nothing'],
      ['GET', '/items/1/x'],
    ] as const) {
      const response = await fetch(`${host.baseUrl}${path}`, { method });
      expect(response.status, `${method} ${path}`).toBe(404);
    }
    expect((await fetch(`${host.baseUrl}/api/defaultroute`)).status).toBe(200);
  });

  it('ignores authLevel "function" locally, as Core Tools does', async () => {
    const response = await fetch(`${host.baseUrl}/api/secured`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('no key needed locally');
  });

  it('fails an invocation that outlives host.json functionTimeout', async () => {
    const started = Date.now();
    const response = await fetch(`${host.baseUrl}/api/slow`);
    expect(response.status).toBe(500);
    expect(Date.now() - started).toBeLessThan(3900);
    expect(functionLog.some((l) => l.includes("Timeout value of 00:00:02 exceeded by function 'Functions.slow'"))).toBe(true);
  });

  it('turns a handler error into a 500 without details', async () => {
    const response = await fetch(`${host.baseUrl}/api/fail`);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('');
  });

  it('runs each invocation in a W3C trace context of its own', async () => {
    const traced = async () => {
      const response = await fetch(`${host.baseUrl}/api/traced`);
      expect(response.status).toBe(200);
      return (await response.json()) as { invocationId: string; traceParent: string | null };
    };
    const first = await traced();
    const second = await traced();
    for (const seen of [first, second]) expect(seen.traceParent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(second.invocationId).not.toBe(first.invocationId);
    // A new trace, not only a new parent span in the same one.
    expect(second.traceParent?.split('-')[1]).not.toBe(first.traceParent?.split('-')[1]);
  });

  it("runs the app's log hooks on an invocation's lines, with its context, and writes each line as the hooks left it", async () => {
    const response = await fetch(`${host.baseUrl}/api/traced`);
    // The third line's hook throws: as in the worker, the line is written anyway and the function goes on.
    expect(response.status).toBe(200);
    const { invocationId } = (await response.json()) as { invocationId: string };

    const seen = { invocationId, functionName: 'traced', category: 'user', preInvocation: 'seen' };
    expect(recorded().logHooks.filter((line) => line.invocationId === invocationId)).toEqual([
      { ...seen, level: 'information', message: `[log-hook] rewrite me ${invocationId}` },
      { ...seen, level: 'warning', message: '[log-hook] demote me' },
      { ...seen, level: 'information', message: '[log-hook] fail me' },
    ]);
    const written = functionEntries
      .filter((entry) => entry.invocationId === invocationId && entry.category === 'user')
      .map(({ functionName, level, message }) => ({ functionName, level, message }));
    expect(written).toEqual([
      { functionName: 'traced', level: 'information', message: `[log-hook] rewritten by the log hook ${invocationId}` },
      { functionName: 'traced', level: 'debug', message: '[log-hook] demote me' },
      { functionName: 'traced', level: 'information', message: '[log-hook] fail me' },
    ]);
    expect(functionLog.some((line) => line.includes('rewrite me'))).toBe(false);
  });

  it('delivers base64 JSON queue messages parsed, with trigger metadata', async () => {
    const queue = queues.getQueueClient(workQueue);
    await queue.create();
    await queue.sendMessage(encodeQueueMessage({ kind: 'job', n: 1 }));
    const seen = await waitFor(() => recorded().queue.find((q) => (q.payload as { n?: number }).n === 1));
    expect(seen.payload).toEqual({ kind: 'job', n: 1 });
    expect(seen.metadata?.dequeueCount).toBe(1);
    expect(seen.metadata?.queueTrigger).toEqual({ kind: 'job', n: 1 });
    expect(typeof seen.metadata?.id).toBe('string');
    expect(typeof seen.metadata?.popReceipt).toBe('string');
    expect(typeof seen.metadata?.insertionTime).toBe('string');
    await waitFor(async () => (await queue.getProperties()).approximateMessagesCount === 0 || undefined);
  });

  it('retries a failing message and moves it unchanged to <queue>-poison after maxDequeueCount attempts', async () => {
    const queue = queues.getQueueClient(flakyQueue);
    await queue.create();
    const text = encodeQueueMessage({ doomed: true });
    await queue.sendMessage(text);
    const poison = queues.getQueueClient(`${flakyQueue}-poison`);
    const poisoned = await waitFor(async () => {
      if (!(await poison.exists())) return undefined;
      const peeked = await poison.peekMessages();
      return peeked.peekedMessageItems[0];
    }, 20_000);
    expect(poisoned.messageText).toBe(text);
    const attempts = recorded().poisonAttempts;
    expect(attempts.map((a) => a.dequeueCount)).toEqual([1, 2, 3]);
    // host.json visibilityTimeout (1 s) passes between a failure and the next attempt.
    for (let i = 1; i < attempts.length; i++) {
      expect((attempts[i]?.at ?? 0) - (attempts[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(900);
    }
    // Like the Functions host, the copy reaches the poison queue before the original is deleted.
    await waitFor(async () => (await queue.getProperties()).approximateMessagesCount === 0);
    await waitFor(() => hostLog.some((l) => l.includes(`moved to "${flakyQueue}-poison" after 3 attempts`)));
  });

  it('moves an undecodable message and one past maxDequeueCount to poison without running the function', async () => {
    const work = queues.getQueueClient(workQueue);
    await work.createIfNotExists();
    const before = recorded().queue.length;
    await work.sendMessage('this is not base64!');
    const poisoned = await waitFor(async () => {
      const poison = queues.getQueueClient(`${workQueue}-poison`);
      if (!(await poison.exists())) return undefined;
      return (await poison.peekMessages()).peekedMessageItems.find((m) => m.messageText === 'this is not base64!');
    });
    expect(poisoned.dequeueCount).toBe(0);
    expect(recorded().queue.length).toBe(before);

    const latePoison = await waitFor(async () => {
      const poison = queues.getQueueClient(`${lateQueue}-poison`);
      return (await poison.exists()) ? (await poison.peekMessages()).peekedMessageItems[0] : undefined;
    });
    expect(JSON.parse(Buffer.from(latePoison.messageText, 'base64').toString())).toEqual({ abandoned: true });
    expect(recorded().late).toBe(0);
    expect(hostLog.filter((l) => l.includes('without running the function'))).toHaveLength(2);
  });

  it('runs up to batchSize + newBatchThreshold messages of one queue at once', async () => {
    const queue = queues.getQueueClient(parallelQueue);
    await queue.create();
    await Promise.all(Array.from({ length: 12 }, (_, n) => queue.sendMessage(encodeQueueMessage({ n }))));
    await waitFor(() => recorded().parallel.done === 12, 20_000);
    // batchSize 4, newBatchThreshold 2: a new batch comes when 2 or fewer are running.
    expect(recorded().parallel.maxInFlight).toBeGreaterThan(1);
    expect(recorded().parallel.maxInFlight).toBeLessThanOrEqual(6);
  });

  it('runs timers on their NCRONTAB schedule without overlapping runs', async () => {
    const ticks = await waitFor(() => (recorded().ticks.length >= 3 ? recorded().ticks : undefined), 15_000);
    for (let i = 1; i < ticks.length; i++) {
      const previous = ticks[i - 1];
      const current = ticks[i];
      if (!previous || !current) throw new Error('missing tick');
      expect(current.start).toBeGreaterThanOrEqual(previous.end);
    }
    expect(ticks.every((t) => !t.isPastDue)).toBe(true);
  });

  it('runs a monitored timer whose occurrence was missed while the host was down, marked past due', async () => {
    const runs = await waitFor(() => (recorded().monitored.length > 0 ? recorded().monitored : undefined));
    expect(runs).toEqual([{ isPastDue: true, last: '2020-01-01T00:00:00.000Z' }]);
    const status = BlobServiceClient.fromConnectionString(connectionString)
      .getContainerClient('azure-webjobs-hosts')
      .getBlockBlobClient('timers/fixture/Host.Functions.monitored/status');
    const saved = await waitFor(async () => {
      const body = JSON.parse((await status.downloadToBuffer()).toString()) as { Last: string; Next: string };
      return body.Last === '2021-01-01T00:00:00.000Z' ? body : undefined;
    });
    expect(new Date(saved.Next).getUTCMonth()).toBe(0);
    expect(Date.parse(saved.Next)).toBeGreaterThan(Date.now());
  });
});
