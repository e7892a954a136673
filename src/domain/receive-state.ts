import { z } from 'zod';
import { DEFAULT_POLL_INTERVAL_SECONDS, type Mailbox } from './mailbox.js';

/**
 * How receiving is going for one mailbox, kept apart from the mailbox row (which the vendor edits):
 * this row is written by every look at the mailbox, holds the look's lease, the cursors of its
 * folders and its Graph subscriptions, and says when the mailbox is next due.
 */

export const RECEIVE_TRANSPORTS = ['graph', 'imap', 'pop3'] as const;
export type ReceiveTransport = (typeof RECEIVE_TRANSPORTS)[number];

const imapCursorSchema = z.object({ uidValidity: z.string(), lastUid: z.int().nonnegative(), highestModseq: z.string().optional() });
const graphCursorSchema = z.object({
  /** Where the next delta round starts; absent before the first round finished. */
  deltaLink: z.string().optional(),
  /** A round in progress (its next page), so a look cut short goes on where it stopped. */
  nextLink: z.string().optional(),
  /** Messages received before this are not new: the first round's `$filter`. */
  since: z.iso.datetime(),
});

export const subscriptionSchema = z.object({
  id: z.string(),
  expiresAt: z.iso.datetime(),
  /** SHA-256 of the clientState Graph echoes back; the value itself is never stored. */
  clientStateHash: z.string(),
});
export type Subscription = z.infer<typeof subscriptionSchema>;

export const RECEIVE_MODES = ['polling', 'notifications'] as const;
export type ReceiveMode = (typeof RECEIVE_MODES)[number];

export const receiveErrorSchema = z.object({ code: z.string(), message: z.string(), at: z.iso.datetime() });
export type ReceiveError = z.infer<typeof receiveErrorSchema>;

export const receiveStateSchema = z.object({
  customerId: z.string(),
  connectionId: z.string(),
  mailboxId: z.string(),
  transport: z.enum(RECEIVE_TRANSPORTS),
  /** When the poll timer should next enqueue the mailbox. */
  dueAt: z.iso.datetime(),
  lease: z.object({ owner: z.string(), expiresAt: z.iso.datetime() }).optional(),
  /** Per folder (its name as the mailbox's settings give it). */
  imap: z.record(z.string(), imapCursorSchema).optional(),
  pop3: z.object({ recent: z.array(z.string()) }).optional(),
  graph: z.record(z.string(), graphCursorSchema).optional(),
  /** Graph only: `notifications` while subscriptions tell us about new mail, `polling` otherwise. */
  mode: z.enum(RECEIVE_MODES),
  /** Why a Graph mailbox polls instead of being notified. */
  modeReason: z.string().optional(),
  /** Graph subscriptions, per watched folder. */
  subscriptions: z.record(z.string(), subscriptionSchema).optional(),
  /** When to try creating subscriptions again after one could not be made. */
  subscribeAfter: z.iso.datetime().optional(),
  lastPollAt: z.iso.datetime().optional(),
  lastSuccessAt: z.iso.datetime().optional(),
  lastMessageAt: z.iso.datetime().optional(),
  consecutiveFailures: z.int().nonnegative(),
  lastError: receiveErrorSchema.optional(),
  /** Someone asked for a look (a lifecycle notification) while one was running: the running one looks again when done. */
  rerunRequestedAt: z.iso.datetime().optional(),
  /** A message that could not be kept (it broke the parser or storage's limits), and how often it failed; set aside after a few. */
  stuck: z.object({ fingerprint: z.string(), failures: z.int().positive() }).optional(),
  createdAt: z.iso.datetime(),
});
export type ReceiveState = z.infer<typeof receiveStateSchema>;

export interface ReceivePolicy {
  /** How often a Graph mailbox with working subscriptions is caught up by delta anyway (missed notifications). */
  catchUpMs: number;
  /** A subscription is renewed when it expires within this. */
  renewWithinMs: number;
  /** How long a subscription is asked for (Outlook messages: under 10,080 minutes). */
  subscriptionLifetimeMs: number;
  /** After a subscription could not be made, how long the mailbox polls before trying again. */
  resubscribeAfterMs: number;
  /** Back-off after failed looks: first delay, doubled per failure, up to the maximum. */
  retryBaseMs: number;
  retryMaxMs: number;
}

export const DEFAULT_RECEIVE_POLICY: ReceivePolicy = {
  catchUpMs: 15 * 60_000,
  renewWithinMs: 24 * 3_600_000,
  subscriptionLifetimeMs: 10_080 * 60_000 - 60 * 60_000,
  resubscribeAfterMs: 6 * 3_600_000,
  retryBaseMs: 60_000,
  retryMaxMs: 30 * 60_000,
};

export function newReceiveState(mailbox: Mailbox, now: Date): ReceiveState | undefined {
  if (mailbox.receiveTransport === 'none') return undefined;
  return {
    customerId: mailbox.customerId,
    connectionId: mailbox.connectionId,
    mailboxId: mailbox.id,
    transport: mailbox.receiveTransport,
    // The first look comes soon: it is where "new" starts for IMAP and POP3.
    dueAt: now.toISOString(),
    mode: 'polling',
    consecutiveFailures: 0,
    createdAt: now.toISOString(),
  };
}

export function pollIntervalMs(mailbox: Pick<Mailbox, 'receive'>): number {
  return (mailbox.receive?.intervalSeconds ?? DEFAULT_POLL_INTERVAL_SECONDS) * 1000;
}

/**
 * When the mailbox is next looked at after a look that went well: right away when messages are
 * still waiting; otherwise on the mailbox's own beat (its last due time plus whole intervals), so
 * the time looks take does not push every later one back and the spread over the minute stays.
 * While Graph notifies, the beat is the catch-up interval.
 */
export function nextPollAt(
  state: Pick<ReceiveState, 'mode' | 'dueAt' | 'mailboxId' | 'lastSuccessAt'>,
  mailbox: Pick<Mailbox, 'receive'>,
  policy: ReceivePolicy,
  now: Date,
  more: boolean,
): Date {
  if (more) return now;
  const interval = state.mode === 'notifications' ? Math.max(policy.catchUpMs, pollIntervalMs(mailbox)) : pollIntervalMs(mailbox);
  const previous = Date.parse(state.dueAt);
  // After the first look, or one that ran off the beat (late, or asked for out of turn), the beat
  // starts again on the mailbox's own second of the minute.
  if (state.lastSuccessAt === undefined || Number.isNaN(previous) || now.getTime() - previous >= interval) {
    return atOffset(new Date(now.getTime() + interval), state.mailboxId);
  }
  return new Date(Math.max(previous + interval, now.getTime() + 1000));
}

/** Back-off after `failures` failed looks in a row, never sooner than the mailbox's own interval. */
export function retryPollAt(failures: number, mailbox: Pick<Mailbox, 'receive'>, policy: ReceivePolicy, now: Date, random: () => number = Math.random): Date {
  const exponential = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.max(0, failures - 1));
  const jittered = Math.round(exponential * (0.5 + random() / 2));
  return new Date(now.getTime() + Math.max(jittered, pollIntervalMs(mailbox)));
}

/**
 * Where in the minute a mailbox is looked at, the same every time for one mailbox, so a thousand
 * mailboxes added at once do not all log in at the same second.
 */
export function pollOffsetSeconds(mailboxId: string, spreadSeconds = 60): number {
  let hash = 2166136261;
  for (let i = 0; i < mailboxId.length; i++) {
    hash ^= mailboxId.charCodeAt(i);
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return hash % spreadSeconds;
}

/** The first time at or after `at` that falls on the mailbox's second of the minute. */
export function atOffset(at: Date, mailboxId: string): Date {
  const minute = Math.floor(at.getTime() / 60_000) * 60_000;
  const onOffset = minute + pollOffsetSeconds(mailboxId) * 1000;
  return new Date(onOffset >= at.getTime() ? onOffset : onOffset + 60_000);
}

/** A look set aside this message after it failed this often (other looks keep failing on it otherwise). */
export const STUCK_MESSAGE_LIMIT = 3;

/** The subscription needs renewing (or making) now. */
export function subscriptionDue(subscription: Subscription | undefined, policy: ReceivePolicy, now: Date): boolean {
  return !subscription || Date.parse(subscription.expiresAt) - now.getTime() <= policy.renewWithinMs;
}
