import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import type { InvocationContext } from '@azure/functions';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, inject, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../local/azurite.js';
import type { Connection } from '../src/domain/connection.js';
import { messageRequestSchema } from '../src/domain/outbound-message.js';
import { DEFAULT_GOVERNOR_LIMITS, RATE_WINDOW_MS } from '../src/domain/send-governor.js';
import { sendMailHandler } from '../src/sending/handlers.js';
import type { SendOutcome } from '../src/sending/send-message.js';
import type { SendJob } from '../src/sending/submit-message.js';
import { QUEUES } from '../src/store/storage-layout.js';
import { startConnectEnvironment, type ConnectEnvironment } from '../test/support/connect-environment.js';
import { sendTestKit, type SendTestKit } from '../test/support/send-environment.js';
import { mailbox as freshAddress, mailHostSettings } from '../test/support/test-mail-server.js';
import { RequestCounter, median, ms, printTable, processTreeCpuMs, storageHostPort, tableHostPort, writeResults } from './receive-measures.js';
import {
  HttpTap,
  TableRefusals,
  allowanceUsed,
  busiestMinute,
  pool,
  sleep,
  sumOf,
  tallyBetween,
  tapMetrics,
  tapSecretReads,
  tokenLifetimeSeconds,
  warnLoudly,
  type Tally,
} from './send-measures.js';

/**
 * Sending, measured on this machine: the real function app's services in the local host on
 * Azurite, the sandbox identity platform and Graph (in this process), the real Postfix + Dovecot.
 * Nothing here asserts anything about time; every timed figure is a ratio to a baseline measured
 * in the same run, or a count. The file keeps to a budget (BUDGET_MS): on a loaded machine the
 * governor runs stop at their caps and say how much they sent.
 *
 * 1. Send overhead (SMTP submission with XOAUTH2 to the test Postfix). Subject: the send-mail queue
 *    trigger's own function, sendMailHandler, called with the job a queue message carries and a
 *    real InvocationContext: it parses the job and runs services.sendMessage, the send use-case as
 *    src/composition.ts composes it (the outbox row and content from Azurite, the connection and
 *    mailbox rows, the governor's Table row, the access token from memory, the composition's
 *    pooled SMTP sender, the sent row, the message.sent event, the content removed). The messages
 *    are written to the outbox beforehand without queueing (kit.submitUnqueued: what the API does
 *    before it enqueues), outside the timed part. Left out on purpose: the storage queue and the
 *    local host's polling of it. Those are the Functions host's work, not ours, and their idle
 *    back-off (100 ms to 2 s, host.json) would make the figure measure the emulator's sleeps
 *    rather than the handler. kit.direct() is not used because it builds its own governor,
 *    senders and metrics instead of the composition's. Baseline: raw nodemailer, pool: true with
 *    the connector pool's maxConnections (2), the same server, mailbox, access token and message
 *    (from, to, subject, text, a Message-ID, the envelope). Both sides: one mailbox and one pool
 *    for the whole part, warmed by a warm-up round, so the timed rounds are steady-state pooled
 *    sends (the mailbox gets at most (ROUNDS + 1) × PER_ROUND sends, well under the governor's
 *    per-minute limit, so the governor never holds one back); CALLERS sends at once (the
 *    governor's per-mailbox concurrency); PER_ROUND messages a round; alternating rounds as in
 *    harness.ts.
 *    Figures: messages/s (wall) and CPU ms per message of this process (process.cpuUsage: our
 *    code, the Azure SDK, nodemailer; the sandbox runs in this process too but this path does not
 *    call it), Azurite's CPU per message (/proc: what Table and Blob storage do for us, which in
 *    Azure is not the instance's cost), and Table/Blob requests per message. Ratios are medians of
 *    per-round ratios.
 *
 * 2. Governor: how much of the sandbox Graph's per-mailbox allowance the connector uses, through
 *    the path production uses: the API's submit use-case (in this process, without HTTP) queues
 *    each message on send-mail, the local host's queue trigger runs the handler (host.json:
 *    batches of 16, more fetched under 8 in flight), and the governor requeues what may not go yet.
 *    The sandbox enforces ALLOWANCE sends per mailbox in any 60 s and 4 requests in flight; the
 *    connector is set to the same (SEND_RATE_PER_MINUTE, and SEND_CONCURRENCY): 300 is the
 *    highest rate the connector's config accepts, so a higher allowance such as 600 cannot be
 *    matched. Each run submits (8 at once, as API callers would) and sends until its cap, drops
 *    what is left from the queue, and reports how many it submitted and sent. A send's time is when the sandbox's 202 came back (fetch's diagnostics
 *    channel); 429s are counted there and by the sandbox (GET /graph/stats).
 *    Fraction used (allowanceUsed): when some 60 s held the whole allowance, the window was the
 *    limit, and the figure is the median over sends i ≥ ALLOWANCE of 60 s / (t[i] − t[i −
 *    ALLOWANCE]) (the governor's own window is 60 s and its margin, so its ceiling is
 *    GOVERNOR_CEILING); otherwise the
 *    instance's throughput was the limit, and the figure is the rate between the 10th and 90th
 *    percentile of send times, per mailbox, over the allowance.
 *    - One mailbox, ONE_MAILBOX_MESSAGES messages.
 *    - A spread: SPREAD_MESSAGES over SPREAD_MAILBOXES mailboxes of SPREAD_CONNECTIONS connections.
 *      As the issue asks, 5,000 over 50 (100 each), submitted round-robin. 100 messages a few
 *      minutes apart never reach a mailbox's allowance of 300: this part is throughput-bound, and
 *      its aggregate rate is also set against what Exchange's real 30 a minute over 50 mailboxes
 *      would need (1,500 a minute).
 *      Its callers keep at most SPREAD_BACKLOG messages submitted and not yet sent (a closed loop:
 *      the instance's sustained rate, not a burst). A burst of 5,000 measures the emulator instead:
 *      Azurite keeps queue messages, blobs and their extents in LokiJS collections and rebuilds a
 *      collection's indexes on every removal, so each queue message or blob deleted costs in
 *      proportion to how many are stored, and its queue garbage collection (every 60 s) removes
 *      each consumed message's extent the same way. Profiled, that was 37 of Azurite's 95 busy
 *      seconds while 5,000 were queued at once, and Azurite was the bottleneck; Azure Storage has
 *      no such cost.
 *    One runs after the other, each to its cap (ONE_MAILBOX_CAP_MS, SPREAD_CAP_MS; a run stops
 *    there and says how many it sent): run at once, the spread's backlog in the one send-mail
 *    queue holds the busy mailbox's requeued messages back, which measures the queue, not the
 *    governor. On two cores the spread, which also pays for submitting 5,000 messages through the
 *    API, takes about 2.5 minutes; a loaded machine may stop it at its cap, and it says so.
 * 3. Token economics over the spread (10 connections: 5 delegated, signed in with a password, and
 *    5 application, each in a tenant of its own): token-endpoint calls as they leave this process
 *    (by tenant, so by connection), token.requests as the connector counts them (by source), and
 *    secret store reads (every SecretStore.get by kind, and the secretstore.reads metric). The run
 *    is far shorter than a token's lifetime (printed), so the target, at most one token call per
 *    connection per token lifetime per instance, means at most one per connection here. The
 *    "per 1,000 sends" figures are the counts scaled from the sends the run made; both kinds of
 *    cost are paid once per connection, so they shrink as runs grow.
 */

const mailServer = inject('mailServer');
const ALLOWANCE = 300;
/** The most of the allowance the governor can use: it books a window of 60 s and its margin. */
const GOVERNOR_CEILING = RATE_WINDOW_MS / (RATE_WINDOW_MS + DEFAULT_GOVERNOR_LIMITS.marginMs);
const CONCURRENT = 4;

const SMTP_CUSTOMER = 'bench-send-smtp';
const PER_ROUND = 20;
const ROUNDS = 5;
/** Part 1 adds no round after this (it runs at least MIN_ROUNDS), so a loaded machine stays in budget. */
const OVERHEAD_SOFT_LIMIT_MS = 25_000;
const MIN_ROUNDS = 3;
const CALLERS = CONCURRENT;

const GOVERNOR_CUSTOMER = 'bench-send-governor';
const SPREAD_CUSTOMER = 'bench-send-spread';
const ONE_MAILBOX_MESSAGES = 500;
const SPREAD_DELEGATED = 5;
const SPREAD_APPLICATION = 5;
const SPREAD_CONNECTIONS = SPREAD_DELEGATED + SPREAD_APPLICATION;
const SPREAD_MAILBOXES = 50;
const SPREAD_MESSAGES = 5_000;
/** The spread's callers keep at most this many messages submitted and not yet sent (a closed loop: see the notes above). */
const SPREAD_BACKLOG = 240;
/** Submissions at once (the API's callers). */
const SUBMITTERS = 8;
/** The whole file's budget, from loading it to the report (the bench suite must stay under 10 minutes). */
const BUDGET_MS = 310_000;
/** Each governor run's cap, from its first submission: on a loaded machine a run stops there and says how much it sent. */
const ONE_MAILBOX_CAP_MS = 85_000;
const SPREAD_CAP_MS = 200_000;
/** Left for the spread when the one-mailbox run is cut short. */
const SPREAD_RESERVE_MS = 120_000;
/** Left for the report and shutting down. */
const CLOSING_RESERVE_MS = 8_000;

const BODY = 'Hello,\n\nthis is a benchmark message of the send path. '.repeat(12);

let env: ConnectEnvironment;
let kit: SendTestKit;
let http: HttpTap;
let metrics: { snapshot(): Tally };
let secretReads: { snapshot(): Tally };
let tableRequests: RequestCounter;
let blobRequests: RequestCounter;
let tableRefusals: TableRefusals;
let azurite: number | undefined;
let defaultCas: string[];
let tokenLifetime: number | undefined;
const outcomes = new Map<string, (SendOutcome | { outcome: 'threw' })[]>();
const settled = new Set<string>();
let running = 0;
const results: Record<string, unknown> = {};
const tables: { title: string; header: string[]; rows: string[][] }[] = [];
const started = Date.now();
const loadAtStart = loadavg();

let azuriteInstance: RunningAzurite | undefined;

beforeAll(async () => {
  if (!mailServer) warnLoudly('the mail server cannot run on this machine: the SMTP send overhead (part 1) is skipped; the Graph parts run');
  defaultCas = tls.getCACertificates('default');
  azuriteInstance = await startAzuriteOnFreePorts();
  const storageConnectionString = azuriteInstance.connectionString;
  env = await startConnectEnvironment({
    storageConnectionString,
    env: { ALLOW_ROPC: 'true', SEND_RATE_PER_MINUTE: String(ALLOWANCE), SEND_CONCURRENCY: String(CONCURRENT), ...(mailServer && mailHostSettings()) },
    ...(mailServer && { signingKey: mailServer.sandboxSigningKey }),
  });
  if (mailServer) tls.setDefaultCACertificates([...tls.getCACertificates('default'), mailServer.caPem]);
  kit = await sendTestKit(env);
  await env.sandbox.control.setMailboxLimits({ concurrent: CONCURRENT, sendsPerMinute: ALLOWANCE });

  http = new HttpTap(new URL(env.sandbox.httpsBase).origin);
  const processMetrics = env.services.api.connections.metrics;
  if (!processMetrics) throw new Error('the composition gave the connections no metrics');
  metrics = tapMetrics(processMetrics);
  secretReads = tapSecretReads(env.services.secrets);
  tableRequests = new RequestCounter(tableHostPort(storageConnectionString));
  blobRequests = new RequestCounter(storageHostPort(storageConnectionString, 'Blob'));
  tableRefusals = new TableRefusals(tableHostPort(storageConnectionString));
  azurite = azuriteInstance.process.pid;
  // Every run of the send use-case, by the local host's queue trigger or by this bench: its outcome.
  const send = env.services.sendMessage;
  if (!send) throw new Error('sending is not configured');
  env.services.sendMessage = async (job) => {
    let outcome: SendOutcome | { outcome: 'threw' } = { outcome: 'threw' };
    running += 1;
    try {
      outcome = await send(job);
      return outcome;
    } finally {
      running -= 1;
      outcomes.set(job.messageId, [...(outcomes.get(job.messageId) ?? []), outcome]);
      if (['sent', 'already_sent', 'failed', 'done'].includes(outcome.outcome)) settled.add(job.messageId);
    }
  };
}, 120_000);

afterAll(async () => {
  for (const table of tables) printTable(table.title, table.header, table.rows);
  results.elapsedMs = Date.now() - started;
  results.loadAverage = { atStart: loadAtStart, atEnd: loadavg() };
  const load = (l: number[]) => l.map((n) => n.toFixed(1)).join(' ');
  console.log(
    `send bench: ${(Number(results.elapsedMs) / 1000).toFixed(1)} s from loading the file to the report (budget ${String(BUDGET_MS / 1000)} s); load average ${load(loadAtStart)} at the start, ${load(loadavg())} at the end, on ${String(availableParallelism())} cores`,
  );
  await writeResults('send', results);
  http.close();
  tableRequests.close();
  blobRequests.close();
  tableRefusals.close();
  await env.stop();
  await azuriteInstance?.stop();
  tls.setDefaultCACertificates(defaultCas);
});

const remainingMs = () => started + BUDGET_MS - Date.now();

// The real InvocationContext of @azure/functions (a CommonJS bundle: its ES module face has only `app`).
const { InvocationContext: Context } = createRequire(import.meta.url)('@azure/functions') as {
  InvocationContext: new (init: { invocationId: string; functionName: string; logHandler: (level: string, ...args: unknown[]) => void }) => InvocationContext;
};
const invocation = () => new Context({ invocationId: randomUUID(), functionName: 'send-mail', logHandler: () => undefined });

const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);

// ---------------------------------------------------------------------------------------------
// 1. Send overhead
// ---------------------------------------------------------------------------------------------

interface SideFigures {
  wallMs: number;
  cpuMs: number;
  azuriteCpuMs: number;
  table: Record<string, number>;
  blob: Record<string, number>;
  refused: Record<string, number>;
}

async function measured(run: () => Promise<void>): Promise<SideFigures> {
  const tableBefore = tableRequests.snapshot();
  const blobBefore = blobRequests.snapshot();
  const refusedBefore = tableRefusals.snapshot();
  const azuriteBefore = azurite === undefined ? 0 : await processTreeCpuMs(azurite);
  const cpu = process.cpuUsage();
  const begun = process.hrtime.bigint();
  await run();
  const wallMs = Number(process.hrtime.bigint() - begun) / 1e6;
  const used = process.cpuUsage(cpu);
  const azuriteCpuMs = azurite === undefined ? Number.NaN : (await processTreeCpuMs(azurite)) - azuriteBefore;
  return {
    wallMs,
    cpuMs: (used.user + used.system) / 1000,
    azuriteCpuMs,
    table: tallyBetween(tableBefore, tableRequests.snapshot()),
    blob: tallyBetween(blobBefore, blobRequests.snapshot()),
    refused: tallyBetween(refusedBefore, tableRefusals.snapshot()),
  };
}

it('send overhead: the send-mail handler against raw pooled nodemailer, SMTP XOAUTH2 to the test Postfix', async (context) => {
  if (!mailServer) {
    results.overhead = { skipped: 'the mail server cannot run on this machine' };
    return context.skip('the mail server cannot run on this machine');
  }
  const begun = Date.now();
  const phase = phaseCounters();
  const directory = await env.createDirectory('Bench Send SMTP', mailServer.tenants[0]);
  await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
  const from = freshAddress('bs-from');
  const connection = await kit.application(SMTP_CUSTOMER, directory.tenant.id, { send: 'smtp', receive: 'imap' }, [from]);
  const recipient = freshAddress('bs-rcpt');
  // The token the connector then holds in memory for the mailbox and sends with; the baseline uses it too.
  const { token } = await env.identity.accessTokens.getAccessToken(connection, 'outlook');
  tokenLifetime = tokenLifetimeSeconds(token);
  const smtp = env.identity.msal.app('default').cloud.smtp;
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: 2,
    host: smtp.host,
    port: smtp.port,
    secure: false,
    requireTLS: true,
    auth: { type: 'OAuth2', user: from, accessToken: token },
    logger: false,
    debug: false,
  });

  const subject = async (round: number): Promise<SideFigures> => {
    const ids: string[] = Array.from({ length: PER_ROUND }, () => '');
    await pool(PER_ROUND, SUBMITTERS, async (i) => {
      ids[i] = (await kit.submitUnqueued(connection, { from, to: [recipient], subject: `Bench ${String(round)}.${String(i)}`, text: BODY })).id;
    });
    const figures = await measured(() => pool(PER_ROUND, CALLERS, (i) => sendMailHandler({ customerId: SMTP_CUSTOMER, messageId: ids[i] ?? '' } satisfies SendJob, invocation())));
    const notSent = ids.filter((id) => outcomes.get(id)?.at(-1)?.outcome !== 'sent');
    if (notSent.length > 0) throw new Error(`${String(notSent.length)} handler runs did not send: ${JSON.stringify(notSent.slice(0, 3).map((id) => outcomes.get(id)))}`);
    return figures;
  };
  const baseline = (round: number): Promise<SideFigures> =>
    measured(() =>
      pool(PER_ROUND, CALLERS, async (i) => {
        await transport.sendMail({
          from: { address: from, name: '' },
          to: [{ address: recipient, name: '' }],
          subject: `Bench ${String(round)}.${String(i)}`,
          text: BODY,
          messageId: `<${randomUUID()}@bench.example>`,
          headers: {},
          envelope: { from, to: [recipient] },
        });
      }),
    );

  // Warm-up (round 0): pools, TLS, the JIT; then alternating rounds.
  const rounds: { baseline: SideFigures; subject: SideFigures }[] = [];
  try {
    await baseline(0);
    await subject(0);
    for (let round = 1; round <= ROUNDS; round++) {
      if (round > MIN_ROUNDS && Date.now() - begun > OVERHEAD_SOFT_LIMIT_MS) break;
      if (round % 2 === 1) {
        const b = await baseline(round);
        rounds.push({ baseline: b, subject: await subject(round) });
      } else {
        const s = await subject(round);
        rounds.push({ subject: s, baseline: await baseline(round) });
      }
    }
  } catch (error) {
    // What the mail server said about it, if anything.
    const log = await readFile(join(dirname(dirname(mailServer.dovecotLogPath)), 'log', 'postfix.log'), 'utf8').catch(() => '');
    throw new Error(`round ${String(rounds.length)} failed; the Postfix log ends:\n${log.split('\n').slice(-25).join('\n')}`, { cause: error });
  } finally {
    transport.close();
  }
  const side = (pick: 'baseline' | 'subject') => {
    const figures = rounds.map((r) => r[pick]);
    const perKey = (take: (f: SideFigures) => Record<string, number>) => {
      const keys = new Set(figures.flatMap((f) => Object.keys(take(f))));
      return Object.fromEntries([...keys].map((key) => [key, median(figures.map((f) => (take(f)[key] ?? 0) / PER_ROUND))]));
    };
    return {
      messagesPerSecond: median(figures.map((f) => PER_ROUND / (f.wallMs / 1000))),
      cpuMsPerMessage: median(figures.map((f) => f.cpuMs / PER_ROUND)),
      azuriteCpuMsPerMessage: median(figures.map((f) => f.azuriteCpuMs / PER_ROUND)),
      tableRequestsPerMessage: median(figures.map((f) => total(f.table) / PER_ROUND)),
      blobRequestsPerMessage: median(figures.map((f) => total(f.blob) / PER_ROUND)),
      tableRequestsPerMessageByTable: perKey((f) => f.table),
      blobRequestsPerMessageByContainer: perKey((f) => f.blob),
      tableRefusalsPerMessage: perKey((f) => f.refused),
    };
  };
  const connector = side('subject');
  const raw = side('baseline');
  const ratio = {
    throughput: median(rounds.map((r) => r.baseline.wallMs / r.subject.wallMs)),
    cpuPerMessage: median(rounds.map((r) => r.subject.cpuMs / r.baseline.cpuMs)),
  };
  results.overhead = {
    method: { messagesPerRound: PER_ROUND, roundsRun: rounds.length, roundsPlanned: ROUNDS, warmUpRounds: 1, sendsAtOnce: CALLERS, poolMaxConnections: 2, mailboxes: 1, elapsedMs: Date.now() - begun },
    connector: { label: 'sendMailHandler → services.sendMessage (composed), SMTP', ...connector },
    baseline: { label: 'nodemailer pool: true, same server, mailbox, token, message', ...raw },
    ratio,
    rounds: rounds.map((r) => ({ baseline: { wallMs: r.baseline.wallMs, cpuMs: r.baseline.cpuMs, azuriteCpuMs: r.baseline.azuriteCpuMs }, subject: { wallMs: r.subject.wallMs, cpuMs: r.subject.cpuMs, azuriteCpuMs: r.subject.azuriteCpuMs } })),
    ...phase.end(PER_ROUND * (rounds.length + 1)),
  };
  const row = (label: string, s: typeof connector) => [
    label,
    s.messagesPerSecond.toFixed(1),
    ms(s.cpuMsPerMessage, 2),
    ms(s.azuriteCpuMsPerMessage, 2),
    `${s.tableRequestsPerMessage.toFixed(1)} / ${s.blobRequestsPerMessage.toFixed(1)}`,
    total(s.tableRefusalsPerMessage).toFixed(2),
  ];
  tables.push({
    title: `1. Send overhead, SMTP XOAUTH2 to the test Postfix (${String(PER_ROUND)} messages a round, ${String(CALLERS)} at once, median of ${String(rounds.length)} alternating rounds after a warm-up)`,
    header: ['path', 'messages/s', 'CPU/message (this process)', 'CPU/message (Azurite)', 'Table / Blob requests per message', 'Table 412s per message'],
    rows: [
      row('connector: send-mail handler', connector),
      row('baseline: raw pooled nodemailer', raw),
      ['connector / baseline', `${ratio.throughput.toFixed(2)}×`, `${ratio.cpuPerMessage.toFixed(2)}×`, '', '', ''],
    ],
  });
}, 150_000);

// ---------------------------------------------------------------------------------------------
// 2. Governor, and 3. token economics
// ---------------------------------------------------------------------------------------------

/** Token calls, connector metrics, secret reads and Table requests from now until end(). */
function phaseCounters() {
  const tokensBefore = http.tokenCalls.length;
  const metricsBefore = metrics.snapshot();
  const secretsBefore = secretReads.snapshot();
  const tableBefore = tableRequests.snapshot();
  const refusedBefore = tableRefusals.snapshot();
  return {
    end(sends: number) {
      const tokenCalls = http.tokenCalls.slice(tokensBefore);
      return {
        sends,
        tokenEndpointCalls: tokenCalls.length,
        tokenCallsByTenant: countBy(tokenCalls.map((c) => c.tenant)),
        metrics: tallyBetween(metricsBefore, metrics.snapshot()),
        secretReads: tallyBetween(secretsBefore, secretReads.snapshot()),
        tableRequests: tallyBetween(tableBefore, tableRequests.snapshot()),
        tableRefusals: tallyBetween(refusedBefore, tableRefusals.snapshot()),
      };
    },
  };
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/**
 * Submits through the API's use-case (row, content, send-mail queue message), SUBMITTERS at once,
 * starting none after `until` (on a loaded machine submitting is slow too); the ids submitted.
 */
async function submitAll(
  count: number,
  until: number,
  request: (n: number) => { connection: Connection; from: string; to: string },
  backlog = Number.POSITIVE_INFINITY,
): Promise<string[]> {
  const ids: string[] = Array.from({ length: count }, () => '');
  const settledBefore = settled.size;
  let submitted = 0;
  await pool(count, SUBMITTERS, async (n) => {
    while (submitted - (settled.size - settledBefore) >= backlog && Date.now() < until) await sleep(10);
    if (Date.now() >= until) return;
    submitted++;
    const { connection, from, to } = request(n);
    const parsed = messageRequestSchema.parse({ from, to: [to], subject: `Governor ${String(n)}`, text: BODY });
    ids[n] = (await env.services.api.sending.submit(connection, parsed, undefined)).message.id;
  });
  return ids.filter((id) => id !== '');
}

/** Waits until every message is sent or failed, or `until`; how many were not. */
async function settledBy(ids: readonly string[], until: number): Promise<number> {
  for (;;) {
    const left = ids.filter((id) => !settled.has(id)).length;
    if (left === 0 || Date.now() >= until) return left;
    await sleep(200);
  }
}

/** What a capped run left: dropped from the send-mail queue, and the runs under way let finish, so the next part starts clean. */
async function dropTheRest(): Promise<void> {
  await env.services.storage.queueService.getQueueClient(QUEUES.sendMail).clearMessages();
  const until = Date.now() + 10_000;
  while (running > 0 && Date.now() < until) await sleep(100);
}

function outcomeCounts(ids: readonly string[]) {
  const counts: Record<string, number> = {};
  for (const id of ids) {
    for (const outcome of outcomes.get(id) ?? []) {
      const key = outcome.outcome === 'waiting' ? `waiting (${outcome.reason})` : outcome.outcome;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  }
  return counts;
}

async function sandboxCounts(addresses: readonly string[]) {
  const wanted = new Set(addresses.map((a) => a.toLowerCase()));
  const mailboxes = (await env.sandbox.control.graphStats()).mailboxes.filter((m) => wanted.has(m.address.toLowerCase()));
  return {
    sends: mailboxes.reduce((sum, m) => sum + m.sends, 0),
    requests: mailboxes.reduce((sum, m) => sum + m.requests, 0),
    throttledSendRate: mailboxes.reduce((sum, m) => sum + m.throttled.sendRate, 0),
    throttledConcurrency: mailboxes.reduce((sum, m) => sum + m.throttled.concurrency, 0),
  };
}

/** Sends one run made to these mailboxes since `since`, and what the figures of part 2 make of them. */
async function governorFigures(planned: number, addresses: readonly string[], ids: readonly string[], since: number, left: number, counters: ReturnType<ReturnType<typeof phaseCounters>['end']>, customerId: string) {
  const wanted = new Set(addresses.map((a) => a.toLowerCase()));
  const sends = http.graphSends.filter((s) => s.at >= since && wanted.has(s.mailbox));
  const accepted = sends.filter((s) => s.status === 202);
  const times = accepted.map((s) => s.at).sort((a, b) => a - b);
  const busiest = Math.max(0, ...[...wanted].map((address) => busiestMinute(accepted.filter((s) => s.mailbox === address).map((s) => s.at).sort((a, b) => a - b))));
  const outcomeTally = outcomeCounts(ids);
  return {
    messages: planned,
    submitted: ids.length,
    sent: times.length,
    notSettledByCap: left,
    firstToLastSendMs: (times.at(-1) ?? 0) - (times[0] ?? 0),
    used: allowanceUsed(times, ALLOWANCE, addresses.length, busiest),
    busiestMinuteOfAMailbox: busiest,
    answers429Seen: sends.filter((s) => s.status === 429).length,
    sandbox: await sandboxCounts(addresses),
    outcomes: outcomeTally,
    governorWaits: {
      requeued: sumOf(counters.metrics, 'send.governor_waits', 'inline=false', `customerId=${customerId}`),
      inWorker: sumOf(counters.metrics, 'send.governor_waits', 'inline=true', `customerId=${customerId}`),
    },
  };
}

function refusalsOf(refusals: Tally): number {
  return Object.entries(refusals).filter(([key]) => key.endsWith(' 412')).reduce((sum, [, n]) => sum + n, 0);
}

type GovernorFigures = Awaited<ReturnType<typeof governorFigures>>;

function governorRow(label: string, f: GovernorFigures, capMs: number): string[] {
  const used =
    f.used.bound === 'window'
      ? `${f.used.fraction.toFixed(3)} window-bound (median of ${String(f.used.windowFractions.n)}; p10 ${f.used.windowFractions.p10.toFixed(3)}, min ${f.used.windowFractions.min.toFixed(3)}; ceiling ${GOVERNOR_CEILING.toFixed(3)})`
      : `${f.used.fraction.toFixed(3)} throughput-bound (${f.used.perMailboxPerMinute.toFixed(1)}/min per mailbox, ${f.used.steadySendsPerMinute.toFixed(0)}/min in all)`;
  return [
    label,
    `${String(f.sent)} of ${String(f.messages)}${f.submitted < f.messages ? ` (${String(f.submitted)} submitted)` : ''}${f.notSettledByCap > 0 || f.submitted < f.messages ? ` by the ${(capMs / 1000).toFixed(0)} s cap` : ''}`,
    `${(f.firstToLastSendMs / 1000).toFixed(1)} s`,
    used,
    `${String(f.busiestMinuteOfAMailbox)} / ${String(ALLOWANCE)}`,
    `${String(f.sandbox.throttledSendRate)} / ${String(f.sandbox.throttledConcurrency)} (${String(f.answers429Seen)})`,
    `${String(f.governorWaits.requeued)} / ${String(f.governorWaits.inWorker)}`,
    `${String(f.outcomes.deferred ?? 0)} / ${String(f.outcomes.failed ?? 0)}`,
  ];
}

it(`governor and token economics: ${String(ONE_MAILBOX_MESSAGES)} messages from one mailbox, then ${String(SPREAD_MESSAGES)} over ${String(SPREAD_MAILBOXES)} mailboxes of ${String(SPREAD_CONNECTIONS)} connections`, async () => {
  const directory = await env.createDirectory('Bench Send Governor');
  await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
  const sender = directory.user.userPrincipalName;
  const busy = await kit.application(GOVERNOR_CUSTOMER, directory.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);

  const to = 'customer@customer.example';
  const senders: { connection: Connection; address: string; kind: 'delegated' | 'application'; tenant: string }[] = [];
  for (let k = 0; k < SPREAD_CONNECTIONS; k++) {
    const spreadDirectory = await env.createDirectory(`Bench Spread ${String(k)}`);
    await env.sandbox.control.grantConsent(spreadDirectory.tenant.id, { clientId: env.clientId });
    if (k < SPREAD_DELEGATED) {
      const { connection, upn } = await kit.delegated(SPREAD_CUSTOMER, spreadDirectory.tenant.id, spreadDirectory.domain, { send: 'graph', receive: 'graph' });
      senders.push({ connection, address: upn.toLowerCase(), kind: 'delegated', tenant: spreadDirectory.tenant.id });
    } else {
      const count = (SPREAD_MAILBOXES - SPREAD_DELEGATED) / SPREAD_APPLICATION;
      const addresses: string[] = [];
      for (let j = 0; j < count; j++) {
        const address = `box${String(j)}@${spreadDirectory.domain}`.toLowerCase();
        await env.sandbox.control.createUser(spreadDirectory.tenant.id, { userPrincipalName: address, displayName: `Box ${String(j)}` });
        addresses.push(address);
      }
      const connection = await kit.application(SPREAD_CUSTOMER, spreadDirectory.tenant.id, { send: 'graph', receive: 'graph' }, addresses);
      for (const address of addresses) senders.push({ connection, address, kind: 'application', tenant: spreadDirectory.tenant.id });
    }
  }
  if (senders.length !== SPREAD_MAILBOXES) throw new Error(`${String(senders.length)} mailboxes, not ${String(SPREAD_MAILBOXES)}`);

  // One after the other: run at once, the spread's backlog in the shared send-mail queue would hold back the busy mailbox's requeued messages, and measure the queue, not the governor.
  const onePhase = phaseCounters();
  const oneBegun = Date.now();
  const oneCapMs = Math.max(30_000, Math.min(ONE_MAILBOX_CAP_MS, remainingMs() - SPREAD_RESERVE_MS - CLOSING_RESERVE_MS));
  const oneIds = await submitAll(ONE_MAILBOX_MESSAGES, oneBegun + oneCapMs, () => ({ connection: busy, from: sender, to: directory.admin.userPrincipalName }));
  const oneLeft = await settledBy(oneIds, oneBegun + oneCapMs);
  if (oneLeft > 0) await dropTheRest();
  const oneCounters = onePhase.end(0);
  const one = await governorFigures(ONE_MAILBOX_MESSAGES, [sender], oneIds, oneBegun, oneLeft, oneCounters, GOVERNOR_CUSTOMER);
  oneCounters.sends = one.sent;

  const phase = phaseCounters();
  const begun = Date.now();
  const capMs = Math.max(30_000, Math.min(SPREAD_CAP_MS, remainingMs() - CLOSING_RESERVE_MS));
  const spreadIds = await submitAll(SPREAD_MESSAGES, begun + capMs, (n) => {
    const spreadSender = senders[n % SPREAD_MAILBOXES];
    if (!spreadSender) throw new Error('no sender');
    return { connection: spreadSender.connection, from: spreadSender.address, to };
  }, SPREAD_BACKLOG);
  const submittedMs = Date.now() - begun;
  const spreadLeft = await settledBy(spreadIds, begun + capMs);
  if (spreadLeft > 0) await dropTheRest();
  const counters = phase.end(0);
  const spread = await governorFigures(SPREAD_MESSAGES, senders.map((s) => s.address), spreadIds, begun, spreadLeft, counters, SPREAD_CUSTOMER);
  counters.sends = spread.sent;
  const sent = one.sent + spread.sent;
  const storage = (c: typeof counters, sends: number) => ({ requestsPerSend: total(c.tableRequests) / Math.max(1, sends), refusalsPerSend: refusalsOf(c.tableRefusals) / Math.max(1, sends) });
  const table = { oneMailbox: storage(oneCounters, one.sent), spread: storage(counters, spread.sent) };
  const exchangeNeedPerMinute = 30 * SPREAD_MAILBOXES;
  const aggregatePerMinute = spread.used.bound === 'throughput' ? spread.used.steadySendsPerMinute : Number.NaN;

  // Token economics: calls by connection (a tenant each), against at most one per connection.
  const connections = [...new Map(senders.map((s) => [s.connection.id, s])).values()];
  const perConnection = connections.map((s) => ({ connectionId: s.connection.id, kind: s.kind, tokenCalls: counters.tokenCallsByTenant[s.tenant] ?? 0 }));
  const spreadTokenCalls = perConnection.reduce((sum, c) => sum + c.tokenCalls, 0);
  const maxPerConnection = Math.max(...perConnection.map((c) => c.tokenCalls));
  const oneTokenCalls = oneCounters.tokenCallsByTenant[directory.tenant.id] ?? 0;
  const secretTotal = total(counters.secretReads);
  const per1000 = (n: number, sends: number) => (n * 1000) / Math.max(1, sends);
  results.governor = {
    method: {
      asked: '500 messages to one mailbox, and 5,000 over 50 mailboxes',
      ran: `one after the other: ${String(ONE_MAILBOX_MESSAGES)} from one mailbox, then ${String(SPREAD_MESSAGES)} over ${String(SPREAD_MAILBOXES)} mailboxes (${String(SPREAD_MESSAGES / SPREAD_MAILBOXES)} each) of ${String(SPREAD_DELEGATED)} delegated + ${String(SPREAD_APPLICATION)} application connections, one tenant each`,
      why: 'the spread is throughput-bound by design (100 messages per mailbox never reach an allowance of 300 a minute); its callers keep at most SPREAD_BACKLOG unsent (a closed loop), since a burst on Azurite measures its LokiJS index rebuilds',
      backlog: SPREAD_BACKLOG,
    },
    capMs,
    submittedMs,
    oneMailbox: { capMs: oneCapMs, ...one, ...oneCounters },
    spread: { ...spread, exchange: { needPerMinute: exchangeNeedPerMinute, aggregatePerMinute, share: aggregatePerMinute / exchangeNeedPerMinute } },
    table,
    tokens: {
      lifetimeSeconds: tokenLifetime,
      oneMailbox: { tokenEndpointCalls: oneTokenCalls, secretReads: oneCounters.secretReads },
      perConnection,
      maxPerConnection,
      targetHolds: maxPerConnection <= 1 && oneTokenCalls <= 1,
      tokenEndpointCallsPer1000Sends: per1000(spreadTokenCalls + oneTokenCalls, sent),
      secretReadsPer1000Sends: per1000(secretTotal, sent),
    },
    ...counters,
  };
  tables.push({
    title: `2. Governor against the sandbox Graph's allowance of ${String(ALLOWANCE)} sends a minute per mailbox (connector: SEND_RATE_PER_MINUTE=${String(ALLOWANCE)}, ${String(CONCURRENT)} at once), through the API and the local host's send-mail queue; one run after the other`,
    header: ['run', 'sent', 'first → last send', 'fraction of the allowance used (steady part)', 'busiest 60 s of a mailbox', '429s: sandbox rate / concurrency (seen)', 'governor requeues / in-worker waits', 'deferred / failed', 'Table requests / 412s per send (submit included)'],
    rows: [
      [...governorRow(`one mailbox, ${String(ONE_MAILBOX_MESSAGES)} messages`, one, oneCapMs), `${table.oneMailbox.requestsPerSend.toFixed(1)} / ${table.oneMailbox.refusalsPerSend.toFixed(2)}`],
      [...governorRow(`spread: ${String(SPREAD_MESSAGES)} over ${String(SPREAD_MAILBOXES)} mailboxes`, spread, capMs), `${table.spread.requestsPerSend.toFixed(1)} / ${table.spread.refusalsPerSend.toFixed(2)}`],
    ],
  });
  tables.push({
    title: `2b. The spread's aggregate rate against Exchange Online's real limit, 30 a minute, over ${String(SPREAD_MAILBOXES)} mailboxes`,
    header: ['measured aggregate (steady part)', `needed for ${String(SPREAD_MAILBOXES)} × 30/min`, 'share of that need this instance carried'],
    rows: [[`${aggregatePerMinute.toFixed(0)}/min`, `${String(exchangeNeedPerMinute)}/min`, (aggregatePerMinute / exchangeNeedPerMinute).toFixed(2)]],
  });

  const calls = (kind: 'delegated' | 'application') => perConnection.filter((c) => c.kind === kind).reduce((sum, c) => sum + c.tokenCalls, 0);
  const metricSource = (source: string) => sumOf(counters.metrics, 'token.requests', `source=${source}`);
  const lifetime = tokenLifetime === undefined ? 'unknown' : `${(tokenLifetime / 60).toFixed(0)} min`;
  const reads = (t: Tally) => (Object.keys(t).length === 0 ? '0' : Object.entries(t).map(([k, n]) => `${k} ${String(n)}`).join(', '));
  const overhead = results.overhead as { sends?: number; tokenEndpointCalls?: number; secretReads?: Tally } | undefined;
  const holds = (max: number) => (max <= 1 ? 'holds' : 'DOES NOT HOLD');
  tables.push({
    title: `3. Token economics (target: at most 1 token-endpoint call per connection per token lifetime per instance; a token lives ${lifetime} here, longer than the run)`,
    header: ['run', 'sends', 'connections', 'token-endpoint calls (wire)', 'max per connection', 'token.requests by source', 'secret store reads', 'per 1,000 sends: token calls / secret reads', 'target'],
    rows: [
      ...(overhead?.sends !== undefined
        ? [['1. SMTP overhead (the token is fetched once, first)', String(overhead.sends), '1', String(overhead.tokenEndpointCalls ?? 0), String(overhead.tokenEndpointCalls ?? 0), '', reads(overhead.secretReads ?? {}), '', holds(overhead.tokenEndpointCalls ?? 0)]]
        : []),
      ['2. one mailbox', String(one.sent), '1', String(oneTokenCalls), String(oneTokenCalls), '', reads(oneCounters.secretReads), `${per1000(oneTokenCalls, one.sent).toFixed(1)} / ${per1000(total(oneCounters.secretReads), one.sent).toFixed(1)}`, holds(oneTokenCalls)],
      [
        `3. spread, ${String(SPREAD_DELEGATED)} delegated + ${String(SPREAD_APPLICATION)} application`,
        String(spread.sent),
        String(SPREAD_CONNECTIONS),
        `${String(spreadTokenCalls)} (delegated ${String(calls('delegated'))}, application ${String(calls('application'))})`,
        String(maxPerConnection),
        `microsoft ${String(metricSource('microsoft'))}, cache ${String(metricSource('cache'))}, memory ${String(metricSource('memory'))}, failure ${String(metricSource('failure'))}`,
        `${reads(counters.secretReads)} (secretstore.reads metric ${String(sumOf(counters.metrics, 'secretstore.reads'))})`,
        `${per1000(spreadTokenCalls, spread.sent).toFixed(1)} / ${per1000(secretTotal, spread.sent).toFixed(1)}`,
        holds(maxPerConnection),
      ],
    ],
  });
}, ONE_MAILBOX_CAP_MS + SPREAD_CAP_MS + 120_000);
