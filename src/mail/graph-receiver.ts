import { errorFields, fetchErrorCode } from './error-fields.js';
import { retryAfterSeconds } from './graph-sender.js';
import { ReceiveAttemptError, type MessageSink, type ReceiveFailureKind, type ReceiveTarget } from './mail-receiver.js';

/**
 * Receiving through Microsoft Graph (microsoft.md §5.4, §5.5): delta rounds per folder, the MIME
 * of one message, and the subscriptions that make Graph tell us about new mail. Every call asks
 * for immutable ids, so a message keeps its id (its fingerprint) whichever way it is found.
 */

const REQUEST_TIMEOUT_MS = 30_000;
/** Graph sends `@odata.nextLink` and `@odata.deltaLink` under its own origin; we follow no other. */
const PREFER_IMMUTABLE = 'IdType="ImmutableId"';

export interface GraphCursor {
  deltaLink?: string;
  nextLink?: string;
  since: string;
}

export interface DeltaRequest {
  target: ReceiveTarget;
  /** A well-known folder name (`inbox`) or a folder id. */
  folder: string;
  cursor: GraphCursor;
  /** Messages offered per look; the page size too. */
  limit: number;
  /** A round that must start over (410, syncStateNotFound) looks this far back, not before `cursor.since`. */
  resyncSince: Date;
  sink: MessageSink;
}

export interface DeltaResult {
  cursor: GraphCursor;
  found: number;
  more: boolean;
  resynced: boolean;
}

export interface NewSubscription {
  folder: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string;
  expiresAt: Date;
  clientState: string;
}

export interface GraphReceiver {
  delta(request: DeltaRequest): Promise<DeltaResult>;
  /** The message's MIME. */
  raw(target: ReceiveTarget, messageId: string): Promise<Buffer>;
  subscribe(target: ReceiveTarget, subscription: NewSubscription): Promise<{ id: string; expiresAt: string }>;
  renew(target: ReceiveTarget, subscriptionId: string, expiresAt: Date): Promise<{ expiresAt: string }>;
  reauthorize(target: ReceiveTarget, subscriptionId: string): Promise<void>;
  unsubscribe(target: ReceiveTarget, subscriptionId: string): Promise<void>;
}

export function graphReceiver(options: { graphUrl: string }): GraphReceiver {
  const origin = new URL(options.graphUrl).origin;
  const base = `${options.graphUrl.replace(/\/+$/, '')}/v1.0`;
  const user = (target: ReceiveTarget) => `${base}/users/${encodeURIComponent(target.mailbox)}`;

  const initialDelta = (target: ReceiveTarget, folder: string, since: string) => {
    const query = new URLSearchParams({ $select: 'id,receivedDateTime,internetMessageId', $filter: `receivedDateTime ge ${since}` });
    return `${user(target)}/mailFolders/${encodeURIComponent(folder)}/messages/delta?${query.toString()}`;
  };

  return {
    async delta({ target, folder, cursor, limit, resyncSince, sink }) {
      let since = cursor.since;
      let url = cursor.nextLink ?? cursor.deltaLink ?? initialDelta(target, folder, since);
      let found = 0;
      let resynced = false;
      for (;;) {
        if (new URL(url).origin !== origin) throw new ReceiveAttemptError({ transport: 'graph', kind: 'server', detail: 'Graph sent a link to another host' });
        let page: DeltaPage;
        try {
          page = (await call(url, target, { prefer: `${PREFER_IMMUTABLE}, odata.maxpagesize=${String(limit)}` })) as DeltaPage;
        } catch (error) {
          // The sync state is gone (410 Gone, or a 40x syncStateNotFound): start over, no further back than needed.
          if (!resynced && error instanceof ReceiveAttemptError && isLostSyncState(error)) {
            resynced = true;
            since = new Date(Math.max(Date.parse(cursor.since), resyncSince.getTime())).toISOString();
            url = initialDelta(target, folder, since);
            continue;
          }
          throw error;
        }
        for (const item of page.value ?? []) {
          if (typeof item.id !== 'string' || item['@removed'] !== undefined) continue;
          const id = item.id;
          await sink({ folder, fingerprint: `graph:${id}`, raw: () => this.raw(target, id) });
          found++;
        }
        const next = page['@odata.nextLink'];
        const deltaLink = page['@odata.deltaLink'];
        if (typeof next === 'string') {
          if (found >= limit) return { cursor: { nextLink: next, since }, found, more: true, resynced };
          url = next;
          continue;
        }
        if (typeof deltaLink === 'string') return { cursor: { deltaLink, since }, found, more: false, resynced };
        throw new ReceiveAttemptError({ transport: 'graph', kind: 'server', detail: 'a delta page without a nextLink or deltaLink' });
      }
    },

    async raw(target, messageId) {
      return (await call(`${user(target)}/messages/${encodeURIComponent(messageId)}/$value`, target, { prefer: PREFER_IMMUTABLE, bytes: true })) as Buffer;
    },

    async subscribe(target, subscription) {
      const created = (await call(`${base}/subscriptions`, target, {
        method: 'POST',
        prefer: PREFER_IMMUTABLE,
        body: {
          changeType: 'created',
          notificationUrl: subscription.notificationUrl,
          lifecycleNotificationUrl: subscription.lifecycleNotificationUrl,
          resource: `/users/${target.mailbox}/mailFolders('${subscription.folder.replaceAll("'", "''")}')/messages`,
          expirationDateTime: subscription.expiresAt.toISOString(),
          clientState: subscription.clientState,
          latestSupportedTlsVersion: 'v1_2',
        },
      })) as { id?: unknown; expirationDateTime?: unknown };
      if (typeof created.id !== 'string' || typeof created.expirationDateTime !== 'string') {
        throw new ReceiveAttemptError({ transport: 'graph', kind: 'server', detail: 'the created subscription has no id or expiry' });
      }
      return { id: created.id, expiresAt: new Date(created.expirationDateTime).toISOString() };
    },

    async renew(target, subscriptionId, expiresAt) {
      const renewed = (await call(`${base}/subscriptions/${encodeURIComponent(subscriptionId)}`, target, {
        method: 'PATCH',
        body: { expirationDateTime: expiresAt.toISOString() },
      })) as { expirationDateTime?: unknown } | undefined;
      const at = typeof renewed?.expirationDateTime === 'string' ? renewed.expirationDateTime : expiresAt.toISOString();
      return { expiresAt: new Date(at).toISOString() };
    },

    async reauthorize(target, subscriptionId) {
      await call(`${base}/subscriptions/${encodeURIComponent(subscriptionId)}/reauthorize`, target, { method: 'POST' });
    },

    async unsubscribe(target, subscriptionId) {
      try {
        await call(`${base}/subscriptions/${encodeURIComponent(subscriptionId)}`, target, { method: 'DELETE' });
      } catch (error) {
        // Already gone is what we wanted.
        if (!(error instanceof ReceiveAttemptError && error.failure.kind === 'not_found')) throw error;
      }
    },
  };
}

interface DeltaPage {
  value?: { id?: unknown; '@removed'?: unknown }[];
  '@odata.nextLink'?: unknown;
  '@odata.deltaLink'?: unknown;
}

function isLostSyncState(error: ReceiveAttemptError): boolean {
  const { status, code } = error.failure;
  return status === 410 || (status !== undefined && status >= 400 && status < 500 && /syncstatenotfound|resyncrequired/i.test(code ?? ''));
}

async function call(url: string, target: ReceiveTarget, options: { method?: string; body?: unknown; prefer?: string; bytes?: boolean }): Promise<unknown> {
  let response: Response;
  try {
    // A redirect would carry the token to wherever it points.
    response = await fetch(url, {
      method: options.method ?? 'GET',
      redirect: 'error',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      headers: {
        authorization: `Bearer ${target.accessToken}`,
        accept: options.bytes ? '*/*' : 'application/json',
        ...(options.prefer !== undefined && { prefer: options.prefer }),
        ...(options.body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    });
    if (response.ok && options.bytes) return Buffer.from(await response.arrayBuffer());
    const text = await response.text();
    const json = text.trim() === '' ? undefined : safeJson(text);
    if (response.ok) return json;
    throw failureOf(response, json);
  } catch (error) {
    if (error instanceof ReceiveAttemptError) throw error;
    const code = fetchErrorCode(error);
    const message = errorFields(error).message;
    throw new ReceiveAttemptError({ transport: 'graph', kind: 'network', ...(code !== undefined && { code }), detail: typeof message === 'string' ? message : 'request failed' });
  }
}

function failureOf(response: Response, json: unknown): ReceiveAttemptError {
  const { code, message } = ((json as { error?: unknown } | undefined)?.error ?? {}) as { code?: unknown; message?: unknown };
  const status = response.status;
  const retryAfter = retryAfterSeconds(response.headers.get('retry-after'));
  const kind: ReceiveFailureKind =
    status === 401
      ? 'authentication'
      : status === 403
        ? 'not_connected'
        : status === 404
          ? 'not_found'
          : status === 429 || (status === 503 && retryAfter !== undefined)
            ? 'throttled'
            : // Everything else, a refused request (400) included, is Graph not doing what was asked.
              'server';
  return new ReceiveAttemptError({
    transport: 'graph',
    kind,
    status,
    ...(typeof code === 'string' && { code }),
    ...(retryAfter !== undefined && { retryAfterSeconds: retryAfter }),
    detail: `Graph answered ${String(status)}${typeof code === 'string' ? ` ${code}` : ''}${typeof message === 'string' ? `: ${message.slice(0, 300)}` : ''}`,
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
