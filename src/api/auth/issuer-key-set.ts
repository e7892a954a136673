import { OutboundRequestError, outboundRequest, type OutboundResponse } from '../../net/outbound-request.js';
import type { Logger } from '../../telemetry/logger.js';
import { KeySetError, parseKeySet, type IssuerKey, type KeyAlgorithm, type ParsedKeySet } from './key-set-parser.js';

/**
 * Fetching a token issuer's public keys from its key URL, and a cache of them per issuer.
 *
 * The URL belongs to the vendor, and anyone can send us tokens naming any `kid`: refetches on an
 * unknown kid are limited to one per cooldown per issuer, and callers asking at the same time share
 * one request.
 */

/** How long a fetched key set is used before it is fetched again. */
const KEY_SET_TTL_MS = 3_600_000;
const FETCH_TIMEOUT_MS = 5_000;
/** A JWKS of a few keys is a few KB. */
const MAX_DOCUMENT_BYTES = 256 * 1024;

export interface KeySource {
  issuer: string;
  keyUrl: string;
}

export type KeyLookup =
  | { outcome: 'found'; key: IssuerKey }
  | { outcome: 'unknown-key' }
  | { outcome: 'expired-key'; expiredAt: Date }
  /** The key exists, for the other algorithm. */
  | { outcome: 'wrong-algorithm'; keyAlgorithm: KeyAlgorithm }
  | { outcome: 'unavailable'; reason: string };

export interface IssuerKeyCache {
  /** The key named `kid` for tokens signed with `alg`, fetching the key set when needed. */
  findKey(source: KeySource, kid: string, alg: KeyAlgorithm): Promise<KeyLookup>;
}

export interface IssuerKeyCacheOptions extends KeySetFetchOptions {
  now?: () => Date;
  /** The least time between two fetches of one issuer's keys. Default 60 s. */
  refetchCooldownMs?: number;
  /** Told about failed fetches and skipped entries, which the vendor's developer needs to hear of. */
  logger?: Logger;
}

interface CacheEntry {
  keyUrl: string;
  /** The last set fetched successfully; kept when a later fetch fails. */
  keys?: IssuerKey[];
  fetchedAt?: number;
  lastAttemptAt: number;
  /** Why the last fetch failed; cleared by a successful one. */
  lastError?: string;
  inFlight?: Promise<void>;
}

export function createIssuerKeyCache(options: IssuerKeyCacheOptions): IssuerKeyCache {
  const now = () => (options.now?.() ?? new Date()).getTime();
  const cooldownMs = options.refetchCooldownMs ?? 60_000;
  const entries = new Map<string, CacheEntry>();

  function refresh(source: KeySource, entry: CacheEntry): Promise<void> {
    entry.inFlight ??= (async () => {
      entry.lastAttemptAt = now();
      try {
        const { keys, skipped } = await fetchKeySet(entry.keyUrl, options);
        entry.keys = keys;
        entry.fetchedAt = now();
        entry.lastError = undefined;
        if (skipped.length > 0) options.logger?.warn('An issuer\'s key set has entries that cannot be used', { issuer: source.issuer, keyUrl: entry.keyUrl, skipped });
      } catch (error) {
        entry.lastError = error instanceof KeySetError ? error.message : 'the key URL could not be read';
        options.logger?.warn('Could not fetch an issuer\'s public keys', { issuer: source.issuer, keyUrl: entry.keyUrl, reason: entry.lastError });
      } finally {
        entry.inFlight = undefined;
      }
    })();
    return entry.inFlight;
  }

  return {
    async findKey(source, kid, alg) {
      let entry = entries.get(source.issuer);
      if (entry?.keyUrl !== source.keyUrl) {
        entry = { keyUrl: source.keyUrl, lastAttemptAt: Number.NEGATIVE_INFINITY };
        entries.set(source.issuer, entry);
      }
      let lookup = select(entry.keys, kid, alg, now());
      const stale = entry.fetchedAt === undefined || now() - entry.fetchedAt >= KEY_SET_TTL_MS;
      const missing = lookup.outcome === 'unknown-key' || lookup.outcome === 'expired-key';
      const mayFetch = entry.inFlight !== undefined || now() - entry.lastAttemptAt >= cooldownMs;
      if ((stale || missing) && mayFetch) {
        await refresh(source, entry);
        lookup = select(entry.keys, kid, alg, now());
      }
      // Without a fresh answer from the key URL, "no such key" may only mean "not fetched yet".
      if (lookup.outcome === 'unknown-key' && entry.lastError !== undefined) return { outcome: 'unavailable', reason: entry.lastError };
      return lookup;
    },
  };
}

function select(keys: IssuerKey[] | undefined, kid: string, alg: KeyAlgorithm, now: number): KeyLookup {
  const named = (keys ?? []).filter((key) => key.kid === undefined || key.kid === kid);
  const current = named.filter((key) => key.expiresAt === undefined || key.expiresAt.getTime() > now);
  const match = current.find((key) => key.alg === alg);
  if (match) return { outcome: 'found', key: match };
  const [other] = current;
  if (other) return { outcome: 'wrong-algorithm', keyAlgorithm: other.alg };
  if (named.length === 0) return { outcome: 'unknown-key' };
  // Every key by that name has expired; the latest expiry is the one worth reporting.
  return { outcome: 'expired-key', expiredAt: new Date(Math.max(...named.map((key) => key.expiresAt?.getTime() ?? 0))) };
}

export interface KeySetFetchOptions {
  /** Local development only: key URLs may be on loopback and private addresses. */
  allowPrivateNetwork: boolean;
}

/** Fetches and reads a key URL's document; every failure is a KeySetError saying what is wrong. */
export async function fetchKeySet(keyUrl: string, options: KeySetFetchOptions): Promise<ParsedKeySet> {
  let response: OutboundResponse;
  try {
    response = await outboundRequest({
      url: keyUrl,
      headers: { accept: 'application/jwk-set+json, application/json, application/x-pem-file, text/plain;q=0.5' },
      timeoutMs: FETCH_TIMEOUT_MS,
      maxResponseBytes: MAX_DOCUMENT_BYTES,
      allowPrivateNetwork: options.allowPrivateNetwork,
    });
  } catch (error) {
    throw new KeySetError(describeRequestFailure(error), { cause: error });
  }
  if (response.status !== 200) throw new KeySetError(`the key URL answered HTTP ${response.status}`);
  return parseKeySet(response.body.toString('utf8'));
}

/** A reason the vendor can act on; it names their own URL's problem, nothing of ours. */
function describeRequestFailure(error: unknown): string {
  if (!(error instanceof OutboundRequestError)) return 'the key URL could not be read';
  switch (error.kind) {
    case 'blocked-address':
      return `the key URL must be on a public address: ${error.message}`;
    case 'invalid-url':
      return `the key URL is not usable: ${error.message}`;
    case 'timeout':
      return `the key URL did not answer in time: ${error.message}`;
    case 'too-large':
      return `the key URL's document is too large: ${error.message}`;
    case 'network':
      return `the key URL could not be reached: ${error.message}`;
  }
}
