import { randomUUID } from 'node:crypto';

/**
 * Graph's outbound side of change notifications (change-notifications-delivery-webhooks.md): the
 * validation handshake a subscription's URLs must pass, and the POSTs that carry notifications.
 *
 * Validation: `POST {url}?validationToken={token}` with `Content-Type: text/plain; charset=utf-8`
 * and no body; the endpoint must answer 200 with the URL-decoded token as its body, within 10
 * seconds. The token reads like Graph's ("Validation: Testing client application reachability for
 * subscription Request-Id: …") and is form-encoded as .NET does (`+` for spaces, `%3a`), so an
 * endpoint that decodes with decodeURIComponent alone fails as it would against Graph.
 *
 * Delivery: notifications for one URL that come within `batchDelayMs` go in one POST
 * (`{ value: [...] }`, application/json). A 2xx within `timeoutMs` (Graph's 3 seconds) delivers
 * them; anything else (another status, no answer in time, no connection) is a failed attempt, and
 * the batch is tried again after each of `retryDelaysMs` in turn, then dropped. Graph retries for
 * up to 4 hours; the sandbox's default schedule is a minute long, and tests shorten it. Before each
 * attempt the change notifications of subscriptions that were deleted or expired meanwhile are
 * left out (lifecycle notifications always go: `subscriptionRemoved` is about a subscription that is
 * gone). Nothing here blocks the request that caused a notification.
 *
 * https URLs are reached with the process's trusted CAs (the sandbox's own CA where the process
 * trusts it, as `npm start` does); Graph needs a publicly trusted certificate.
 */

export interface DeliverySettings {
  /** Waits between a failed attempt and the next one; after the last, the batch is dropped. */
  retryDelaysMs: number[];
  /** How long an attempt may take to get a 2xx. */
  timeoutMs: number;
  /** How long the validation handshake may take. */
  validationTimeoutMs: number;
  /** How long notifications for one URL are gathered before they go out together. */
  batchDelayMs: number;
}

export const DEFAULT_DELIVERY: DeliverySettings = { retryDelaysMs: [1_000, 5_000, 15_000, 40_000], timeoutMs: 3_000, validationTimeoutMs: 10_000, batchDelayMs: 50 };

export type NotificationKind = 'change' | 'lifecycle';

export interface Outgoing {
  kind: NotificationKind;
  subscriptionId: string;
  /** One element of the POST's `value`. */
  payload: Record<string, unknown>;
}

export interface DeliveryEvents {
  /** Whether a change notification should still go (its subscription exists and has not expired). */
  stillWanted(item: Outgoing): boolean;
  delivered(items: readonly Outgoing[]): void;
  attemptFailed(items: readonly Outgoing[], reason: string): void;
  /** The last retry failed too: Graph discards them. */
  dropped(items: readonly Outgoing[]): void;
}

export type ValidationOutcome = 'validated' | 'refused' | 'mismatch' | 'timed-out';

interface Batch {
  url: string;
  items: Outgoing[];
  /** Attempts made so far. */
  attempts: number;
}

const isTimeout = (error: unknown) => error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');

/** .NET's HttpUtility.UrlEncode, as Graph encodes the validation token: `+` for spaces, lower-case escapes. */
const formEncode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+').replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase());

export class NotificationDelivery {
  private settings: DeliverySettings;
  /** Notifications gathering for one URL and kind, until their batch goes. */
  private readonly gathering = new Map<string, Batch>();

  constructor(private readonly events: DeliveryEvents) {
    this.settings = { ...DEFAULT_DELIVERY, retryDelaysMs: [...DEFAULT_DELIVERY.retryDelaysMs] };
  }

  configure(settings: Partial<DeliverySettings>): DeliverySettings {
    this.settings = { ...this.settings, ...settings };
    return this.current();
  }

  current(): DeliverySettings {
    return { ...this.settings, retryDelaysMs: [...this.settings.retryDelaysMs] };
  }

  /** The handshake a new subscription's URLs must pass. */
  async validate(url: string): Promise<ValidationOutcome> {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`;
    const target = new URL(url);
    target.hash = '';
    target.search = `${target.search === '' ? '?' : `${target.search}&`}validationToken=${formEncode(token)}`;
    try {
      const response = await fetch(target, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain; charset=utf-8' },
        body: '',
        redirect: 'manual',
        signal: AbortSignal.timeout(this.settings.validationTimeoutMs),
      });
      const body = await response.text();
      if (response.status !== 200) return 'refused';
      return body === token ? 'validated' : 'mismatch';
    } catch (error) {
      return isTimeout(error) ? 'timed-out' : 'refused';
    }
  }

  /** Queues a notification for `url`; it goes with the others that come for that URL within the batch delay. */
  enqueue(url: string, item: Outgoing): void {
    const key = `${item.kind} ${url}`;
    const gathering = this.gathering.get(key);
    if (gathering) {
      gathering.items.push(item);
      return;
    }
    const batch: Batch = { url, items: [item], attempts: 0 };
    this.gathering.set(key, batch);
    this.later(this.settings.batchDelayMs, () => {
      this.gathering.delete(key);
      void this.attempt(batch);
    });
  }

  private async attempt(batch: Batch): Promise<void> {
    batch.items = batch.items.filter((item) => item.kind === 'lifecycle' || this.events.stillWanted(item));
    if (batch.items.length === 0) return;
    batch.attempts += 1;
    const failure = await this.post(batch.url, { value: batch.items.map((item) => item.payload) });
    if (failure === undefined) {
      this.events.delivered(batch.items);
      return;
    }
    this.events.attemptFailed(batch.items, failure);
    const delay = this.settings.retryDelaysMs[batch.attempts - 1];
    if (delay === undefined) {
      this.events.dropped(batch.items);
      return;
    }
    this.later(delay, () => {
      void this.attempt(batch);
    });
  }

  /** Undefined when the endpoint took it, else why not. */
  private async post(url: string, body: unknown): Promise<string | undefined> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json; charset=utf-8' },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      await response.arrayBuffer();
      return response.status >= 200 && response.status < 300 ? undefined : `HTTP ${String(response.status)}`;
    } catch (error) {
      if (isTimeout(error)) return `no 2xx within ${String(this.settings.timeoutMs)} ms`;
      return error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
    }
  }

  /** Real time, not the sandbox clock; never keeps the process alive. */
  private later(ms: number, run: () => void): void {
    setTimeout(run, ms).unref();
  }
}
