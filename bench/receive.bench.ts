import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, inject, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../local/azurite.js';
import type { Services } from '../src/composition.js';
import type { Connection } from '../src/domain/connection.js';
import type { Mailbox } from '../src/domain/mailbox.js';
import type { WebhookEndpoint } from '../src/domain/webhook-endpoint.js';
import { newId } from '../src/domain/ids.js';
import { readHostSettings } from '../local/host/host-json.js';
import { Pop3Client } from '../src/mail/pop3-client.js';
import { keys } from '../src/store/repositories.js';
import { QUEUES } from '../src/store/storage-layout.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../test/support/connect-environment.js';
import { mailboxOf, receiveTestKit, type ReceiveTestKit } from '../test/support/receive-environment.js';
import { sendTestKit, type SendTestKit } from '../test/support/send-environment.js';
import { commandsBetween, imapCommandCountsOf, mailbox as freshAddress, mailHostSettings } from '../test/support/test-mail-server.js';
import { waitFor } from '../test/support/wait.js';
import { startWebhookReceiver, type WebhookReceiver } from '../test/support/webhook-receiver.js';
import { NetworkErrorCounter, RequestCounter, SlowestRequests, mean, median, ms, percentile, printTable, processTreeCpuMs, storageHostPorts, tableHostPort, writeResults } from './receive-measures.js';

/**
 * Receiving mail, measured end to end on this machine: the real function app in the local host on
 * Azurite, the sandbox Graph, the real Dovecot. Nothing here asserts anything about time.
 *
 * 1. Inbound latency, from the moment a message is injected into the mailbox to the moment the
 *    vendor's webhook endpoint has the message.received event, for the two Graph paths:
 *    - notifications: the mailbox's first look subscribed; the sandbox posts a change notification
 *      to POST /api/graph/notifications, which queues it (graph-notification); that queue's
 *      function fetches and ingests the message, which records the event and queues its delivery
 *      (deliver-event); that queue's function POSTs the webhook.
 *    - polling (delta): a mailbox whose subscription could not be made (its looks are told there
 *      is no notification URL, as with GRAPH_NOTIFICATIONS=off). The real timer looks every 60 s,
 *      too slow to sample here, so a timer is modelled: the look runs in this process every
 *      TICK_MS at fixed times, and each message is injected a stratified time (spread evenly over
 *      one tick) before the look that will find it, so the wait for the look averages TICK_MS / 2
 *      as it would for mail that arrives at random. From the look on, the path is the real one
 *      (delta, ingest, record, deliver-event queue, webhook). The bench also gives what the real
 *      60 s timer would: 30 s (half the interval) + the poll-mailbox queue hop that the modelled
 *      timer skips (the mean deliver-event queue wait measured here stands in for it: same kind of
 *      listener, same settings) + the measured mean from the look to the webhook.
 *    Queue hops dominate. The local host's queue listener (local/host/queue-listener.ts), like the
 *    Functions host, polls an empty queue with exponential back-off from 100 ms up to host.json
 *    maxPollingInterval (2 s), and goes back to 100 ms after it found a message. In a quiet app,
 *    which is the case measured, each hop therefore waits 0–2 s (about 1 s on average) before the
 *    function even starts; in a busy one about 0.1 s. Every message here is injected after at least
 *    3.2 s of quiet (derived from host.json: the listeners are then at their 2 s cadence); a
 *    notification at a phase stratified over those 2 s, so its first queue wait is uniform. The
 *    two paths alternate, message by message, so drift hits both alike; one message per path
 *    warms up first. Each sample is split at timestamps the bench notes by wrapping three of the
 *    process's service functions (queue publish, notification handling, event delivery) without
 *    changing what they do.
 *    The sandbox Graph sends a notification 50 ms after the change (Microsoft: usually seconds,
 *    no guarantee), and answers in milliseconds; against Microsoft both paths take longer by that.
 *
 * 2. What one look at an idle mailbox costs (IMAP, and POP3), against the least any poller pays
 *    for the same answer from the same server with the same token: a bare imapflow session
 *    (connect, XOAUTH2, STATUS INBOX, LOGOUT), or for POP3 a bare session of the connector's own
 *    POP3 client (XOAUTH2, STAT, QUIT). Both sides run over the same mailboxes with CONCURRENCY
 *    sessions at once (host.json's queue batchSize), in alternating rounds after a warm-up pass; the
 *    figures per mailbox are a pass's totals divided by its mailboxes, the ratio is the median over
 *    rounds. Counted: wall time, this process's CPU (process.cpuUsage: the connector's code, its
 *    Table Storage and token calls, imapflow), Dovecot's CPU (all its processes, from /proc),
 *    IMAP commands as Dovecot counts them (after login: CAPABILITY and AUTHENTICATE are not in its
 *    stats), and requests to Azurite's Table service. Azurite's own CPU is not measured.
 */

const mailServer = inject('mailServer');
const GRAPH_CUSTOMER = 'bench-graph';
const IMAP_CUSTOMER = 'bench-imap';
const POP3_CUSTOMER = 'bench-pop3';

/** Measured messages per path, and unmeasured ones first (tokens, TLS sessions, JIT). */
const MESSAGES = 8;
const WARM_UP_MESSAGES = 1;
/** The modelled poll timer. */
const TICK_MS = 2_000;
/** The queue listener's shortest wait (local/host/queue-listener.ts), where its back-off starts. */
const LISTENER_MIN_POLL_MS = 100;
/** How long a message may take to reach the webhook before the bench fails: far beyond any figure, so a rare stall is measured, not fatal. */
const WEBHOOK_WAIT_MS = 120_000;
/** The real poll timer's period. */
const REAL_INTERVAL_MS = 60_000;

const IMAP_MAILBOXES = 200;
const POP3_MAILBOXES = 50;
const CONCURRENCY = 16;
const ROUNDS = 3;
/** The baseline's warm-up pass covers this many mailboxes (the connector's first pass covers all: it sets their starting points). */
const BASELINE_WARM_UP = 50;

let env: ConnectEnvironment;
let kit: SendTestKit;
let directory: Directory;
let receiver: WebhookReceiver;
let tableRequests: RequestCounter;
let storageErrors: NetworkErrorCounter;
let slowStorage: SlowestRequests;
let defaultCas: string[];
/** host.json maxPollingInterval, and the quiet after which an idle listener has backed off to it. */
let listener: { maxPollingIntervalMs: number; quietMs: number };
const marks = { published: [] as { queue: string; at: number; payload: unknown }[], notificationsHandled: [] as number[], deliveries: [] as { eventId: string; at: number }[] };
const results: Record<string, unknown> = {};
const tables: { title: string; header: string[]; rows: string[][] }[] = [];

let azuriteInstance: RunningAzurite | undefined;

beforeAll(async () => {
  if (!mailServer) warnLoudly('the mail server cannot run on this machine: the IMAP and POP3 cost figures are skipped; latency is measured');
  defaultCas = tls.getCACertificates('default');
  listener = idleListener((await readHostSettings(fileURLToPath(new URL('..', import.meta.url)))).queues.maxPollingIntervalMs);
  azuriteInstance = await startAzuriteOnFreePorts();
  const storageConnectionString = azuriteInstance.connectionString;
  env = await startConnectEnvironment({
    storageConnectionString,
    env: { ALLOW_PRIVATE_NETWORK_URLS: 'true', ...(mailServer && mailHostSettings()) },
    ...(mailServer && { signingKey: mailServer.sandboxSigningKey }),
  });
  if (mailServer) tls.setDefaultCACertificates([...tls.getCACertificates('default'), mailServer.caPem]);
  // The endpoint first: the process caches the endpoint list for 30 s from the first event on.
  receiver = await startWebhookReceiver({ secrets: [] });
  const endpoint: WebhookEndpoint = { id: newId('whk'), url: `${receiver.url}/events`, customerScope: GRAPH_CUSTOMER, eventTypes: ['message.received'], enabled: true, createdAt: new Date().toISOString() };
  receiver.secrets = [await env.services.webhookSecrets.createEndpointSecret(endpoint.id)];
  await env.services.repositories.webhookEndpoints.create(keys.webhookEndpoint(endpoint.id), endpoint);
  noteTimestamps(env.services);
  tableRequests = new RequestCounter(tableHostPort(storageConnectionString));
  storageErrors = new NetworkErrorCounter(storageHostPorts(storageConnectionString));
  slowStorage = new SlowestRequests(storageHostPorts(storageConnectionString));
  kit = await sendTestKit(env);
  directory = await env.createDirectory('Contoso Bench', mailServer?.tenants[0]);
  await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
}, 120_000);

afterAll(async () => {
  for (const table of tables) printTable(table.title, table.header, table.rows);
  await writeResults('receive', results);
  tableRequests.close();
  storageErrors.close();
  slowStorage.close();
  await receiver.close();
  await env.stop();
  await azuriteInstance?.stop();
  tls.setDefaultCACertificates(defaultCas);
});

/**
 * An empty queue is polled after 100 ms, 200 ms, 400 ms … up to maxPollingInterval: once the
 * waits so far add up (3.1 s for 2 s), it looks every maxPollingInterval. 100 ms more for the
 * receive calls in between.
 */
function idleListener(maxPollingIntervalMs: number): { maxPollingIntervalMs: number; quietMs: number } {
  let quietMs = LISTENER_MIN_POLL_MS;
  for (let wait = LISTENER_MIN_POLL_MS; wait < maxPollingIntervalMs; wait *= 2) quietMs += wait;
  return { maxPollingIntervalMs, quietMs };
}

/**
 * Timestamps at the seams of the pipeline, from the process's own services (which the local
 * host's functions use): when a queue message was published, when the graph-notification
 * function began handling a batch, when the deliver-event function began a delivery.
 */
function noteTimestamps(services: Services): void {
  const queues = services.queues;
  const publish = queues.publish.bind(queues);
  queues.publish = async (queue, payload, options) => {
    const published = await publish(queue, payload, options);
    marks.published.push({ queue, at: Date.now(), payload });
    return published;
  };
  const receiving = services.receiving;
  if (!receiving) throw new Error('receiving is not configured');
  const handle = receiving.handleNotifications.bind(receiving);
  receiving.handleNotifications = (batch) => {
    marks.notificationsHandled.push(Date.now());
    return handle(batch);
  };
  const deliver = services.deliverEvent.bind(services);
  services.deliverEvent = (message) => {
    marks.deliveries.push({ eventId: message.eventId, at: Date.now() });
    return deliver(message);
  };
}

type Path = 'notifications' | 'polling';

interface Sample {
  path: Path;
  injectedAt: number;
  /** notifications: the change notification is in the graph-notification queue. */
  notificationQueuedAt?: number;
  /** notifications: the graph-notification function starts. */
  notificationHandledAt?: number;
  /** polling: the look that found the message starts. */
  lookStartedAt?: number;
  /** The event is recorded and its delivery is in the deliver-event queue. */
  deliveryQueuedAt: number;
  /** The deliver-event function starts. */
  deliveryStartedAt: number;
  /** The webhook endpoint has the whole request. */
  deliveredAt: number;
}

/** The modelled poll timer: a look at the mailbox every TICK_MS, at fixed times. */
function startTicker(polling: ReceiveTestKit, watched: Mailbox) {
  const origin = Date.now();
  const looks: number[] = [];
  /** How long each look took: a rare slow one shows here rather than only in one sample's total. */
  const durations: number[] = [];
  const failures: unknown[] = [];
  const stop = new AbortController();
  const running = (async () => {
    for (;;) {
      const next = origin + Math.ceil((Date.now() - origin + 1) / TICK_MS) * TICK_MS;
      await sleep(next - Date.now());
      if (stop.signal.aborted) break;
      const startedAt = Date.now();
      looks.push(startedAt);
      const outcome = await polling.poll(watched);
      durations.push(Date.now() - startedAt);
      if (outcome.outcome !== 'polled' || outcome.mode !== 'polling') failures.push(outcome);
    }
  })();
  return {
    origin,
    looks,
    durations,
    failures,
    async stop() {
      stop.abort();
      await running;
    },
  };
}

it('inbound latency: Graph change notifications against delta polling on a modelled timer', async () => {
  const notified = await graphMailbox('notified');
  const polled = await graphMailbox('polled');
  const receive = receiveTestKit(env);
  const polling = receiveTestKit(env, { notificationUrls: undefined });
  const first = await receive.poll(notified.mailbox);
  if (first.outcome !== 'polled' || first.mode !== 'notifications') throw new Error(`the notified mailbox did not subscribe: ${JSON.stringify(first)}`);
  const firstPolled = await polling.poll(polled.mailbox);
  if (firstPolled.outcome !== 'polled' || firstPolled.mode !== 'polling') throw new Error(`the polled mailbox is not polling: ${JSON.stringify(firstPolled)}`);

  const ticker = startTicker(polling, polled.mailbox);
  // Phases spread evenly over a listener period (and over a tick), in a shuffled order.
  const phases = (count: number, period: number) => shuffle(Array.from({ length: count }, (_, i) => ((i + 0.5) / count) * period));
  const notificationPhases = [...phases(WARM_UP_MESSAGES, listener.maxPollingIntervalMs), ...phases(MESSAGES, listener.maxPollingIntervalMs)];
  const tickPhases = [...phases(WARM_UP_MESSAGES, TICK_MS), ...phases(MESSAGES, TICK_MS)];
  const samples: Sample[] = [];
  let quietSince = Date.now();
  const started = Date.now();
  const storageErrorsBefore = storageErrors.snapshot();
  slowStorage.take();
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  try {
    for (let i = 0; i < WARM_UP_MESSAGES + MESSAGES; i++) {
      for (const path of ['notifications', 'polling'] as const) {
        let at: number;
        if (path === 'notifications') {
          at = quietSince + listener.quietMs + (notificationPhases[i] ?? 0);
        } else {
          // The look that will find it is the first tick after the quiet (nothing before it touches a
          // queue); the message arrives a stratified time before that tick.
          const tick = ticker.origin + Math.ceil((quietSince + listener.quietMs - ticker.origin) / TICK_MS) * TICK_MS;
          at = tick - (tickPhases[i] ?? 0);
        }
        await sleep(at - Date.now());
        const sample = await injectAndFollow(path, path === 'notifications' ? notified.address : polled.address, ticker.looks);
        quietSince = Date.now();
        if (i >= WARM_UP_MESSAGES) samples.push(sample);
      }
    }
  } finally {
    await ticker.stop();
  }
  if (ticker.failures.length > 0) throw new Error(`modelled timer looks failed: ${JSON.stringify(ticker.failures.slice(0, 3))}`);
  const after = storageErrors.snapshot();
  const failedOnTheNetwork: Record<string, number> = {};
  for (const [key, n] of Object.entries(after)) if (n > (storageErrorsBefore[key] ?? 0)) failedOnTheNetwork[key] = n - (storageErrorsBefore[key] ?? 0);
  loopDelay.disable();
  const stalls = { slowestStorageRequests: slowStorage.take().map((r) => ({ ...r, atSecond: (r.at - started) / 1000 })), eventLoopDelayMaxMs: loopDelay.max / 1e6 };
  reportLatency(samples, Date.now() - started, ticker.durations, failedOnTheNetwork, stalls);
});

async function graphMailbox(name: string): Promise<{ connection: Connection; mailbox: Mailbox; address: string }> {
  const address = `${name}-${randomUUID().slice(0, 8)}@${directory.domain}`;
  await env.sandbox.control.createUser(directory.tenant.id, { userPrincipalName: address, displayName: name });
  const connection = await kit.application(GRAPH_CUSTOMER, directory.tenant.id, { send: 'graph', receive: 'graph' }, [address]);
  return { connection, mailbox: await mailboxOf(env, connection, address), address };
}

async function injectAndFollow(path: Path, address: string, looks: readonly number[]): Promise<Sample> {
  const internetMessageId = `<${randomUUID()}@customer.example>`;
  const injectedAt = Date.now();
  await env.sandbox.control.injectMessage({ address, from: 'ana@customer.example', subject: `bench ${path}`, text: 'How long did this take?', internetMessageId });
  const webhook = await waitFor(() => receiver.requests.find((request) => request.body.includes(internetMessageId)), WEBHOOK_WAIT_MS);
  const eventId = (JSON.parse(webhook.body) as { id: string }).id;
  const deliveryQueuedAt = marks.published.find((mark) => mark.queue === QUEUES.deliverEvent && (mark.payload as { eventId?: string }).eventId === eventId)?.at;
  const deliveryStartedAt = marks.deliveries.find((mark) => mark.eventId === eventId)?.at;
  if (deliveryQueuedAt === undefined || deliveryStartedAt === undefined) throw new Error(`no delivery marks for ${eventId}`);
  const sample: Sample = { path, injectedAt, deliveryQueuedAt, deliveryStartedAt, deliveredAt: webhook.receivedAt };
  if (path === 'notifications') {
    sample.notificationQueuedAt = marks.published.find((mark) => mark.queue === QUEUES.graphNotification && mark.at >= injectedAt && mark.at <= deliveryQueuedAt)?.at;
    sample.notificationHandledAt = marks.notificationsHandled.find((at) => at >= (sample.notificationQueuedAt ?? injectedAt) && at <= deliveryQueuedAt);
  } else {
    sample.lookStartedAt = looks.filter((at) => at <= deliveryQueuedAt).at(-1);
  }
  return sample;
}

function reportLatency(
  samples: Sample[],
  elapsedMs: number,
  lookDurations: number[],
  storageNetworkErrors: Record<string, number>,
  stalls: { slowestStorageRequests: { ms: number; atSecond: number; request: string; outcome: string }[]; eventLoopDelayMaxMs: number },
): void {
  const of = (path: Path) => samples.filter((sample) => sample.path === path);
  const total = (sample: Sample) => sample.deliveredAt - sample.injectedAt;
  const segment = (list: Sample[], from: (s: Sample) => number | undefined, to: (s: Sample) => number | undefined) =>
    list.map((s) => (to(s) ?? Number.NaN) - (from(s) ?? Number.NaN));
  const summary = (values: number[]) => ({ p50: percentile(values, 50), p95: percentile(values, 95), mean: mean(values), min: Math.min(...values), max: Math.max(...values) });

  const notifications = of('notifications');
  const polling = of('polling');
  const segments = {
    notifications: {
      'Graph notifies, the endpoint queues it': summary(segment(notifications, (s) => s.injectedAt, (s) => s.notificationQueuedAt)),
      'graph-notification queue wait': summary(segment(notifications, (s) => s.notificationQueuedAt, (s) => s.notificationHandledAt)),
      'fetch, ingest, record the event': summary(segment(notifications, (s) => s.notificationHandledAt, (s) => s.deliveryQueuedAt)),
      'deliver-event queue wait': summary(segment(notifications, (s) => s.deliveryQueuedAt, (s) => s.deliveryStartedAt)),
      'webhook POST': summary(segment(notifications, (s) => s.deliveryStartedAt, (s) => s.deliveredAt)),
    },
    polling: {
      'wait for the next look (modelled timer)': summary(segment(polling, (s) => s.injectedAt, (s) => s.lookStartedAt)),
      'look (delta), ingest, record the event': summary(segment(polling, (s) => s.lookStartedAt, (s) => s.deliveryQueuedAt)),
      'deliver-event queue wait': summary(segment(polling, (s) => s.deliveryQueuedAt, (s) => s.deliveryStartedAt)),
      'webhook POST': summary(segment(polling, (s) => s.deliveryStartedAt, (s) => s.deliveredAt)),
    },
  };
  const notificationTotal = summary(notifications.map(total));
  const pollingTotal = summary(polling.map(total));
  const lookToWebhook = summary(segment(polling, (s) => s.lookStartedAt, (s) => s.deliveredAt));
  const queueWaits = [...segment(notifications, (s) => s.deliveryQueuedAt, (s) => s.deliveryStartedAt), ...segment(polling, (s) => s.deliveryQueuedAt, (s) => s.deliveryStartedAt)];
  // The real timer: half its period on average, the poll-mailbox queue hop, then what follows the look.
  const expectedReal = REAL_INTERVAL_MS / 2 + mean(queueWaits) + lookToWebhook.mean;

  results.latency = {
    method: {
      messagesPerPath: MESSAGES,
      warmUpMessagesPerPath: WARM_UP_MESSAGES,
      quietBeforeEachMs: listener.quietMs,
      modelledTimerTickMs: TICK_MS,
      hostMaxPollingIntervalMs: listener.maxPollingIntervalMs,
      elapsedMs,
    },
    notifications: { injectToWebhookMs: notificationTotal, segmentsMs: segments.notifications },
    polling: { injectToWebhookMs: pollingTotal, lookToWebhookMs: lookToWebhook, segmentsMs: segments.polling },
    ratioNotificationsToPollingP50: notificationTotal.p50 / pollingTotal.p50,
    modelledTimerLooksMs: { count: lookDurations.length, ...summary(lookDurations) },
    storageNetworkErrors,
    stalls,
    realTimer: {
      intervalMs: REAL_INTERVAL_MS,
      expectedMeanInjectToWebhookMs: expectedReal,
      formula: 'interval / 2 + mean deliver-event queue wait (stands in for the poll-mailbox hop) + mean look → webhook',
      ratioNotificationsMeanToExpected: notificationTotal.mean / expectedReal,
    },
  };
  const row = (name: string, s: ReturnType<typeof summary>) => [name, ms(s.p50), ms(s.p95), ms(s.mean), `${ms(s.min)} – ${ms(s.max)}`];
  tables.push({
    title: `Inbound latency, injection → webhook (${String(MESSAGES)} messages per path, each after ${String(listener.quietMs)} ms of quiet)`,
    header: ['path / segment', 'p50', 'p95', 'mean', 'range'],
    rows: [
      row('notifications', notificationTotal),
      ...Object.entries(segments.notifications).map(([name, s]) => row(`  ${name}`, s)),
      row(`polling, look every ${String(TICK_MS / 1000)} s`, pollingTotal),
      ...Object.entries(segments.polling).map(([name, s]) => row(`  ${name}`, s)),
      row(`every look of the modelled timer (${String(lookDurations.length)}, most find nothing)`, summary(lookDurations)),
      [
        'requests to Azurite that failed on the network (retried by the SDK)',
        Object.keys(storageNetworkErrors).length === 0 ? 'none' : Object.entries(storageNetworkErrors).map(([key, n]) => `${key}: ${String(n)}`).join(', '),
        '',
        '',
        '',
      ],
      ['slowest request to Azurite (at second)', ...stalls.slowestStorageRequests.slice(0, 1).map((r) => `${ms(r.ms)}: ${r.request} → ${r.outcome} (at ${r.atSecond.toFixed(0)} s)`), '', '', ''].slice(0, 5),
      ['longest event-loop delay of this process', ms(stalls.eventLoopDelayMaxMs), '', '', ''],
      ['notifications / polling (p50)', `${(notificationTotal.p50 / pollingTotal.p50).toFixed(2)}×`, '', '', ''],
      [`polling, real ${String(REAL_INTERVAL_MS / 1000)} s timer (expected)`, '', '', ms(expectedReal), ''],
      ['notifications / real timer (mean)', '', '', `${(notificationTotal.mean / expectedReal).toFixed(3)}×`, ''],
    ],
  });
}

interface PassFigures {
  wallMs: number;
  cpuMs: number;
  serverCpuMs: number;
  tableRequests: Record<string, number>;
  commands: Record<string, number>;
}

interface Pass {
  label: string;
  run(index: number): Promise<void>;
}

/**
 * Alternating rounds of the connector's looks and the baseline's sessions over the same
 * mailboxes, CONCURRENCY at a time, after one warm-up pass of each. `commandCounts` reads what
 * the server counted once every session of a pass has logged out (IMAP only).
 */
async function comparePasses(count: number, baseline: Pass, subject: Pass, commandCounts?: (loggedOut: readonly number[]) => Promise<Map<string, Record<string, number>>>) {
  const dovecotPid = Number((await readFile(join(dirname(dirname(mailServerOrThrow().dovecotLogPath)), 'run', 'dovecot.pid'), 'utf8')).trim());
  // Sessions that ended with a LOGOUT, per mailbox index: the server's counts are read once it counted them all.
  const loggedOut = Array.from({ length: count }, () => 0);
  const pass = async (side: Pass, mailboxes = count): Promise<PassFigures> => {
    const before = commandCounts && (await commandCounts(loggedOut));
    const serverBefore = await processTreeCpuMs(dovecotPid);
    const tableBefore = tableRequests.snapshot();
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    await pool(mailboxes, CONCURRENCY, (index) => side.run(index));
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const used = process.cpuUsage(cpu);
    const tableCount = difference(tableBefore, tableRequests.snapshot());
    for (let index = 0; index < mailboxes; index++) loggedOut[index] = (loggedOut[index] ?? 0) + 1;
    const after = commandCounts && (await commandCounts(loggedOut));
    // Let the master reap the last sessions' processes, so their CPU is in its children's total.
    await sleep(300);
    const serverCpuMs = (await processTreeCpuMs(dovecotPid)) - serverBefore;
    const commands: Record<string, number> = {};
    if (before && after) {
      for (const [user, counts] of after) {
        for (const [command, added] of Object.entries(commandsBetween(before.get(user) ?? {}, counts))) commands[command] = (commands[command] ?? 0) + added;
      }
    }
    return { wallMs, cpuMs: (used.user + used.system) / 1000, serverCpuMs, tableRequests: tableCount, commands: commandCounts ? commands : {} };
  };
  // The first pass of the connector also sets each mailbox's starting point; neither warm-up counts.
  await pass(subject, count);
  await pass(baseline, Math.min(count, BASELINE_WARM_UP));
  const rounds: { baseline: PassFigures; subject: PassFigures }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      const b = await pass(baseline);
      rounds.push({ baseline: b, subject: await pass(subject) });
    } else {
      const s = await pass(subject);
      rounds.push({ subject: s, baseline: await pass(baseline) });
    }
  }
  const per = (figures: PassFigures[], take: (f: PassFigures) => number) => median(figures.map(take)) / count;
  const perKey = (figures: PassFigures[], take: (f: PassFigures) => Record<string, number>) => {
    const perMailbox: Record<string, number> = {};
    for (const key of new Set(figures.flatMap((f) => Object.keys(take(f))))) perMailbox[key] = median(figures.map((f) => take(f)[key] ?? 0)) / count;
    return perMailbox;
  };
  const side = (pick: 'baseline' | 'subject') => {
    const figures = rounds.map((r) => r[pick]);
    return {
      label: (pick === 'baseline' ? baseline : subject).label,
      wallMsPerMailbox: per(figures, (f) => f.wallMs),
      cpuMsPerMailbox: per(figures, (f) => f.cpuMs),
      serverCpuMsPerMailbox: per(figures, (f) => f.serverCpuMs),
      tableRequestsPerMailbox: perKey(figures, (f) => f.tableRequests),
      ...(commandCounts && { imapCommandsPerMailbox: perKey(figures, (f) => f.commands) }),
    };
  };
  return {
    mailboxes: count,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    baseline: side('baseline'),
    connector: side('subject'),
    ratio: {
      wall: median(rounds.map((r) => r.subject.wallMs / r.baseline.wallMs)),
      cpu: median(rounds.map((r) => r.subject.cpuMs / r.baseline.cpuMs)),
      serverCpu: median(rounds.map((r) => r.subject.serverCpuMs / r.baseline.serverCpuMs)),
    },
  };
}

function costRows(name: string, figures: Awaited<ReturnType<typeof comparePasses>>): string[][] {
  const counts = (c: Record<string, number>) =>
    Object.entries(c).filter(([, n]) => n > 0).sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `${key} ${n.toFixed(2).replace(/\.00$/, '')}`).join(', ');
  const commands = (c: Record<string, number> | undefined) => (c === undefined ? 'not counted' : counts(c));
  const requests = (c: Record<string, number>) => {
    const byMethod: Record<string, number> = {};
    for (const [key, n] of Object.entries(c)) byMethod[key.split(' ')[0] ?? key] = (byMethod[key.split(' ')[0] ?? key] ?? 0) + n;
    const total = Object.values(c).reduce((sum, n) => sum + n, 0);
    return total === 0 ? '0' : `${total.toFixed(2).replace(/\.00$/, '')} (${counts(byMethod)})`;
  };
  const row = (label: string, side: typeof figures.baseline) => [
    label,
    ms(side.wallMsPerMailbox, 2),
    ms(side.cpuMsPerMailbox, 2),
    ms(side.serverCpuMsPerMailbox, 2),
    requests(side.tableRequestsPerMailbox),
    commands(side.imapCommandsPerMailbox),
  ];
  return [
    row(`${name}: ${figures.connector.label}`, figures.connector),
    row(`${name}: ${figures.baseline.label}`, figures.baseline),
    [`${name}: connector / baseline`, `${figures.ratio.wall.toFixed(2)}×`, `${figures.ratio.cpu.toFixed(2)}×`, `${figures.ratio.serverCpu.toFixed(2)}×`, '', ''],
  ];
}

const COST_HEADER = ['look at one idle mailbox', 'wall', 'CPU (this process)', 'CPU (Dovecot)', 'table requests', 'IMAP commands at the server (after login)'];

// bench/poll.bench.ts measures the same at 1,000 mailboxes; this one runs only when asked
// (RECEIVE_BENCH_IMAP=1), to keep npm run bench under 10 minutes.
it.skipIf(process.env.RECEIVE_BENCH_IMAP !== '1')('an idle IMAP mailbox: one look against a bare STATUS session', async (context) => {
  if (!mailServer) {
    results.imapIdleLook = { skipped: 'the mail server cannot run on this machine' };
    return context.skip('the mail server cannot run on this machine');
  }
  // Short names: Dovecot cuts the user part of a stats metric's name after 31 characters, and a cut name is not found.
  const addresses = Array.from({ length: IMAP_MAILBOXES }, (_, index) => freshAddress(`bi${String(index)}`));
  const connection = await kit.application(IMAP_CUSTOMER, directory.tenant.id, { send: 'smtp', receive: 'imap' }, addresses);
  const watched = await env.services.repositories.mailboxes.all(IMAP_CUSTOMER, { prefix: keys.mailboxesOf(connection.id) });
  const receive = receiveTestKit(env);
  const { accessToken, server } = await mailServerAccess(connection);
  const figures = await comparePasses(
    addresses.length,
    {
      label: 'imapflow: connect, XOAUTH2, STATUS INBOX, LOGOUT',
      async run(index) {
        const client = new ImapFlow({ host: server.host, port: server.ports.imaps, secure: true, tls: { ca: server.caPem }, auth: { user: addresses[index] ?? '', accessToken }, logger: false, disableAutoIdle: true });
        client.on('error', () => undefined);
        await client.connect();
        await client.status('INBOX', { uidNext: true, uidValidity: true, messages: true, highestModseq: true });
        await client.logout();
      },
    },
    { label: 'connector: poll-mailbox look', run: (index) => look(receive, watched[index]) },
    (loggedOut) => imapCountsOnceLoggedOut(addresses, loggedOut),
  );
  results.imapIdleLook = figures;
  tables.push({ title: `One look at an idle mailbox (${String(IMAP_MAILBOXES)} IMAP mailboxes, ${String(CONCURRENCY)} at once, median of ${String(ROUNDS)} rounds)`, header: COST_HEADER, rows: costRows('IMAP', figures) });
});

it('an idle POP3 maildrop: one look against a bare STAT session', async (context) => {
  if (!mailServer) {
    results.pop3IdleLook = { skipped: 'the mail server cannot run on this machine' };
    return context.skip('the mail server cannot run on this machine');
  }
  const addresses = Array.from({ length: POP3_MAILBOXES }, (_, index) => freshAddress(`bp${String(index)}`));
  const connection = await kit.application(POP3_CUSTOMER, directory.tenant.id, { send: 'smtp', receive: 'pop3' }, addresses);
  const watched = await env.services.repositories.mailboxes.all(POP3_CUSTOMER, { prefix: keys.mailboxesOf(connection.id) });
  const receive = receiveTestKit(env);
  const { accessToken, server } = await mailServerAccess(connection);
  const figures = await comparePasses(
    addresses.length,
    {
      label: 'POP3 client: connect, XOAUTH2, STAT, QUIT',
      async run(index) {
        const client = await Pop3Client.connect({ host: server.host, port: server.ports.pop3s, tls: { ca: server.caPem } });
        await client.authenticateXoauth2(addresses[index] ?? '', accessToken);
        await client.stat();
        await client.quit();
      },
    },
    { label: 'connector: poll-mailbox look', run: (index) => look(receive, watched[index]) },
  );
  results.pop3IdleLook = figures;
  tables.push({ title: `One look at an idle maildrop (${String(POP3_MAILBOXES)} POP3 mailboxes, ${String(CONCURRENCY)} at once, median of ${String(ROUNDS)} rounds)`, header: COST_HEADER, rows: costRows('POP3', figures) });
});

/** imapCommandCountsOf, once Dovecot counted `loggedOut[i]` LOGOUTs of `addresses[i]` (a session reports its commands a moment after it ends). */
async function imapCountsOnceLoggedOut(addresses: readonly string[], loggedOut: readonly number[]): Promise<Map<string, Record<string, number>>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const counts = await imapCommandCountsOf(addresses);
    if (addresses.every((address, index) => (counts.get(address)?.LOGOUT ?? 0) >= (loggedOut[index] ?? 0))) return counts;
    if (Date.now() > deadline) throw new Error('Dovecot did not count every session of the pass within 10 s');
    await sleep(50);
  }
}

async function look(receive: ReceiveTestKit, watched: Mailbox | undefined): Promise<void> {
  if (!watched) throw new Error('no such mailbox');
  const outcome = await receive.poll(watched);
  if (outcome.outcome !== 'polled' || outcome.found !== 0) throw new Error(`a look at an idle mailbox gave ${JSON.stringify(outcome)}`);
}

/** The app-only token the connector itself uses for the mailboxes (cached by msal, as for its looks). */
async function mailServerAccess(connection: Connection) {
  const identity = env.identity;
  const accessToken = (await identity.accessTokens.getAccessToken(connection, 'outlook')).token;
  return { accessToken, server: mailServerOrThrow() };
}

function mailServerOrThrow() {
  if (!mailServer) throw new Error('the mail server is not running');
  return mailServer;
}

/** What was counted from `before` to `after`, by key; keys that did not change are left out. */
function difference(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([key, n]): [string, number] => [key, n - (before[key] ?? 0)]).filter(([, n]) => n !== 0));
}

/** Runs task(0 … count-1), `concurrency` at a time. */
async function pool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, durationMs)));
}

function shuffle<T>(values: T[]): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [values[i], values[j]] = [values[j] as T, values[i] as T];
  }
  return values;
}

function warnLoudly(message: string): void {
  const border = `+${'-'.repeat(message.length + 2)}+`;
  console.warn(['', border, `| ${message} |`, border, ''].join('\n'));
}
