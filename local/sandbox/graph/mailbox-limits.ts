import { graphErrors } from './errors.js';

/**
 * Outlook's limits per mailbox, as Graph enforces them (throttling limits, Outlook service): at
 * most `concurrent` requests in flight per app and mailbox (Graph's is 4; the fifth gets 429
 * ApplicationThrottled "MailboxConcurrency"), and Exchange Online's message rate: at most
 * `sendsPerMinute` messages submitted from one mailbox in any 60 seconds of the sandbox clock
 * (Exchange's is 30). `null` switches a limit off. It also counts what it sees, so tests can
 * assert that a client stayed within the limits or was throttled.
 */

export interface MailboxLimits {
  concurrent: number | null;
  sendsPerMinute: number | null;
}

export const DEFAULT_MAILBOX_LIMITS: MailboxLimits = { concurrent: 4, sendsPerMinute: 30 };

/** Graph does not say how long to wait when over the concurrency limit; a request finishing frees a place, so a second is plenty. */
const CONCURRENCY_RETRY_AFTER_SECONDS = 1;
const RATE_WINDOW_MS = 60_000;

export interface ThrottleCounts {
  /** Over the concurrency limit. */
  concurrency: number;
  /** Over the message rate. */
  sendRate: number;
}

export interface MailboxStats {
  address: string;
  /** Requests that reached this mailbox (throttled ones included). */
  requests: number;
  /** Messages submitted (sendMail, send). */
  sends: number;
  throttled: ThrottleCounts;
  /** Requests being served right now, by every app. */
  inFlight: number;
}

/** What the limits counted; graphStats adds the relay's counts (mail-control.ts). */
export interface LimitStats {
  /** Every request to the sandbox Graph and its upload URLs. */
  requests: number;
  sends: number;
  /** 429s: the limits' and those `failGraphRequests` injected. */
  throttled: ThrottleCounts & { injected: number };
  mailboxes: MailboxStats[];
}

const key = (address: string) => address.toLowerCase();

export class MailboxThrottle {
  private limits: MailboxLimits;
  /** Requests in flight by app and mailbox. */
  private readonly inFlight = new Map<string, number>();
  /** When each mailbox's recent sends were accepted (ms), oldest first. */
  private readonly recentSends = new Map<string, number[]>();
  private readonly mailboxes = new Map<string, MailboxStats>();
  private readonly totals = { requests: 0, sends: 0, throttled: { concurrency: 0, sendRate: 0, injected: 0 } };

  constructor(
    limits: Partial<MailboxLimits>,
    private readonly now: () => number,
  ) {
    this.limits = { ...DEFAULT_MAILBOX_LIMITS, ...limits };
  }

  setLimits(limits: Partial<MailboxLimits>): MailboxLimits {
    this.limits = { ...this.limits, ...limits };
    return { ...this.limits };
  }

  currentLimits(): MailboxLimits {
    return { ...this.limits };
  }

  countRequest(): void {
    this.totals.requests += 1;
  }

  countInjectedThrottle(): void {
    this.totals.throttled.injected += 1;
  }

  /** A place for one request of `clientId` on the mailbox, or 429; call the returned function when it is answered. */
  admit(clientId: string, address: string): () => void {
    const stats = this.statsOf(address);
    stats.requests += 1;
    const slot = `${clientId.toLowerCase()}\n${key(address)}`;
    const busy = this.inFlight.get(slot) ?? 0;
    if (this.limits.concurrent !== null && busy >= this.limits.concurrent) {
      stats.throttled.concurrency += 1;
      this.totals.throttled.concurrency += 1;
      throw graphErrors.mailboxConcurrency(CONCURRENCY_RETRY_AFTER_SECONDS);
    }
    this.inFlight.set(slot, busy + 1);
    stats.inFlight += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(slot) ?? 1) - 1;
      if (left === 0) this.inFlight.delete(slot);
      else this.inFlight.set(slot, left);
      stats.inFlight -= 1;
    };
  }

  /** Takes one message submission from the mailbox, or answers 429 with how long until the oldest send in the window leaves it. */
  submit(address: string): void {
    const stats = this.statsOf(address);
    const now = this.now();
    const recent = (this.recentSends.get(key(address)) ?? []).filter((at) => at > now - RATE_WINDOW_MS);
    this.recentSends.set(key(address), recent);
    const limit = this.limits.sendsPerMinute;
    if (limit !== null && recent.length >= limit) {
      stats.throttled.sendRate += 1;
      this.totals.throttled.sendRate += 1;
      const oldest = recent[recent.length - limit] ?? now;
      throw graphErrors.messageRate(Math.max(1, Math.ceil((oldest + RATE_WINDOW_MS - now) / 1000)));
    }
    recent.push(now);
    stats.sends += 1;
    this.totals.sends += 1;
  }

  stats(): LimitStats {
    return {
      requests: this.totals.requests,
      sends: this.totals.sends,
      throttled: { ...this.totals.throttled },
      mailboxes: [...this.mailboxes.values()].map((m) => ({ ...m, throttled: { ...m.throttled } })),
    };
  }

  private statsOf(address: string): MailboxStats {
    let stats = this.mailboxes.get(key(address));
    if (!stats) {
      stats = { address, requests: 0, sends: 0, throttled: { concurrency: 0, sendRate: 0 }, inFlight: 0 };
      this.mailboxes.set(key(address), stats);
    }
    return stats;
  }
}
