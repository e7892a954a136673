import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { SecretStore } from '../src/secrets/secret-store.js';
import type { MetricDimensions, Metrics } from '../src/telemetry/metrics.js';
import { HttpChannelCounter, median, percentile, tableOf } from './receive-measures.js';

/**
 * What the send benchmark counts with, apart from the clock. Each tap only adds to a tally and
 * passes everything through unchanged:
 * - HttpTap: requests this process makes with fetch (undici's diagnostics channels), which is how
 *   msal-node reaches the token endpoint and how the Graph sender reaches sendMail: token-endpoint
 *   calls by tenant, and every sendMail answer with its status and the time it came.
 * - tapMetrics: the process's Metrics object, changed in place so every holder (AccessTokens among
 *   them) counts through the tap: token.requests by source and mode, secretstore.reads by purpose.
 * - tapSecretReads: every SecretStore.get, by the kind of secret read (token caches, the rest).
 */

interface UndiciRequest {
  origin?: string;
  method?: string;
  path?: string;
}

export interface GraphSend {
  mailbox: string;
  /** Date.now() when the answer's headers came (the sandbox answers right after it took the message). */
  at: number;
  status: number;
}

export class HttpTap {
  /** Token-endpoint requests, by the tenant in the path. */
  readonly tokenCalls: { tenant: string; at: number }[] = [];
  readonly graphSends: GraphSend[] = [];
  private readonly created = (message: unknown) => {
    const request = (message as { request?: UndiciRequest }).request;
    if (!request || request.origin !== this.identityOrigin || request.method !== 'POST') return;
    const tenant = /^\/([^/]+)\/oauth2\/v2\.0\/token(?:\?|$)/.exec(request.path ?? '')?.[1];
    if (tenant !== undefined) this.tokenCalls.push({ tenant, at: Date.now() });
  };
  private readonly answered = (message: unknown) => {
    const { request, response } = message as { request?: UndiciRequest; response?: { statusCode?: number } };
    if (!request || request.origin !== this.identityOrigin || request.method !== 'POST') return;
    const mailbox = /\/users\/([^/?]+)\/(?:sendMail|messages\/[^/?]+\/send)(?:\?|$)/.exec(request.path ?? '')?.[1];
    if (mailbox === undefined) return;
    this.graphSends.push({ mailbox: decodeURIComponent(mailbox).toLowerCase(), at: Date.now(), status: response?.statusCode ?? 0 });
  };

  /** `identityOrigin`: the sandbox's https origin, which serves both the token endpoint and Graph. */
  constructor(private readonly identityOrigin: string) {
    subscribe('undici:request:create', this.created);
    subscribe('undici:request:headers', this.answered);
  }

  close(): void {
    unsubscribe('undici:request:create', this.created);
    unsubscribe('undici:request:headers', this.answered);
  }
}

/**
 * Answers of 400 and over from Azurite's Table service to this process, by method, table and
 * status ("PUT sendgovernor 412": an update that lost an ETag race and is tried again).
 */
export class TableRefusals extends HttpChannelCounter {
  constructor(private readonly hostPort: string) {
    super('http.client.response.finish');
  }

  protected keyOf(message: unknown): string | undefined {
    const { request, response } = message as { request?: ClientRequest; response?: IncomingMessage };
    if (request?.getHeader('host') !== this.hostPort || (response?.statusCode ?? 0) < 400) return undefined;
    return `${request.method} ${tableOf(request)} ${String(response?.statusCode)}`;
  }
}

/** Counter totals by name and a few dimensions ("token.requests source=microsoft mode=demand"). */
export type Tally = Record<string, number>;

const TALLIED: Record<string, readonly string[]> = {
  'token.requests': ['source', 'mode', 'resource'],
  'secretstore.reads': ['purpose'],
  'throttle.responses': ['service', 'code'],
  'send.governor_waits': ['inline', 'customerId'],
};

export function tapMetrics(metrics: Metrics): { snapshot(): Tally } {
  const counts = new Map<string, number>();
  const count = metrics.count.bind(metrics);
  metrics.count = (name, dimensions?: MetricDimensions, value = 1) => {
    const keep = TALLIED[name];
    if (keep) {
      const key = [name, ...keep.filter((d) => dimensions?.[d] !== undefined).map((d) => `${d}=${String(dimensions?.[d])}`)].join(' ');
      counts.set(key, (counts.get(key) ?? 0) + value);
    }
    count(name, dimensions, value);
  };
  return { snapshot: () => Object.fromEntries(counts) };
}

export function tapSecretReads(secrets: SecretStore): { snapshot(): Tally } {
  const counts = new Map<string, number>();
  const get = secrets.get.bind(secrets);
  secrets.get = (name, version) => {
    // Token caches are one secret per connection (tokenCacheSecretName); the rest are few and named for what they are.
    const kind = name.startsWith('msal-cache-') ? 'token cache' : name;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    return get(name, version);
  };
  return { snapshot: () => Object.fromEntries(counts) };
}

/** What was counted from `before` to `after`; keys that did not change are left out. */
export function tallyBetween(before: Tally, after: Tally): Tally {
  return Object.fromEntries(Object.entries(after).map(([key, n]): [string, number] => [key, n - (before[key] ?? 0)]).filter(([, n]) => n !== 0));
}

/** Sum of the tally's entries whose key starts with `name` and has every one of `dimensions`. */
export function sumOf(tally: Tally, name: string, ...dimensions: string[]): number {
  return Object.entries(tally)
    .filter(([key]) => key.split(' ')[0] === name && dimensions.every((d) => key.split(' ').includes(d)))
    .reduce((sum, [, n]) => sum + n, 0);
}

/**
 * How much of a sliding per-minute allowance a mailbox's sends used once it was the limit: for each
 * send i from the allowance on, the allowance's worth of sends (i − allowance, i] took
 * t[i] − t[i − allowance]; 60 s over that is the fraction of the allowance used in that stretch
 * (1 = exactly `allowance` per 60 s, the sandbox's and Exchange's limit).
 */
export function windowFractions(sortedTimes: readonly number[], allowance: number): number[] {
  const fractions: number[] = [];
  for (let i = allowance; i < sortedTimes.length; i++) {
    fractions.push(60_000 / ((sortedTimes[i] ?? 0) - (sortedTimes[i - allowance] ?? 0)));
  }
  return fractions;
}

/**
 * The share of a per-mailbox allowance (sends in any 60 s) a run used, over its steady part.
 * When some 60 s held the whole allowance, the window was the limit: the median over sends i ≥
 * allowance of 60 s / (t[i] − t[i − allowance]) (windowFractions). Otherwise the allowance was never
 * reached and the instance's throughput was the limit: the rate between the 10th and the 90th
 * percentile of the send times (ramp-up and tail left out), per mailbox, over the allowance.
 */
export function allowanceUsed(sortedTimes: readonly number[], allowance: number, mailboxes: number, busiest: number) {
  if (busiest >= allowance && sortedTimes.length > allowance) {
    const fractions = summary(windowFractions(sortedTimes, allowance));
    return { bound: 'window' as const, fraction: fractions.median, windowFractions: fractions };
  }
  const low = Math.floor(sortedTimes.length * 0.1);
  const high = Math.floor(sortedTimes.length * 0.9);
  const span = (sortedTimes[high] ?? 0) - (sortedTimes[low] ?? 0);
  const perMinute = span > 0 ? ((high - low) / span) * 60_000 : Number.NaN;
  return { bound: 'throughput' as const, fraction: perMinute / mailboxes / allowance, steadySendsPerMinute: perMinute, perMailboxPerMinute: perMinute / mailboxes };
}

/** The most sends in any 60 s (from one send to 60 s after it). */
export function busiestMinute(sortedTimes: readonly number[]): number {
  let most = 0;
  for (let i = 0, j = 0; i < sortedTimes.length; i++) {
    while (j < sortedTimes.length && (sortedTimes[j] ?? 0) < (sortedTimes[i] ?? 0) + 60_000) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

export function summary(values: readonly number[]) {
  return values.length === 0
    ? { n: 0, median: Number.NaN, p10: Number.NaN, min: Number.NaN, max: Number.NaN }
    : { n: values.length, median: median(values), p10: percentile(values, 10), min: Math.min(...values), max: Math.max(...values) };
}

/** Runs task(0 … count-1), `concurrency` at a time. */
export async function pool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, durationMs)));
}

export function warnLoudly(message: string): void {
  const border = `+${'-'.repeat(message.length + 2)}+`;
  console.warn(['', border, `| ${message} |`, border, ''].join('\n'));
}

/** exp − iat of a JWT, in seconds (what the issuer granted). */
export function tokenLifetimeSeconds(jwt: string): number | undefined {
  try {
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: number; iat?: number; nbf?: number };
    const from = claims.iat ?? claims.nbf;
    return claims.exp !== undefined && from !== undefined ? claims.exp - from : undefined;
  } catch {
    return undefined;
  }
}
