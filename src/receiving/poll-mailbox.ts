import { z } from 'zod';
import type { Connection } from '../domain/connection.js';
import { receiveFolders, type Mailbox } from '../domain/mailbox.js';
import { nextPollAt, retryPollAt, STUCK_MESSAGE_LIMIT, type ReceivePolicy, type ReceiveState } from '../domain/receive-state.js';
import { CONNECTION_RECHECK_MS } from '../domain/send-failure.js';
import { TokenUnavailableError, type AccessToken, type TokenOptions } from '../identity/access-tokens.js';
import type { Resource } from '../identity/scopes.js';
import type { GraphReceiver } from '../mail/graph-receiver.js';
import { ReceiveAttemptError, type FoundMessage, type ImapReceiver, type Pop3Receiver, type ReceiveTarget } from '../mail/mail-receiver.js';
import { keys, type Repositories } from '../store/repositories.js';
import { UNCHANGED } from '../store/table-repository.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { graphFolder, upkeepSubscriptions, type SubscriptionDeps, type SubscriptionOutcome } from './graph-subscriptions.js';
import { receiveFailureAdvice } from './receive-failure-advice.js';
import { errorFields } from '../mail/error-fields.js';
import type { IngestMailbox, IngestOutcome } from './ingest-message.js';
import type { ReceiveStates } from './receive-states.js';

/**
 * The poll-mailbox queue's work: one look at one mailbox. It takes the mailbox's lease (two
 * instances never look at one mailbox at once), gets a token, lets the mailbox's transport hand
 * over what is new since its cursors, turns each message into an event (ingest), and writes the
 * cursors and when the mailbox is next due. A Graph mailbox also keeps its subscriptions: while
 * they work, delta only catches up now and then; when they cannot be made, delta polls.
 *
 * A token the server refuses is asked for again, fresh from Microsoft, once: a refresh that fails
 * for good moves the connection to needs_reauth (the token lifecycle does that), and the mailbox
 * waits, without a look, until the connection works again.
 */

export const POLL_REASONS = ['schedule', 'more', 'notification', 'missed', 'resubscribe', 'manual'] as const;

export const pollJobSchema = z.object({
  customerId: z.string().min(1),
  connectionId: z.string().min(1),
  mailboxId: z.string().min(1),
  /** Why: a scheduled look waits for its due time; the others look now. */
  reason: z.enum(POLL_REASONS).default('schedule'),
});
export type PollJob = z.input<typeof pollJobSchema>;

export interface Receivers {
  imap: ImapReceiver;
  pop3: Pop3Receiver;
  graph: GraphReceiver;
}

export interface PollDeps {
  states: ReceiveStates;
  connections: Repositories['connections'];
  mailboxes: Repositories['mailboxes'];
  tokens: { getAccessToken(connection: Connection, resource: Resource, options?: TokenOptions): Promise<AccessToken> };
  receivers(connection: Connection): Receivers;
  ingest(mailbox: IngestMailbox, found: FoundMessage): Promise<IngestOutcome>;
  subscriptions: SubscriptionDeps;
  enqueuePoll(job: PollJob, delaySeconds: number): Promise<void>;
  policy: ReceivePolicy;
  /** Messages handed over per folder per look. */
  batchSize: number;
  /** How far back a cursor that had to start over looks again. */
  resyncDays: number;
  logger: Logger;
  metrics: Metrics;
  now(): Date;
}

export type PollOutcome =
  | { outcome: 'polled'; found: number; emitted: number; more: boolean; resynced: boolean; mode: ReceiveState['mode'] }
  | { outcome: 'failed'; code: string }
  | { outcome: 'not_due' | 'busy' | 'gone' | 'waiting' };

/** A scheduled look that arrives this early still counts as due (the timer queues a minute ahead). */
const EARLY_MS = 5_000;
const CONNECTED = new Set<Connection['state']>(['connected', 'degraded']);

export async function pollMailbox(deps: PollDeps, input: PollJob): Promise<PollOutcome> {
  const job = pollJobSchema.parse(input);
  const now = deps.now();
  const mailbox = (await deps.mailboxes.get(keys.mailbox(job.customerId, job.connectionId, job.mailboxId)))?.value;
  const connection = (await deps.connections.get(keys.connection(job.customerId, job.connectionId)))?.value;
  if (!mailbox || !connection || connection.state === 'disconnected' || mailbox.receiveTransport === 'none') {
    await stopReceiving(deps, job);
    return { outcome: 'gone' };
  }
  const read = await deps.states.ensure(mailbox);
  if (!read) return { outcome: 'gone' };
  if (job.reason === 'schedule' && Date.parse(read.value.dueAt) > now.getTime() + EARLY_MS) return { outcome: 'not_due' };
  if (!CONNECTED.has(connection.state)) {
    // Nothing to look with until the connection works again: ask again in a few minutes, not every tick.
    const waiting = connection.state;
    await deps.states.change(job, (current) => ({
      ...current,
      dueAt: new Date(now.getTime() + CONNECTION_RECHECK_MS).toISOString(),
      lastError: { code: `connection_${waiting}`, message: connectionWaits(waiting), at: current.lastError?.code === `connection_${waiting}` ? current.lastError.at : now.toISOString() },
    }));
    return { outcome: 'waiting' };
  }

  const held = await deps.states.acquire(job, read);
  if (!held) {
    // A look is running; one asked for out of turn (a lifecycle notification) must not be lost: it runs again after.
    if (job.reason !== 'schedule' && job.reason !== 'more') {
      // Asked on the row only while the lease is live (one conditional write): a look that finished
      // between our try and this write would never see the request, so then it is queued again now.
      const asked = { whileRunning: false };
      await deps.states.change(job, (current) => {
        asked.whileRunning = current.lease !== undefined && current.lease.expiresAt > deps.now().toISOString();
        return asked.whileRunning ? { ...current, rerunRequestedAt: now.toISOString() } : UNCHANGED;
      });
      if (!asked.whileRunning) await deps.enqueuePoll(job, 0);
    }
    return { outcome: 'busy' };
  }
  let state = held.state;
  if (state.transport !== mailbox.receiveTransport) {
    // Another transport reads the mailbox now: its cursors start over.
    state = { ...state, transport: mailbox.receiveTransport, imap: {}, graph: {} };
    delete state.pop3;
  }
  const transport = state.transport;
  const log = deps.logger.child({ customerId: job.customerId, connectionId: job.connectionId, mailboxId: job.mailboxId, transport });
  const target: IngestMailbox = { customerId: mailbox.customerId, connectionId: mailbox.connectionId, mailboxId: mailbox.id, address: mailbox.address, transport, tags: connection.tags };
  let emitted = 0;
  const dimensions = { customerId: job.customerId, connectionId: job.connectionId, mailboxId: job.mailboxId, tenantId: connection.tenantId, transport };
  const startedAt = Date.now();
  const stuck = state.stuck;
  const sink = async (found: FoundMessage) => {
    if (stuck && stuck.fingerprint === found.fingerprint && stuck.failures >= STUCK_MESSAGE_LIMIT) {
      deps.metrics.count('receive.messages_set_aside', dimensions);
      log.error('receive: a message failed to be kept several times and is set aside; its MIME could not be parsed or stored (see earlier errors)', { fingerprint: found.fingerprint });
      return;
    }
    try {
      if ((await deps.ingest(target, found)) === 'new') emitted++;
    } catch (error) {
      // Downloading it failed: the transport's trouble, not the message's.
      if (error instanceof ReceiveAttemptError) throw error;
      throw new IngestError(found.fingerprint, error);
    }
  };

  // Set while the look's outcome is written: a look asked for while this one ran runs once it is done.
  const asked = { rerun: false };
  const askedMeanwhile = (current: ReceiveState) => current.rerunRequestedAt !== undefined && current.rerunRequestedAt >= held.startedAt.toISOString();
  try {
    const look = await lookWithFreshTokenOnRefusal(deps, connection, mailbox, state, sink);
    deps.metrics.count('receive.polls', { ...dimensions, outcome: 'ok', reason: job.reason });
    deps.metrics.record('receive.poll_duration', Date.now() - startedAt, { ...dimensions, outcome: 'ok' });
    if (emitted > 0) deps.metrics.count('receive.messages', dimensions, emitted);
    const finished = deps.now();
    const written = await held.finish((current) => {
      asked.rerun = askedMeanwhile(current);
      const next: ReceiveState = { ...current, ...look.changes, transport, lastPollAt: now.toISOString(), consecutiveFailures: 0 };
      delete next.lastError;
      delete next.stuck;
      delete next.rerunRequestedAt;
      if (emitted > 0) next.lastMessageAt = finished.toISOString();
      next.dueAt = nextPollAt(next, mailbox, deps.policy, finished, look.more).toISOString();
      next.lastSuccessAt = finished.toISOString();
      return next;
    });
    if (look.more || asked.rerun) await deps.enqueuePoll({ ...job, reason: look.more ? 'more' : 'manual' }, 0);
    if (look.resynced) log.info('receive: a cursor started over (new UIDVALIDITY, lost delta state or POP3 place); duplicates were dropped');
    return { outcome: 'polled', found: look.found, emitted, more: look.more, resynced: look.resynced, mode: written?.mode ?? state.mode };
  } catch (error) {
    const failure = failureOf(error);
    deps.metrics.count('receive.polls', { ...dimensions, outcome: 'failed', code: failure.code, reason: job.reason });
    deps.metrics.record('receive.poll_duration', Date.now() - startedAt, { ...dimensions, outcome: 'failed' });
    if (failure.code.endsWith('_throttled')) {
      deps.metrics.count('throttle.responses', { ...dimensions, service: transport === 'graph' ? 'graph' : 'exchange', operation: 'receive', code: failure.code });
    }
    if (failure.unexpected) log.error('receive: the look failed unexpectedly', { error });
    else if (!(error instanceof TokenUnavailableError)) log.warn('receive: the look failed', { code: failure.code, detail: failure.message });
    const finished = deps.now();
    await held.finish((current) => {
      asked.rerun = askedMeanwhile(current);
      const failures = current.consecutiveFailures + 1;
      const retryAt = failure.retryAfterSeconds !== undefined ? new Date(finished.getTime() + failure.retryAfterSeconds * 1000) : retryPollAt(failures, mailbox, deps.policy, finished);
      const next: ReceiveState = { ...current, lastPollAt: now.toISOString(), consecutiveFailures: failures, lastError: { code: failure.code, message: failure.message, at: finished.toISOString() }, dueAt: retryAt.toISOString() };
      delete next.rerunRequestedAt;
      if (failure.stuckOn !== undefined) next.stuck = { fingerprint: failure.stuckOn, failures: current.stuck?.fingerprint === failure.stuckOn ? current.stuck.failures + 1 : 1 };
      return next;
    });
    // A lifecycle notification during a failed look still gets its look (which backs off on its own if it fails too).
    if (asked.rerun) await deps.enqueuePoll({ ...job, reason: 'manual' }, 0);
    return { outcome: 'failed', code: failure.code };
  }
}

/** The mailbox no longer receives: its row goes, and so do its subscriptions' index rows (Graph lets them expire). */
async function stopReceiving(deps: PollDeps, job: z.output<typeof pollJobSchema>): Promise<void> {
  const state = await deps.states.get(job);
  for (const subscription of Object.values(state?.subscriptions ?? {})) await deps.subscriptions.index.delete(keys.graphSubscription(subscription.id));
  await deps.states.remove(job);
}

function connectionWaits(state: Connection['state']): string {
  const nextStep =
    state === 'needs_reauth'
      ? 'Send the user the reconnect link (the connection.state_changed event has it, or POST …/consent-link).'
      : state === 'needs_admin'
        ? 'An administrator of the customer\'s tenant has to grant consent again (POST …/consent-link with purpose admin-grant).'
        : state === 'app_misconfigured'
          ? 'Fix the app registration\'s credential (see the app.misconfigured event).'
          : 'Finish connecting it (the consent link).';
  return `The connection is ${state}, so the mailbox is not read; nothing is lost, mail that arrives meanwhile is emitted once it is connected again. ${nextStep}`;
}

/** A message the sink could not keep: which one, and why. */
class IngestError extends Error {
  constructor(
    readonly fingerprint: string,
    readonly reason: unknown,
  ) {
    super('a received message could not be kept', { cause: reason });
    this.name = 'IngestError';
  }
}

interface Look {
  changes: Partial<ReceiveState>;
  found: number;
  more: boolean;
  resynced: boolean;
}

async function lookWithFreshTokenOnRefusal(
  deps: PollDeps,
  connection: Connection,
  mailbox: Mailbox,
  state: ReceiveState,
  sink: (found: FoundMessage) => Promise<void>,
): Promise<Look> {
  const resource: Resource = state.transport === 'graph' ? 'graph' : 'outlook';
  const token = await deps.tokens.getAccessToken(connection, resource);
  // The subscriptions a first try made are kept in the row at once, so a second try does not make them again.
  const progress = { state };
  try {
    return await look(deps, connection, mailbox, progress, { mailbox: mailbox.address, accessToken: token.token }, sink);
  } catch (error) {
    if (!(error instanceof ReceiveAttemptError && error.failure.kind === 'authentication')) throw error;
    // A token the server refuses may have been revoked or changed: ask Microsoft for a new one.
    const fresh = await deps.tokens.getAccessToken(connection, resource, { fresh: true });
    return look(deps, connection, mailbox, progress, { mailbox: mailbox.address, accessToken: fresh.token }, sink);
  }
}

async function look(
  deps: PollDeps,
  connection: Connection,
  mailbox: Mailbox,
  progress: { state: ReceiveState },
  target: ReceiveTarget,
  ingest: (found: FoundMessage) => Promise<void>,
): Promise<Look> {
  const { state } = progress;
  const receivers = deps.receivers(connection);
  const folders = receiveFolders(mailbox);
  // Events name a folder as the mailbox's settings do, whatever the transport calls it (INBOX, inbox, POP3).
  const sink = (found: FoundMessage) => ingest({ ...found, folder: settingName(folders, found.folder, state.transport) });
  if (state.transport === 'imap') {
    const results = await receivers.imap.poll({
      target,
      folders: folders.map((folder) => ({ path: imapPath(folder), ...(state.imap?.[folder] && { cursor: state.imap[folder] }) })),
      limit: deps.batchSize,
      resyncDays: deps.resyncDays,
      sink,
    });
    const imap: NonNullable<ReceiveState['imap']> = {};
    folders.forEach((folder, index) => {
      const cursor = results[index]?.cursor;
      if (cursor) imap[folder] = cursor;
    });
    return { changes: { imap }, found: sum(results.map((r) => r.found)), more: results.some((r) => r.more), resynced: results.some((r) => r.resynced) };
  }
  if (state.transport === 'pop3') {
    const result = await receivers.pop3.poll({
      target,
      ...(state.pop3 && { cursor: state.pop3 }),
      limit: deps.batchSize,
      deleteAfterReceive: mailbox.receive?.deleteAfterReceive === true,
      sink,
    });
    return { changes: { pop3: result.cursor }, found: result.found, more: result.more, resynced: false };
  }

  const subscriptions = await upkeepSubscriptions(deps.subscriptions, receivers.graph, target, state, folders);
  // Written at once, merged into the row as it is now: they exist at Graph whatever happens to the rest of the look.
  const fields = subscriptionFields(subscriptions);
  progress.state = { ...state, ...fields };
  if (!sameSubscriptionFields(state, fields)) await deps.states.change(state, (current) => ({ ...current, ...fields }));
  const graph = { ...(state.graph ?? {}) };
  let found = 0;
  let more = false;
  let resynced = false;
  const now = deps.now();
  const resyncSince = new Date(now.getTime() - deps.resyncDays * 86_400_000);
  for (const folder of folders) {
    const result = await receivers.graph.delta({
      target,
      folder: graphFolder(folder),
      // A folder watched from the start reads from when the mailbox was added; one added later from now, not its history.
      cursor: graph[folder] ?? { since: state.lastSuccessAt === undefined ? state.createdAt : now.toISOString() },
      limit: deps.batchSize,
      resyncSince,
      sink,
    });
    graph[folder] = result.cursor;
    found += result.found;
    more ||= result.more;
    resynced ||= result.resynced;
  }
  return { changes: { graph }, found, more, resynced };
}

function sameSubscriptionFields(state: ReceiveState, fields: ReturnType<typeof subscriptionFields>): boolean {
  const of = (value: Partial<ReceiveState>) => JSON.stringify([value.subscriptions ?? {}, value.mode, value.modeReason ?? null, value.subscribeAfter ?? null]);
  return of(state) === of(fields);
}

function subscriptionFields(outcome: SubscriptionOutcome): Pick<ReceiveState, 'subscriptions' | 'mode'> & Partial<Pick<ReceiveState, 'modeReason' | 'subscribeAfter'>> {
  return {
    subscriptions: outcome.subscriptions,
    mode: outcome.mode,
    ...(outcome.modeReason !== undefined ? { modeReason: outcome.modeReason } : { modeReason: undefined }),
    ...(outcome.subscribeAfter !== undefined ? { subscribeAfter: outcome.subscribeAfter } : { subscribeAfter: undefined }),
  };
}

function settingName(folders: readonly string[], found: string, transport: ReceiveState['transport']): string {
  if (transport === 'pop3') return folders[0] ?? found;
  return folders.find((folder) => folder === found || imapPath(folder) === found || graphFolder(folder) === found) ?? found;
}

function imapPath(folder: string): string {
  return folder.toLowerCase() === 'inbox' ? 'INBOX' : folder;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

interface PollFailure {
  code: string;
  message: string;
  retryAfterSeconds?: number;
  /** The message the look failed on, when it is one message's fault (not an outage). */
  stuckOn?: string;
  unexpected?: true;
}

function failureOf(error: unknown): PollFailure {
  if (error instanceof TokenUnavailableError) {
    const { failure } = error;
    return { code: `token_${failure.kind}`, message: `Microsoft did not issue a token (${failure.code}): ${failure.explanation} ${failure.nextStep}` };
  }
  if (error instanceof ReceiveAttemptError) {
    const { failure } = error;
    return {
      code: `${failure.transport}_${failure.kind}`,
      message: `${failure.detail} ${receiveFailureAdvice(failure)}`,
      ...(failure.retryAfterSeconds !== undefined && { retryAfterSeconds: failure.retryAfterSeconds }),
    };
  }
  if (error instanceof IngestError) {
    if (isStorageOutage(error.reason)) return { code: 'storage_unavailable', message: 'Storage did not answer while a received message was kept; the look is tried again.' };
    return {
      code: 'message_not_kept',
      message: `A received message could not be kept (${errorText(error.reason)}); it is tried ${String(STUCK_MESSAGE_LIMIT)} times, then set aside so the mailbox goes on.`,
      stuckOn: error.fingerprint,
    };
  }
  if (isStorageOutage(error)) return { code: 'storage_unavailable', message: 'Storage did not answer during the look; it is tried again.' };
  return { code: 'internal_error', message: `The look failed on the connector's side (${errorText(error)}); it is tried again.`, unexpected: true };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.slice(0, 300) : 'unknown error';
}

function isStorageOutage(error: unknown): boolean {
  const { statusCode, code } = errorFields(error);
  return (typeof statusCode === 'number' && (statusCode >= 500 || statusCode === 408)) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND'].includes(String(code));
}
