import { z } from 'zod';
import type { Connection } from '../domain/connection.js';
import { receiveFolders, type Mailbox } from '../domain/mailbox.js';
import { nextPollAt, retryPollAt, type ReceivePolicy, type ReceiveState } from '../domain/receive-state.js';
import { TokenUnavailableError, type AccessToken, type TokenOptions } from '../identity/access-tokens.js';
import type { Resource } from '../identity/scopes.js';
import type { GraphReceiver } from '../mail/graph-receiver.js';
import { ReceiveAttemptError, type FoundMessage, type ImapReceiver, type Pop3Receiver, type ReceiveTarget } from '../mail/mail-receiver.js';
import { keys, type Repositories } from '../store/repositories.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { graphFolder, upkeepSubscriptions, type SubscriptionDeps } from './graph-subscriptions.js';
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
    await deps.states.remove(job);
    return { outcome: 'gone' };
  }
  let state = await deps.states.ensure(mailbox);
  if (!state) return { outcome: 'gone' };
  if (job.reason === 'schedule' && Date.parse(state.dueAt) > now.getTime() + EARLY_MS) return { outcome: 'not_due' };
  if (!CONNECTED.has(connection.state)) {
    // Nothing to look with until the connection works again; the timer keeps asking, cheaply.
    const code = `connection_${connection.state}`;
    if (state.lastError?.code !== code) {
      await deps.states.change(job, (current) => ({ ...current, lastError: { code, message: `The connection is ${connection.state}; receiving resumes when it is connected again.`, at: now.toISOString() } }));
    }
    return { outcome: 'waiting' };
  }

  const held = await deps.states.acquire(job);
  if (!held) return { outcome: 'busy' };
  state = held.state;
  if (state.transport !== mailbox.receiveTransport) {
    // Another transport reads the mailbox now: its cursors start over.
    state = { ...state, transport: mailbox.receiveTransport, imap: {}, graph: {} };
    delete state.pop3;
  }
  const log = deps.logger.child({ customerId: job.customerId, connectionId: job.connectionId, mailboxId: job.mailboxId, transport: state.transport });
  const target: IngestMailbox = {
    customerId: mailbox.customerId,
    connectionId: mailbox.connectionId,
    mailboxId: mailbox.id,
    address: mailbox.address,
    transport: state.transport,
    tags: connection.tags,
  };
  let emitted = 0;
  const sink = async (found: FoundMessage) => {
    if ((await deps.ingest(target, found)) === 'new') emitted++;
  };

  try {
    const look = await lookWithFreshTokenOnRefusal(deps, connection, mailbox, state, sink);
    deps.metrics.count('receive.polls', { transport: state.transport, outcome: 'ok', reason: job.reason });
    if (emitted > 0) deps.metrics.count('receive.messages', { transport: state.transport }, emitted);
    const finished = deps.now();
    const updated = await held.finish((current) => {
      const next: ReceiveState = { ...current, ...look.changes, transport: state.transport, lastPollAt: now.toISOString(), consecutiveFailures: 0 };
      delete next.lastError;
      if (emitted > 0) next.lastMessageAt = finished.toISOString();
      next.dueAt = nextPollAt(next, mailbox, deps.policy, finished, look.more).toISOString();
      next.lastSuccessAt = finished.toISOString();
      return next;
    });
    if (look.more) await deps.enqueuePoll({ ...job, reason: 'more' }, 0);
    if (look.resynced) log.info('receive: a cursor started over (new UIDVALIDITY, lost delta state or POP3 place); duplicates were dropped');
    return { outcome: 'polled', found: look.found, emitted, more: look.more, resynced: look.resynced, mode: updated?.mode ?? state.mode };
  } catch (error) {
    const failure = failureOf(error);
    if (!failure) {
      await held.finish((current) => current).catch(() => undefined);
      throw error;
    }
    deps.metrics.count('receive.polls', { transport: state.transport, outcome: 'failed', code: failure.code, reason: job.reason });
    if (!(error instanceof TokenUnavailableError)) log.warn('receive: the look failed', { code: failure.code, message: failure.message });
    const finished = deps.now();
    await held.finish((current) => {
      const failures = current.consecutiveFailures + 1;
      const retryAt = failure.retryAfterSeconds !== undefined ? new Date(finished.getTime() + failure.retryAfterSeconds * 1000) : retryPollAt(failures, mailbox, deps.policy, finished);
      return { ...current, lastPollAt: now.toISOString(), consecutiveFailures: failures, lastError: { code: failure.code, message: failure.message, at: finished.toISOString() }, dueAt: retryAt.toISOString() };
    });
    return { outcome: 'failed', code: failure.code };
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
  try {
    return await look(deps, connection, mailbox, state, { mailbox: mailbox.address, accessToken: token.token }, sink);
  } catch (error) {
    if (!(error instanceof ReceiveAttemptError && error.failure.kind === 'authentication')) throw error;
    // A token the server refuses may have been revoked or changed: ask Microsoft for a new one.
    const fresh = await deps.tokens.getAccessToken(connection, resource, { fresh: true });
    return look(deps, connection, mailbox, state, { mailbox: mailbox.address, accessToken: fresh.token }, sink);
  }
}

async function look(deps: PollDeps, connection: Connection, mailbox: Mailbox, state: ReceiveState, target: ReceiveTarget, ingest: (found: FoundMessage) => Promise<void>): Promise<Look> {
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
  const graph = { ...(state.graph ?? {}) };
  let found = 0;
  let more = false;
  let resynced = false;
  const resyncSince = new Date(deps.now().getTime() - deps.resyncDays * 86_400_000);
  for (const folder of folders) {
    const result = await receivers.graph.delta({
      target,
      folder: graphFolder(folder),
      cursor: graph[folder] ?? { since: state.createdAt },
      limit: deps.batchSize,
      resyncSince,
      sink,
    });
    graph[folder] = result.cursor;
    found += result.found;
    more ||= result.more;
    resynced ||= result.resynced;
  }
  return {
    changes: {
      graph,
      subscriptions: subscriptions.subscriptions,
      mode: subscriptions.mode,
      ...(subscriptions.modeReason !== undefined ? { modeReason: subscriptions.modeReason } : { modeReason: undefined }),
      ...(subscriptions.subscribeAfter !== undefined ? { subscribeAfter: subscriptions.subscribeAfter } : { subscribeAfter: undefined }),
    },
    found,
    more,
    resynced,
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
}

function failureOf(error: unknown): PollFailure | undefined {
  if (error instanceof TokenUnavailableError) {
    const { failure } = error;
    return { code: `token_${failure.kind}`, message: `Microsoft did not issue a token (${failure.code}): ${failure.explanation} ${failure.nextStep}` };
  }
  if (error instanceof ReceiveAttemptError) {
    const { failure } = error;
    return {
      code: `${failure.transport}_${failure.kind}`,
      message: failure.detail,
      ...(failure.retryAfterSeconds !== undefined && { retryAfterSeconds: failure.retryAfterSeconds }),
    };
  }
  return undefined;
}
