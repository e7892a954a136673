import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, inject, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../local/azurite.js';
import type { Connection } from '../src/domain/connection.js';
import { newId } from '../src/domain/ids.js';
import { INBOX, type Mailbox } from '../src/domain/mailbox.js';
import { newReceiveState, type ReceiveState } from '../src/domain/receive-state.js';
import { keys } from '../src/store/repositories.js';
import { readHostSettings } from '../local/host/host-json.js';
import { dumpImapCommandStats } from '../local/sandbox/mail-server/index.js';
import { startConnectEnvironment, type ConnectEnvironment } from '../test/support/connect-environment.js';
import { receiveTestKit, type ReceiveTestKit } from '../test/support/receive-environment.js';
import { sendTestKit, type SendTestKit } from '../test/support/send-environment.js';
import { mailHostSettings } from '../test/support/test-mail-server.js';
import { memoryWatch, pool, type MemoryFigures } from './poll-measures.js';
import { RequestCounter, median, printTable, processTreeCpuMs, tableHostPort, writeResults } from './receive-measures.js';

/**
 * A poll cycle on this machine, as the poll-mailbox queue runs one: every mailbox of an app-only
 * IMAP connection looked at once, `batchSize` looks at a time (host.json's queue batch, what one
 * Functions instance runs at once), against the real Dovecot with the sandbox's app-only token.
 * Nothing here asserts anything about time; every time is set against a baseline run in the same
 * process, on the same mailboxes, at the same concurrency.
 *
 * Set-up, unmeasured: one `doveadm mailbox status -F <users>` makes the 1,000 Maildirs and reads
 * each INBOX's UIDVALIDITY and UIDNEXT; each mailbox's rows are written with the cursor a first
 * look would have written (lastUid = UIDNEXT - 1), so the looks measured are those of a mailbox
 * already being polled (a first cycle costs the same Table requests and IMAP commands, but 1,000
 * more sessions would double the run). A cursor that did not match would make the look open the
 * folder and resync, which fails the run.
 *
 * 1. 1,000 idle mailboxes: the connector's look against a bare imapflow session per mailbox
 *    (connect, XOAUTH2, STATUS INBOX, LOGOUT: the least any poller pays for the same answer).
 *    After a warm-up on the first WARM_UP mailboxes (both sides), each side goes over all of them
 *    in IDLE_BLOCKS blocks in ABBA order; a side's cycle is the sum of its blocks.
 * 2. The first 100 of those mailboxes, after one message was APPENDed to each (unmeasured): a bare
 *    session that SELECTs INBOX, FETCHes the newest message's source and LOGs OUT, against the
 *    connector's cycle, which finds, downloads, parses, stores and records each message
 *    (message.received events; no webhook endpoint is configured, so nothing is delivered).
 *    NEW_MAIL_ROUNDS rounds (POLL_BENCH_ROUNDS, 1 by default), one fresh message per mailbox per
 *    round, the side that goes first alternating (baseline first in round 1).
 *
 * Per cycle: wall time; CPU of this process (process.cpuUsage: the connector, its Table Storage
 * and token calls, imapflow; the in-process sandbox and local host are idle but included on both
 * sides); CPU of Dovecot's process tree (from /proc); IMAP commands per mailbox as Dovecot's stats
 * counted them (after login: CAPABILITY and AUTHENTICATE are not in its stats); requests to
 * Azurite's Table service per look; and this process's memory: heap used and RSS sampled every
 * 20 ms during the cycle (peak less the level before it, after a full GC; the largest block's),
 * and what the heap kept after the cycle (after a full GC; summed over blocks). A session that
 * fails (a look's failed outcome, an imapflow error with a code) is counted and shown, not thrown:
 * this machine is shared and can be slow. POLL_BENCH_MAILBOXES shrinks part 1 for a quick try.
 */

const mailServer = inject('mailServer');
const CUSTOMER = 'bench-poll';
const IDLE_MAILBOXES = Number(process.env.POLL_BENCH_MAILBOXES ?? 1000);
const NEW_MAIL_MAILBOXES = Math.min(100, IDLE_MAILBOXES);
/** Rounds of part 2 (each APPENDs one more message per mailbox); one keeps the file near 2.5 minutes. */
const NEW_MAIL_ROUNDS = Number(process.env.POLL_BENCH_ROUNDS ?? 1);
const IDLE_BLOCKS = 4;
/** Sessions of each side before anything counts, on the fleet's first mailboxes. */
const WARM_UP = 32;

let env: ConnectEnvironment;
let kit: SendTestKit;
let receive: ReceiveTestKit;
let tenantId: string;
let tableRequests: RequestCounter;
let concurrency: number;
let defaultCas: string[];
let dovecotPid: number;
let stackDir: string;
/** The idle fleet: part 2 reuses its first mailboxes. */
let fleet: { connection: Connection; mailboxes: Mailbox[] } | undefined;
/** LOGOUTs this file's sessions made per address: Dovecot's counts are read once it counted them all. */
const loggedOut = new Map<string, number>();
const results: Record<string, unknown> = {};
const tables: { title: string; header: string[]; rows: string[][] }[] = [];

let azuriteInstance: RunningAzurite | undefined;

beforeAll(async () => {
  if (!mailServer) {
    warnLoudly('the mail server cannot run on this machine: the poll cycle benchmark is skipped');
    return;
  }
  defaultCas = tls.getCACertificates('default');
  concurrency = (await readHostSettings(fileURLToPath(new URL('..', import.meta.url)))).queues.batchSize;
  stackDir = dirname(dirname(mailServer.dovecotLogPath));
  dovecotPid = Number((await readFile(join(stackDir, 'run', 'dovecot.pid'), 'utf8')).trim());
  azuriteInstance = await startAzuriteOnFreePorts();
  const storageConnectionString = azuriteInstance.connectionString;
  env = await startConnectEnvironment({ storageConnectionString, env: { ALLOW_PRIVATE_NETWORK_URLS: 'true', ...mailHostSettings() }, signingKey: mailServer.sandboxSigningKey });
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), mailServer.caPem]);
  tableRequests = new RequestCounter(tableHostPort(storageConnectionString));
  kit = await sendTestKit(env);
  receive = receiveTestKit(env);
  const directory = await env.createDirectory('Contoso Poll Bench', mailServer.tenants[0]);
  tenantId = directory.tenant.id;
  await env.sandbox.control.grantConsent(tenantId, { clientId: env.clientId });
}, 120_000);

afterAll(async () => {
  if (!mailServer) return;
  for (const table of tables) printTable(table.title, table.header, table.rows);
  await writeResults('poll', results);
  tableRequests.close();
  await env.stop();
  await azuriteInstance?.stop();
  tls.setDefaultCACertificates(defaultCas);
});

it(`a poll cycle over ${String(IDLE_MAILBOXES)} idle IMAP mailboxes against bare STATUS sessions`, async (context) => {
  if (!mailServer) {
    results.idleCycle = { skipped: 'the mail server cannot run on this machine' };
    return context.skip('the mail server cannot run on this machine');
  }
  const setup = { dovecotMs: 0, rowsMs: 0 };
  const { connection, mailboxes } = await imapFleet(IDLE_MAILBOXES, setup);
  fleet = { connection, mailboxes };
  const addresses = mailboxes.map((mailbox) => mailbox.address);
  const accessToken = (await env.identity.accessTokens.getAccessToken(connection, 'outlook')).token;
  const sides = {
    baseline: { label: 'imapflow: connect, XOAUTH2, STATUS INBOX, LOGOUT', run: (index: number) => bareStatus(addresses[index] ?? '', accessToken) },
    connector: {
      label: 'connector: idle cycle (poll-mailbox look)',
      async run(index: number) {
        const outcome = await receive.poll(mailboxAt(mailboxes, index));
        if (outcome.outcome === 'failed') throw new SessionFailed(`connector ${outcome.code}`);
        // A cursor the seeding got wrong would show here: the bench is broken, not the look.
        if (outcome.outcome !== 'polled' || outcome.found !== 0 || outcome.resynced) throw new Error(`a look at an idle mailbox gave ${JSON.stringify(outcome)}`);
      },
    },
  };
  // Warm-up, not counted: the same first mailboxes for both (JIT, TLS, the token, the connection row's first reads).
  for (const side of [sides.baseline, sides.connector]) await cycle('warm-up', addresses.slice(0, WARM_UP), side.run);
  // Blocks of the fleet in ABBA order: drift on this shared machine hits both sides alike, and each side is first in half the blocks.
  const blocks: { baseline: CycleFigures; connector: CycleFigures }[] = [];
  const size = Math.ceil(addresses.length / IDLE_BLOCKS);
  for (let block = 0; block < IDLE_BLOCKS; block++) {
    const offset = block * size;
    const slice = addresses.slice(offset, offset + size);
    const measure = (side: typeof sides.baseline) => cycle(side.label, slice, (index) => side.run(offset + index));
    if (block % 2 === 0) {
      const baseline = await measure(sides.baseline);
      blocks.push({ baseline, connector: await measure(sides.connector) });
    } else {
      const connector = await measure(sides.connector);
      blocks.push({ connector, baseline: await measure(sides.baseline) });
    }
  }
  const baseline = combine(blocks.map((b) => b.baseline));
  const connector = combine(blocks.map((b) => b.connector));
  const ratio = ratioOf(connector, baseline);
  const blockRatios = blocks.map((b) => ratioOf(b.connector, b.baseline));
  results.idleCycle = { mailboxes: addresses.length, concurrency, blocks: IDLE_BLOCKS, setupMs: setup, baseline: summary(baseline), connector: summary(connector), ratio, blockRatios };
  const range = (take: (r: Ratio) => number) => `${Math.min(...blockRatios.map(take)).toFixed(2)}–${Math.max(...blockRatios.map(take)).toFixed(2)}×`;
  tables.push({
    title: `A poll cycle over ${String(addresses.length)} idle IMAP mailboxes (app-only, ${String(concurrency)} at once; each side over all of them in ${String(IDLE_BLOCKS)} blocks, ABBA; set-up: doveadm ${(setup.dovecotMs / 1000).toFixed(1)} s, ${String(addresses.length * 2)} table rows ${(setup.rowsMs / 1000).toFixed(1)} s)`,
    header: CYCLE_HEADER,
    rows: [
      cycleRow(connector),
      cycleRow(baseline),
      ratioRow('connector / baseline (all blocks)', ratio),
      ['  range over blocks', range((r) => r.wall), range((r) => r.cpu), range((r) => r.serverCpu), '', '', '', '', ''],
      ...[connector, baseline].flatMap(failureRows),
    ],
  });
});

it(`a poll cycle over ${String(NEW_MAIL_MAILBOXES)} IMAP mailboxes with one new message each against bare SELECT + FETCH sessions`, async (context) => {
  if (!mailServer) {
    results.newMailCycle = { skipped: 'the mail server cannot run on this machine' };
    return context.skip('the mail server cannot run on this machine');
  }
  // The idle fleet's first mailboxes; a fleet of its own if part 1 did not get that far.
  const group = fleet ? { connection: fleet.connection, mailboxes: fleet.mailboxes.slice(0, NEW_MAIL_MAILBOXES) } : await imapFleet(NEW_MAIL_MAILBOXES);
  const { mailboxes } = group;
  const addresses = mailboxes.map((mailbox) => mailbox.address);
  const accessToken = (await env.identity.accessTokens.getAccessToken(group.connection, 'outlook')).token;

  const rounds: { baseline: CycleFigures; connector: CycleFigures; appended: number }[] = [];
  for (let round = 0; round < NEW_MAIL_ROUNDS; round++) {
    const ids = addresses.map(() => `<${randomUUID()}@customer.example>`);
    const appends = await cycle('APPEND', addresses, (index) => appendOne(addresses[index] ?? '', accessToken, ids[index] ?? ''));
    const appended = addresses.length - Object.values(appends.failures).reduce((sum, n) => sum + n, 0);
    const bare = () => cycle('imapflow: connect, XOAUTH2, SELECT INBOX, FETCH * source, LOGOUT', addresses, async (index) => {
      const source = await bareFetchNewest(addresses[index] ?? '', accessToken);
      // An APPEND that failed leaves nothing new to fetch.
      if (!source.includes(ids[index] ?? '-')) throw new SessionFailed('baseline: not the message just appended');
    });
    const look = () => {
      const tally = { emitted: 0, found: 0 };
      return cycle('connector: cycle (poll-mailbox look: find, download, parse, store, record)', addresses, async (index) => {
        const outcome = await receive.poll(mailboxAt(mailboxes, index));
        if (outcome.outcome !== 'polled') throw new SessionFailed(`connector ${outcome.outcome === 'failed' ? outcome.code : outcome.outcome}`);
        tally.found += outcome.found;
        tally.emitted += outcome.emitted;
      }, tally);
    };
    let baseline: CycleFigures;
    let connector: CycleFigures;
    if (round % 2 === 0) {
      baseline = await bare();
      connector = await look();
    } else {
      connector = await look();
      baseline = await bare();
    }
    rounds.push({ baseline, connector, appended });
  }
  const ratios = rounds.map((r) => ratioOf(r.connector, r.baseline));
  const medianRatio: Ratio = { wall: median(ratios.map((r) => r.wall)), cpu: median(ratios.map((r) => r.cpu)), serverCpu: median(ratios.map((r) => r.serverCpu)) };
  results.newMailCycle = {
    mailboxes: addresses.length,
    concurrency,
    rounds: rounds.map((r) => ({ appended: r.appended, baseline: summary(r.baseline), connector: summary(r.connector) })),
    ratios,
    medianRatio,
  };
  const inRound = (i: number, label: string) => (rounds.length > 1 ? `round ${String(i + 1)}: ${label}` : label);
  tables.push({
    title: `A poll cycle over ${String(addresses.length)} IMAP mailboxes with 1 new message each (app-only, ${String(concurrency)} at once; ${String(NEW_MAIL_ROUNDS)} round(s), baseline first in odd rounds)`,
    header: CYCLE_HEADER,
    rows: [
      ...rounds.flatMap((r, i) => [cycleRow({ ...r.connector, label: inRound(i, r.connector.label) }), cycleRow({ ...r.baseline, label: inRound(i, r.baseline.label) })]),
      ...ratios.map((r, i) => ratioRow(inRound(i, 'connector / baseline'), r)),
      ...(rounds.length > 1 ? [ratioRow('median over rounds', medianRatio)] : []),
      ...rounds.map((r, i) => [inRound(i, `messages emitted / found (${String(r.appended)} appended)`), `${String(r.connector.tally?.emitted ?? 0)} / ${String(r.connector.tally?.found ?? 0)}`, '', '', '', '', '', '', '']),
      ...rounds.flatMap((r) => [r.connector, r.baseline].flatMap(failureRows)),
    ],
  });
});

/**
 * An app-only IMAP connection with `count` mailboxes, as they are once their first look ran: the
 * Maildirs made and their INBOX's UIDVALIDITY and UIDNEXT read by one doveadm run, the mailbox and
 * receive-state rows written in parallel with the cursor a first look writes. (addMailbox lists
 * the connection's mailboxes on every call: for 1,000 a quadratic number of reads that have
 * nothing to do with polling.) Short addresses without "_": Dovecot cuts the user part of a stats
 * metric's name after 31 characters, and imapCommands splits names at the first "_".
 */
async function imapFleet(count: number, took = { dovecotMs: 0, rowsMs: 0 }): Promise<{ connection: Connection; mailboxes: Mailbox[] }> {
  const connection = await kit.application(CUSTOMER, tenantId, { send: 'smtp', receive: 'imap' }, []);
  const run = randomUUID().slice(0, 6);
  const addresses = Array.from({ length: count }, (_, index) => `p${String(index)}-${run}@contoso.test`);
  let started = Date.now();
  const inboxes = await dovecotInboxes(addresses);
  took.dovecotMs = Date.now() - started;
  started = Date.now();
  const now = new Date();
  const mailboxes = addresses.map((address): Mailbox => ({
    id: newId('mbx'),
    customerId: connection.customerId,
    connectionId: connection.id,
    address,
    kind: 'shared',
    sendTransport: connection.transports.send,
    receiveTransport: connection.transports.receive,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  }));
  const { repositories } = env.services;
  await pool(count, 32, async (index) => {
    const mailbox = mailboxAt(mailboxes, index);
    const inbox = inboxes.get(mailbox.address);
    const fresh = newReceiveState(mailbox, now);
    if (!inbox || !fresh) throw new Error(`no INBOX status for ${mailbox.address}`);
    const state: ReceiveState = { ...fresh, imap: { [INBOX]: { uidValidity: inbox.uidValidity, lastUid: inbox.uidNext - 1 } }, lastPollAt: now.toISOString(), lastSuccessAt: now.toISOString() };
    await repositories.mailboxes.create(keys.mailbox(mailbox.customerId, mailbox.connectionId, mailbox.id), mailbox);
    await repositories.receiveState.create(keys.receiveState(mailbox.customerId, mailbox.connectionId, mailbox.id), state);
  });
  took.rowsMs = Date.now() - started;
  return { connection, mailboxes };
}

/** Makes each user's Maildir (Dovecot makes a mailbox on first use) and reads its INBOX's status: one doveadm process for them all. */
async function dovecotInboxes(addresses: readonly string[]): Promise<Map<string, { uidValidity: string; uidNext: number }>> {
  const directory = await mkdtemp(join(tmpdir(), 'poll-bench-'));
  try {
    const users = join(directory, 'users');
    await writeFile(users, `${addresses.join('\n')}\n`);
    const output = await new Promise<string>((resolve, reject) => {
      execFile('doveadm', ['-c', join(stackDir, 'etc', 'dovecot.conf'), '-f', 'tab', 'mailbox', 'status', '-F', users, 'uidvalidity uidnext', 'INBOX'], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`doveadm mailbox status failed: ${stderr.trim() || error.message}`));
        else resolve(stdout);
      });
    });
    // A header line (username, mailbox, then the fields in Dovecot's order), then one line per user.
    const [header = '', ...lines] = output.trim().split('\n');
    const column = (name: string) => header.toLowerCase().split('\t').indexOf(name);
    const [user, uidValidity, uidNext] = [column('username'), column('uidvalidity'), column('uidnext')];
    if (user < 0 || uidValidity < 0 || uidNext < 0) throw new Error(`doveadm printed an unexpected header: ${header}`);
    const inboxes = new Map<string, { uidValidity: string; uidNext: number }>();
    for (const line of lines) {
      const fields = line.split('\t');
      inboxes.set(fields[user] ?? '', { uidValidity: fields[uidValidity] ?? '', uidNext: Number(fields[uidNext]) });
    }
    return inboxes;
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

interface CycleFigures {
  label: string;
  mailboxes: number;
  wallMs: number;
  cpuMs: number;
  serverCpuMs: number;
  /** By method and table, in all. */
  tableRequests: Record<string, number>;
  /** By command, in all, as Dovecot counted them. */
  imapCommands: Record<string, number>;
  memory: MemoryFigures;
  tally?: { emitted: number; found: number };
  /** Sessions that failed, by code: counted, not thrown (this machine is shared and can be slow). */
  failures: Record<string, number>;
}

interface Ratio {
  wall: number;
  cpu: number;
  serverCpu: number;
}

/** One pass over `addresses`, `concurrency` sessions at a time, with everything counted around it. Each session ends with one LOGOUT. */
async function cycle(label: string, addresses: readonly string[], run: (index: number) => Promise<unknown>, tally?: CycleFigures['tally']): Promise<CycleFigures> {
  const commandsBefore = await imapCommands(addresses);
  const serverBefore = await processTreeCpuMs(dovecotPid);
  const tableBefore = tableRequests.snapshot();
  const memory = memoryWatch();
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  const failures: Record<string, number> = {};
  const succeeded: string[] = [];
  try {
    await pool(addresses.length, concurrency, async (index) => {
      try {
        await run(index);
        succeeded.push(addresses[index] ?? '');
      } catch (error) {
        const code = failureCode(error);
        if (code === undefined) throw error;
        failures[code] = (failures[code] ?? 0) + 1;
      }
    });
  } catch (error) {
    memory.stop();
    throw new Error(`${label}: ${error instanceof Error ? error.message : String(error)}; Dovecot's last complaints:\n${await dovecotComplaints()}`, { cause: error });
  }
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const used = process.cpuUsage(cpu);
  const memoryFigures = memory.stop();
  const tableAfter = tableRequests.snapshot();
  // A failed session may not have logged out: only the others are waited for.
  countLogouts(succeeded);
  const commandsAfter = await imapCommands(addresses);
  // Let the master reap the last sessions' processes, so their CPU is in its children's total.
  await sleep(300);
  const serverCpuMs = (await processTreeCpuMs(dovecotPid)) - serverBefore;
  const commands: Record<string, number> = {};
  for (const address of addresses) {
    const before = commandsBefore.get(address) ?? {};
    for (const [command, count] of Object.entries(commandsAfter.get(address) ?? {})) commands[command] = (commands[command] ?? 0) + count - (before[command] ?? 0);
  }
  const table: Record<string, number> = {};
  for (const [key, n] of Object.entries(tableAfter)) table[key] = n - (tableBefore[key] ?? 0);
  return { label, mailboxes: addresses.length, wallMs, cpuMs: (used.user + used.system) / 1000, serverCpuMs, tableRequests: table, imapCommands: commands, memory: memoryFigures, failures, ...(tally && { tally }) };
}

/** One side's blocks as one cycle: times and counts add up; the memory peak is the largest block's. */
function combine(blocks: readonly CycleFigures[]): CycleFigures {
  const [first] = blocks;
  if (!first) throw new Error('no blocks');
  const add = (take: (f: CycleFigures) => Record<string, number>) => {
    const total: Record<string, number> = {};
    for (const block of blocks) for (const [key, n] of Object.entries(take(block))) total[key] = (total[key] ?? 0) + n;
    return total;
  };
  const sum = (take: (f: CycleFigures) => number) => blocks.reduce((total, block) => total + take(block), 0);
  const max = (take: (f: CycleFigures) => number) => Math.max(...blocks.map(take));
  return {
    label: first.label,
    mailboxes: sum((f) => f.mailboxes),
    wallMs: sum((f) => f.wallMs),
    cpuMs: sum((f) => f.cpuMs),
    serverCpuMs: sum((f) => f.serverCpuMs),
    tableRequests: add((f) => f.tableRequests),
    imapCommands: add((f) => f.imapCommands),
    failures: add((f) => f.failures),
    memory: {
      heapBefore: first.memory.heapBefore,
      heapPeakDelta: max((f) => f.memory.heapPeakDelta),
      heapKeptDelta: sum((f) => f.memory.heapKeptDelta),
      rssBefore: first.memory.rssBefore,
      rssPeakDelta: max((f) => f.memory.rssPeakDelta),
      rssAfterDelta: sum((f) => f.memory.rssAfterDelta),
      samples: sum((f) => f.memory.samples),
    },
  };
}

/** A session that failed (for a look, its outcome's code), counted rather than thrown. */
class SessionFailed extends Error {
  constructor(readonly code: string) {
    super(`failed: ${code}`);
  }
}

/** The code a failed session is counted under, or undefined for an error that means the bench itself is wrong. */
function failureCode(error: unknown): string | undefined {
  if (error instanceof SessionFailed) return error.code;
  // imapflow's own failures (a refused or dropped connection, a timeout) carry a code.
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `imapflow ${code}` : undefined;
}

function failureRows(figures: CycleFigures): string[][] {
  const entries = Object.entries(figures.failures);
  return entries.length === 0 ? [] : [[`  failed sessions of "${figures.label}"`, entries.map(([code, n]) => `${code} ${String(n)}`).join(', '), '', '', '', '', '', '', '']];
}

function ratioOf(subject: CycleFigures, baseline: CycleFigures): Ratio {
  return { wall: subject.wallMs / baseline.wallMs, cpu: subject.cpuMs / baseline.cpuMs, serverCpu: subject.serverCpuMs / baseline.serverCpuMs };
}

function perMailbox(counts: Record<string, number>, mailboxes: number): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n !== 0).map(([key, n]) => [key, n / mailboxes]));
}

/** A cycle's figures for the results file: totals, and the counts per mailbox. */
function summary(figures: CycleFigures) {
  return {
    ...figures,
    wallMsPerMailbox: figures.wallMs / figures.mailboxes,
    cpuMsPerMailbox: figures.cpuMs / figures.mailboxes,
    serverCpuMsPerMailbox: figures.serverCpuMs / figures.mailboxes,
    tableRequestsPerLook: perMailbox(figures.tableRequests, figures.mailboxes),
    imapCommandsPerMailbox: perMailbox(figures.imapCommands, figures.mailboxes),
  };
}

/** The last warnings and errors in Dovecot's log, to say why a session failed. */
async function dovecotComplaints(): Promise<string> {
  const log = await readFile(mailServerOrThrow().dovecotLogPath, 'utf8').catch(() => '');
  return log.split('\n').filter((line) => /Warning|Error|Fatal|Panic/.test(line)).slice(-15).join('\n');
}

function countLogouts(addresses: readonly string[]): void {
  for (const address of addresses) loggedOut.set(address, (loggedOut.get(address) ?? 0) + 1);
}

/**
 * IMAP commands Dovecot finished per address, from one `doveadm stats dump` parsed once (the
 * imap_command metric's lines "imap_command_<user>_<command>\tduration\t<count>"; these addresses
 * hold no "_"), read again until it counted every LOGOUT this file's sessions made.
 */
async function imapCommands(addresses: readonly string[]): Promise<Map<string, Record<string, number>>> {
  const wanted = new Set(addresses);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const counts = new Map<string, Record<string, number>>();
    for (const line of (await dumpImapCommandStats(stackDir)).split('\n')) {
      const [name, field, count] = line.split('\t');
      if (field !== 'duration' || !name?.startsWith('imap_command_')) continue;
      const rest = name.slice('imap_command_'.length);
      const cut = rest.indexOf('_');
      if (cut < 0) continue;
      const user = rest.slice(0, cut);
      if (!wanted.has(user)) continue;
      const commands = counts.get(user) ?? {};
      commands[rest.slice(cut + 1).replaceAll('_', ' ')] = Number(count);
      counts.set(user, commands);
    }
    const behind = addresses.filter((address) => (counts.get(address)?.LOGOUT ?? 0) < (loggedOut.get(address) ?? 0));
    if (behind.length === 0) return counts;
    if (Date.now() > deadline) throw new Error(`Dovecot did not count the LOGOUTs of ${String(behind.length)} mailboxes (${behind.slice(0, 3).join(', ')}) within 10 s`);
    await sleep(50);
  }
}

function client(user: string, accessToken: string): ImapFlow {
  const server = mailServerOrThrow();
  const imap = new ImapFlow({ host: server.host, port: server.ports.imaps, secure: true, tls: { ca: server.caPem }, auth: { user, accessToken }, logger: false, disableAutoIdle: true });
  imap.on('error', () => undefined);
  return imap;
}

async function bareStatus(user: string, accessToken: string): Promise<void> {
  const imap = client(user, accessToken);
  await imap.connect();
  await imap.status('INBOX', { uidNext: true, uidValidity: true, messages: true, highestModseq: true });
  await imap.logout();
}

/** SELECT INBOX, FETCH the newest message's source, LOGOUT: what any poller pays to download one new message. */
async function bareFetchNewest(user: string, accessToken: string): Promise<string> {
  const imap = client(user, accessToken);
  await imap.connect();
  await imap.mailboxOpen('INBOX');
  const message = await imap.fetchOne('*', { source: true });
  await imap.logout();
  return message && message.source ? message.source.toString('utf8') : '';
}

async function appendOne(user: string, accessToken: string, messageId: string): Promise<void> {
  const imap = client(user, accessToken);
  await imap.connect();
  await imap.append('INBOX', rfc822(messageId, user));
  await imap.logout();
}

function rfc822(messageId: string, to: string): string {
  return [
    'From: Ana Lima <ana@customer.example>',
    `To: ${to}`,
    'Subject: a question about my order',
    `Message-ID: ${messageId}`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello, my order has not arrived yet. Could you look into it?',
    '',
  ].join('\r\n');
}

const CYCLE_HEADER = ['cycle', 'wall', 'CPU (this process)', 'CPU (Dovecot)', 'table requests per look', 'IMAP commands per mailbox (after login)', 'heap peak Δ', 'heap kept Δ', 'RSS peak Δ'];

function cycleRow(figures: CycleFigures): string[] {
  const per = (value: number) => `${(value / 1000).toFixed(1)} s (${(value / figures.mailboxes).toFixed(1)} ms/mbx)`;
  const counts = (c: Record<string, number>) => {
    const entries = Object.entries(c).sort(([a], [b]) => a.localeCompare(b));
    const total = entries.reduce((sum, [, n]) => sum + n, 0);
    return entries.length === 0 ? '0' : `${round2(total)}: ${entries.map(([key, n]) => `${key} ${round2(n)}`).join(', ')}`;
  };
  return [
    figures.label,
    per(figures.wallMs),
    per(figures.cpuMs),
    per(figures.serverCpuMs),
    counts(perMailbox(figures.tableRequests, figures.mailboxes)),
    counts(perMailbox(figures.imapCommands, figures.mailboxes)),
    mb(figures.memory.heapPeakDelta),
    mb(figures.memory.heapKeptDelta),
    mb(figures.memory.rssPeakDelta),
  ];
}

function ratioRow(label: string, ratio: Ratio): string[] {
  return [label, `${ratio.wall.toFixed(2)}×`, `${ratio.cpu.toFixed(2)}×`, `${ratio.serverCpu.toFixed(2)}×`, '', '', '', '', ''];
}

const round2 = (n: number) => n.toFixed(2).replace(/\.?0+$/, '');
const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

function mailboxAt(mailboxes: readonly Mailbox[], index: number): Mailbox {
  const mailbox = mailboxes[index];
  if (!mailbox) throw new Error(`no mailbox ${String(index)}`);
  return mailbox;
}

function mailServerOrThrow() {
  if (!mailServer) throw new Error('the mail server is not running');
  return mailServer;
}

function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, durationMs)));
}

function warnLoudly(message: string): void {
  const border = `+${'-'.repeat(message.length + 2)}+`;
  console.warn(['', border, `| ${message} |`, border, ''].join('\n'));
}
