import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Connection } from '../domain/connection.js';
import type { EventType } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import type { Mailbox } from '../domain/mailbox.js';
import { KEPT_ATTEMPTS, type MessageContent, type OutboundMessage, type SendAttempt, type SendError } from '../domain/outbound-message.js';
import { classifySendFailure, CONNECTION_RECHECK_MS, retryDelayMs, type SendFailure } from '../domain/send-failure.js';
import type { NewEvent } from '../events/record-event.js';
import { TokenUnavailableError, type AccessToken } from '../identity/access-tokens.js';
import type { Resource } from '../identity/scopes.js';
import { SendAttemptError, type MailSender, type SendTarget } from '../mail/mail-transport.js';
import { keys, type Repositories } from '../store/repositories.js';
import { ConcurrencyError } from '../store/table-repository.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { OutboxContent } from './outbox-content.js';
import type { SendGovernor } from './send-governor.js';
import type { SendJob } from './submit-message.js';

/**
 * The send-mail queue's work: one outbound message, one attempt. The message's row says where it
 * is; this decides what happens next and writes it before anything else happens:
 *
 * - `queued`/`deferred` and due: book a send with the governor, take a request slot, mark the row
 *   `sending` (with how long the attempt may take), send, and record `sent`, `deferred` or `failed`.
 * - not due yet (sendAt, a booked time, a retry): back to the queue with the delay.
 * - `sending` past its time: the worker died, perhaps after Microsoft took the message; the next
 *   attempt first looks for its Message-ID in Sent Items and records it sent when it is there.
 * - `sent`/`failed`: nothing to do but make sure the event of that change was recorded.
 *
 * Queue messages can be duplicated; the row's ETag makes sure only one worker sends.
 */

export const sendJobSchema = z.object({ customerId: z.string().min(1), messageId: z.string().min(1) });

export interface SendDeps {
  outbox: Repositories['outbox'];
  connections: Repositories['connections'];
  mailboxes: Repositories['mailboxes'];
  content: OutboxContent;
  tokens: { getAccessToken(connection: Connection, resource: Resource): Promise<AccessToken> };
  senders(connection: Connection): { graph: MailSender; smtp: MailSender };
  governor: SendGovernor;
  enqueue(job: SendJob, delaySeconds: number): Promise<void>;
  recordEvent(event: NewEvent): Promise<unknown>;
  logger: Logger;
  metrics: Metrics;
  now(): Date;
  sleep?(ms: number): Promise<void>;
}

export type SendOutcome =
  | { outcome: 'sent' | 'already_sent' | 'failed' | 'deferred' }
  | { outcome: 'waiting'; until: Date; reason: 'scheduled' | 'governor' | 'in_progress' | 'retry' }
  | { outcome: 'done' | 'gone' | 'busy' };

/** The longest a governor wait is slept through in the worker rather than queued. */
const INLINE_WAIT_MS = 1_000;
const STATES_THAT_WAIT = new Set<Connection['state']>(['needs_reauth', 'needs_admin', 'app_misconfigured', 'pending']);

/** How long an attempt may take before it counts as dead: two minutes, and five seconds more per MB. */
export function attemptTimeoutMs(size: number): number {
  return Math.min(10 * 60_000, 120_000 + Math.ceil(size / (1024 * 1024)) * 5_000);
}

export async function sendMessage(deps: SendDeps, job: SendJob): Promise<SendOutcome> {
  const key = keys.outboundMessage(job.customerId, job.messageId);
  const stored = await deps.outbox.get(key);
  if (!stored) {
    deps.logger.warn('send: no such message (deleted?); nothing to send', { customerId: job.customerId, messageId: job.messageId });
    return { outcome: 'gone' };
  }
  const message = stored.value;
  const now = deps.now();
  const log = deps.logger.child({ customerId: message.customerId, connectionId: message.connectionId, messageId: message.id });

  if (message.status === 'sent' || message.status === 'failed') {
    // A retry of a worker that wrote the change but not its event, or stopped before removing the message's blobs.
    if (message.lastEvent) await deps.recordEvent(eventOf(message, message.lastEvent));
    await discardContent(deps, message, undefined, log);
    return { outcome: 'done' };
  }
  // A deferral whose event may not have been recorded (the worker stopped after writing the row).
  if (message.status === 'deferred' && message.lastEvent) await deps.recordEvent(eventOf(message, message.lastEvent));
  const notBefore = Math.max(Date.parse(message.sendAt ?? '') || 0, Date.parse(message.nextAttemptAt ?? '') || 0);
  if (notBefore > now.getTime() + INLINE_WAIT_MS) return requeue(deps, message, new Date(notBefore), message.sendAt && notBefore === Date.parse(message.sendAt) ? 'scheduled' : 'retry');
  if (message.status === 'sending' && Date.parse(message.sendingUntil ?? '') > now.getTime()) {
    return requeue(deps, message, new Date(Date.parse(message.sendingUntil ?? '') + 5_000), 'in_progress');
  }
  // A `sending` row past its time is a worker that died mid-attempt: Microsoft may have the message.
  const verify = message.verifyBeforeSend === true || message.status === 'sending';

  const writer = new OutboxWriter(deps, key, stored.etag, message, log);
  if (now.getTime() >= Date.parse(message.expiresAt)) {
    const error: SendError = message.lastError ?? { class: 'transient', code: 'expired', message: 'The message could not be sent within its retry window.' };
    return writer.fail(error, 'The message was not sent within 24 hours; it is not tried again.');
  }

  const connection = (await deps.connections.get(keys.connection(message.customerId, message.connectionId)))?.value;
  if (!connection || connection.state === 'disconnected') {
    return writer.fail({ class: 'permanent', code: 'disconnected', message: 'The connection was disconnected, so the message cannot be sent.' });
  }
  writer.tags = connection.tags;
  if (STATES_THAT_WAIT.has(connection.state)) {
    return writer.defer(connectionWaits(connection), new Date(Math.min(now.getTime() + CONNECTION_RECHECK_MS, Date.parse(message.expiresAt))), {
      quietIfSame: true,
      outcomeUnknown: verify,
    });
  }
  const mailbox = (await deps.mailboxes.get(keys.mailbox(message.customerId, message.connectionId, message.mailboxId)))?.value;
  if (!mailbox) return writer.fail({ class: 'permanent', code: 'mailbox_removed', message: `The mailbox ${message.from} was removed from the connection.` });

  const bookingId = `${message.id}#${String(message.attemptCount + 1)}`;
  // A slot of its own per invocation: a duplicated queue message must neither share nor free another's.
  const slotId = `${bookingId}/${randomUUID()}`;
  const holdMs = attemptTimeoutMs(message.size);
  const booking = await deps.governor.book(mailbox.address, bookingId, { id: slotId, holdMs });
  const held = (inline: boolean, ms: number) => {
    const dimensions = { ...dimensionsOf(message, connection), inline };
    deps.metrics.count('send.governor_waits', dimensions);
    deps.metrics.record('send.governor_wait', Math.max(0, ms), dimensions);
  };
  if (!booking.slotTaken) {
    const wait = booking.at.getTime() - deps.now().getTime();
    if (wait > INLINE_WAIT_MS || !booking.booked) {
      held(false, wait);
      return requeue(deps, message, booking.at, 'governor');
    }
    if (wait > 0) {
      held(true, wait);
      await (deps.sleep ?? defaultSleep)(wait);
    }
    const slot = await deps.governor.acquire(mailbox.address, bookingId, slotId, holdMs);
    if (!slot.granted) {
      held(false, slot.retryAt.getTime() - deps.now().getTime());
      return requeue(deps, message, slot.retryAt, 'governor');
    }
  }
  try {
    if (!(await writer.claim(verify))) return { outcome: 'busy' };
    return await attempt(deps, writer, connection, mailbox, verify);
  } finally {
    await deps.governor.release(mailbox.address, slotId).catch((error: unknown) => {
      log.warn('send: could not give the governor slot back (it frees itself)', { error });
    });
  }
}

async function attempt(deps: SendDeps, writer: OutboxWriter, connection: Connection, mailbox: Mailbox, verify: boolean): Promise<SendOutcome> {
  const message = writer.current;
  const resource: Resource = message.transport === 'graph' ? 'graph' : 'outlook';
  const sender = deps.senders(connection)[message.transport];
  let handedOver = false;
  let verified = false;
  let content: MessageContent | undefined;
  let outcome: 'sent' | 'already_sent' = 'sent';
  const startedAt = Date.now();
  const dimensions = dimensionsOf(message, connection);
  try {
    const token = await deps.tokens.getAccessToken(connection, resource);
    const target: SendTarget = { mailbox: mailbox.address, accessToken: token.token, imapAccess: mailbox.receiveTransport === 'imap' };
    const found = verify ? await sender.findSent(target, message.internetMessageId) : false;
    if (found === true) {
      outcome = 'already_sent';
    } else {
      if (found === undefined) {
        writer.log.warn('send: an earlier attempt may have sent this message, but its Sent Items cannot be searched; sending again', { transport: message.transport });
      }
      verified = verify;
      content = await deps.content.content(message.content);
      const loaded = content;
      handedOver = true;
      await sender.send(target, { content: loaded, attachment: (index) => attachmentBytes(deps, loaded, index) });
    }
  } catch (error) {
    if (error instanceof ConcurrencyError) throw error;
    const failure = failureOf(error, handedOver);
    deps.metrics.count('send.attempts', { ...dimensions, outcome: failure.error.class, code: failure.error.code });
    deps.metrics.record('send.duration', Date.now() - startedAt, { ...dimensions, outcome: failure.error.class });
    if (failure.error.class === 'throttled') {
      deps.metrics.count('throttle.responses', { ...dimensions, service: message.transport === 'graph' ? 'graph' : 'exchange', operation: 'send', code: failure.error.code });
    }
    if (!(error instanceof SendAttemptError) && !(error instanceof TokenUnavailableError)) {
      writer.log.error('send: the attempt failed unexpectedly', { error, handedOver });
    }
    if (failure.error.class === 'throttled' && failure.retryAfterSeconds !== undefined) {
      await deps.governor.block(mailbox.address, new Date(deps.now().getTime() + failure.retryAfterSeconds * 1000));
    }
    return writer.failed(failure, content, verified);
  }
  // Outside the try: once Microsoft has the message, a failure to record it must not become a retry.
  // It throws to the queue instead, whose next run finds the row still sending and checks Sent Items.
  deps.metrics.count('send.attempts', { ...dimensions, outcome });
  deps.metrics.record('send.duration', Date.now() - startedAt, { ...dimensions, outcome });
  return writer.sent(outcome, content);
}

/** Who a send measurement is about. */
function dimensionsOf(message: OutboundMessage, connection: Connection) {
  return { customerId: message.customerId, connectionId: message.connectionId, mailboxId: message.mailboxId, tenantId: connection.tenantId, transport: message.transport };
}

function failureOf(error: unknown, handedOver: boolean): SendFailure {
  if (error instanceof SendAttemptError) return classifySendFailure(error.signal);
  if (error instanceof TokenUnavailableError) {
    const { failure } = error;
    if (failure.kind === 'transient') {
      return { error: { class: 'transient', code: failure.code, message: `Microsoft did not issue a token: ${failure.explanation}` }, outcomeUnknown: false };
    }
    return { error: { class: 'connection', code: failure.code, message: failure.explanation, nextStep: failure.nextStep }, outcomeUnknown: false };
  }
  // Not knowing what failed after the message was handed over means not knowing whether it went.
  return {
    error: { class: 'transient', code: 'internal_error', message: 'The attempt failed on the connector\'s side; it is retried.' },
    outcomeUnknown: handedOver,
  };
}

function connectionWaits(connection: Connection): SendError {
  return {
    class: 'connection',
    code: connection.state,
    message: `The connection is ${connection.state}; the message waits until it works again (at most 24 hours).`,
    ...(connection.stateReason?.nextStep !== undefined && { nextStep: connection.stateReason.nextStep }),
  };
}

async function attachmentBytes(deps: SendDeps, content: MessageContent, index: number): Promise<Buffer> {
  const attachment = content.attachments[index];
  if (!attachment) throw new RangeError(`no attachment ${String(index)}`);
  return deps.content.attachment(attachment);
}

async function requeue(deps: SendDeps, message: OutboundMessage, at: Date, reason: 'scheduled' | 'governor' | 'in_progress' | 'retry'): Promise<SendOutcome> {
  // Rounded down: a message that comes back early waits the rest in the worker; one that came back late would waste its turn.
  const delaySeconds = Math.max(1, Math.floor((at.getTime() - deps.now().getTime()) / 1000));
  await deps.enqueue({ customerId: message.customerId, messageId: message.id }, delaySeconds);
  return { outcome: 'waiting', until: at, reason };
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type LastEvent = NonNullable<OutboundMessage['lastEvent']>;

function eventOf(message: OutboundMessage, event: LastEvent): NewEvent {
  return {
    id: event.id,
    type: event.type,
    customerId: message.customerId,
    connectionId: message.connectionId,
    occurredAt: event.occurredAt,
    ...(event.tags !== undefined && { tags: event.tags }),
    data: event.data,
  };
}

/**
 * The row's changes for one attempt, each conditional on the row as this worker last wrote it: if
 * another worker changed it in between, this one stops rather than overwrite.
 */
class OutboxWriter {
  constructor(
    private readonly deps: SendDeps,
    private readonly key: { partitionKey: string; rowKey: string },
    private etag: string,
    public current: OutboundMessage,
    readonly log: Logger,
  ) {}

  /** The connection's tags, carried on the message's events so the vendor can route them without a lookup. */
  tags: Connection['tags'] | undefined;

  /** Marks the row `sending` for this attempt; false when another worker got there first. */
  async claim(verify: boolean): Promise<boolean> {
    const now = this.deps.now();
    const attempts = this.current.attempts.map((a): SendAttempt => (a.outcome === 'in_progress' ? { ...a, outcome: 'unknown', endedAt: now.toISOString() } : a));
    const number = this.current.attemptCount + 1;
    const next: OutboundMessage = {
      ...this.current,
      status: 'sending',
      attemptCount: number,
      attempts: keep([...attempts, { number, startedAt: now.toISOString(), transport: this.current.transport, outcome: 'in_progress' }]),
      sendingUntil: new Date(now.getTime() + attemptTimeoutMs(this.current.size)).toISOString(),
      ...(verify && { verifyBeforeSend: true }),
      updatedAt: now.toISOString(),
    };
    delete next.nextAttemptAt;
    try {
      await this.write(next);
      return true;
    } catch (error) {
      if (error instanceof ConcurrencyError) return false;
      throw error;
    }
  }

  async sent(outcome: 'sent' | 'already_sent', content: MessageContent | undefined): Promise<SendOutcome> {
    const now = this.deps.now();
    const next = this.ended({ ...this.current, status: 'sent', sentAt: now.toISOString() }, outcome, now);
    delete next.lastError;
    delete next.verifyBeforeSend;
    await this.change(next, 'message.sent', {});
    await this.discard(content);
    return { outcome };
  }

  async failed(failure: SendFailure, content: MessageContent | undefined, verified: boolean): Promise<SendOutcome> {
    const now = this.deps.now();
    const { error } = failure;
    if (error.class === 'permanent') return this.fail(error, undefined, content);
    const delayMs =
      error.class === 'throttled' && failure.retryAfterSeconds !== undefined
        ? failure.retryAfterSeconds * 1000
        : error.class === 'connection'
          ? CONNECTION_RECHECK_MS
          : retryDelayMs(this.current.attempts.filter((a) => a.error?.class === 'transient').length + 1);
    const at = new Date(now.getTime() + delayMs);
    if (at.getTime() >= Date.parse(this.current.expiresAt)) {
      return this.fail(error, 'The message was not sent within 24 hours; it is not tried again.', content);
    }
    return this.defer(error, at, {
      outcomeUnknown: failure.outcomeUnknown,
      verified,
      ...(failure.retryAfterSeconds !== undefined && { retryAfterSeconds: failure.retryAfterSeconds }),
    });
  }

  /**
   * `outcomeUnknown`: Microsoft may have the message, so the next attempt looks in Sent Items first.
   * `verified`: this attempt looked and did not find it. Otherwise a pending look stays pending.
   */
  async defer(
    error: SendError,
    at: Date,
    options: { quietIfSame?: boolean; outcomeUnknown?: boolean; verified?: boolean; retryAfterSeconds?: number } = {},
  ): Promise<SendOutcome> {
    const now = this.deps.now();
    const same = this.current.status === 'deferred' && this.current.lastError?.code === error.code;
    let next: OutboundMessage = { ...this.current, status: 'deferred', nextAttemptAt: at.toISOString(), lastError: error, updatedAt: now.toISOString() };
    if (this.current.status === 'sending') next = this.ended(next, options.outcomeUnknown ? 'unknown' : 'deferred', now, error, options.retryAfterSeconds);
    if (options.outcomeUnknown) next.verifyBeforeSend = true;
    else if (options.verified) delete next.verifyBeforeSend;
    // The queue message first: if recording the event fails, the next run records it again.
    await this.deps.enqueue({ customerId: this.current.customerId, messageId: this.current.id }, Math.max(1, Math.ceil((at.getTime() - now.getTime()) / 1000)));
    if (options.quietIfSame && same) await this.write(next);
    else await this.change(next, 'message.deferred', { nextAttemptAt: at.toISOString() });
    return { outcome: 'deferred' };
  }

  async fail(error: SendError, summary?: string, content?: MessageContent): Promise<SendOutcome> {
    const now = this.deps.now();
    let next: OutboundMessage = { ...this.current, status: 'failed', failedAt: now.toISOString(), lastError: summary ? { ...error, message: `${summary} Last error: ${error.message}` } : error };
    if (this.current.status === 'sending') next = this.ended(next, 'failed', now, error);
    delete next.nextAttemptAt;
    delete next.verifyBeforeSend;
    await this.change(next, 'message.failed', {});
    this.log.warn('send: message failed', { code: error.code, class: error.class });
    await this.discard(content);
    return { outcome: 'failed' };
  }

  private ended(message: OutboundMessage, outcome: SendAttempt['outcome'], now: Date, error?: SendError, retryAfterSeconds?: number): OutboundMessage {
    const attempts = message.attempts.map((a): SendAttempt =>
      a.outcome === 'in_progress'
        ? { ...a, outcome, endedAt: now.toISOString(), ...(error && { error }), ...(retryAfterSeconds !== undefined && { retryAfterSeconds }) }
        : a,
    );
    const next: OutboundMessage = { ...message, attempts, updatedAt: now.toISOString() };
    delete next.sendingUntil;
    return next;
  }

  /** Writes a status change with its event, then records the event (a retry records it again under the same id). */
  private async change(next: OutboundMessage, type: EventType, extra: Record<string, unknown>): Promise<void> {
    const occurredAt = this.deps.now().toISOString();
    const data: Record<string, unknown> = {
      messageId: next.id,
      internetMessageId: next.internetMessageId,
      mailbox: next.from,
      status: next.status,
      attempts: next.attemptCount,
      ...(next.lastError && next.status !== 'sent' && { reason: next.lastError }),
      ...extra,
    };
    const lastEvent: LastEvent = { id: newId('evt', Date.parse(occurredAt)), type, occurredAt, ...(this.tags !== undefined && { tags: this.tags }), data };
    await this.write({ ...next, lastEvent });
    await this.deps.recordEvent(eventOf(next, lastEvent));
  }

  private async write(next: OutboundMessage): Promise<void> {
    const written = await this.deps.outbox.replace(this.key, next, this.etag);
    this.etag = written.etag;
    this.current = next;
  }

  private async discard(content: MessageContent | undefined): Promise<void> {
    await discardContent(this.deps, this.current, content, this.log);
  }
}

/** Removes the blobs of a message that is sent or failed (again: deleting what is gone succeeds). */
async function discardContent(deps: SendDeps, message: OutboundMessage, content: MessageContent | undefined, log: Logger): Promise<void> {
  try {
    await deps.content.discard(message.content, content ?? (await deps.content.content(message.content).catch(() => undefined)));
  } catch (error) {
    log.warn('send: could not remove the message content from Blob storage', { error });
  }
}

function keep(attempts: SendAttempt[]): SendAttempt[] {
  return attempts.slice(-KEPT_ATTEMPTS);
}

