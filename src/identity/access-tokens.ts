import type { AuthenticationResult, ICachePlugin } from '@azure/msal-node';
import type { Connection } from '../domain/connection.js';
import type { ConnectionHealth, HeldLease, LeaseOutcome } from '../domain/connection-health.js';
import { classifyTokenFailure, type TokenFailure } from '../domain/token-failure.js';
import type { SecretStore } from '../secrets/secret-store.js';
import type { Logger } from '../telemetry/logger.js';
import { noMetrics, type Metrics } from '../telemetry/metrics.js';
import { errorFromMsal } from './microsoft-error.js';
import type { MsalClients } from './msal-clients.js';
import { defaultScope, delegatedScopes, type Resource } from './scopes.js';
import { saveTokenCache, tokenCacheSecretName } from './token-cache-store.js';

/**
 * Access tokens for connections, per resource (Graph, or Exchange for IMAP/POP/SMTP): the one
 * place every transport gets them from.
 *
 * - Each instance keeps the tokens it handed out in memory and hands them out again until 5 minutes
 *   before they expire.
 * - Delegated connections: the msal token cache (the refresh token) lives in the secret store; an
 *   instance keeps a copy and reads the store again only when the connection's health row says the
 *   cache was rewritten since. Only the holder of the connection's refresh lease redeems the refresh
 *   token, and it saves the rotated cache before it lets go, so concurrent refreshes make one token
 *   call and never lose a rotated refresh token. A device code sign-in's refresh token is redeemed
 *   as a public client, as Microsoft requires (AADSTS700025 otherwise).
 * - Application connections: msal's own client-credentials cache in the app's client, per tenant.
 */

export interface AccessToken {
  token: string;
  expiresOn: Date;
  /** Who the token acts as: the signed-in user (delegated) or the app (application). */
  subject: string;
}

/** No token: the failure says why, who has to act, and whether retrying helps. */
export class TokenUnavailableError extends Error {
  constructor(
    readonly connectionId: string,
    readonly failure: TokenFailure,
    options?: { cause?: unknown },
  ) {
    super(`No access token for connection ${connectionId}: ${failure.code}: ${failure.explanation}`, options);
    this.name = 'TokenUnavailableError';
  }
}

export interface RefreshLeases {
  /** The lease, unless someone holds it or `needed` says the connection's health no longer calls for the work. */
  acquire(connection: Connection, needed?: (health: ConnectionHealth) => boolean): Promise<HeldLease | undefined>;
  acquireWaiting(connection: Connection, waitMs: number): Promise<HeldLease | undefined>;
}

/**
 * What the app's state allows: go ahead; go ahead and ask Microsoft (this request is the one that
 * tries a refused credential again); or the failure, without asking.
 */
export type AppGate = { allow: true; probe?: true } | { allow: false; failure: TokenFailure };

export interface AccessTokensDeps {
  msal: MsalClients;
  secrets: Pick<SecretStore, 'get' | 'set'>;
  leases: RefreshLeases;
  appGate?(appId: string): Promise<AppGate>;
  /** Told about every failure that is not transient (the connection's state follows it), before the refresh lease goes. */
  onFailure?(connection: Connection, failure: TokenFailure): Promise<void>;
  /**
   * Told when Microsoft issued a token (not a cached one): a connection that was failing works
   * again, and so does the app when this request was the one trying its refused credential. Before
   * the refresh lease goes, as onFailure.
   */
  onSuccess?(connection: Connection, outcome: { appProbe: boolean }): Promise<void>;
  metrics?: Metrics;
  logger: Logger;
  now(): Date;
}

export type RefreshResult = { outcome: 'refreshed'; expiresOn: Date } | { outcome: 'busy' };

export interface TokenOptions {
  /** Ask Microsoft, whatever is cached (the connectivity checker: a cached token proves nothing about now). */
  fresh?: boolean;
}

/** A token is handed out again until this long before it expires. */
export const EXPIRY_MARGIN_MS = 5 * 60_000;
/** How long a transport waits for another instance's refresh of the same connection. */
const LEASE_WAIT_MS = 15_000;
/** Past this many connections an instance starts its memory over, rather than grow without bound. */
const MAX_CONNECTIONS_HELD = 10_000;

type Request =
  | { kind: 'demand'; fresh: boolean }
  | { kind: 'refresh'; needed?: (health: ConnectionHealth) => boolean };

export class AccessTokens {
  private readonly tokens = new Map<string, AccessToken>();
  private readonly pending = new Map<string, Promise<AccessToken>>();
  private readonly caches = new Map<string, { serialized: string; version: number }>();

  constructor(private readonly deps: AccessTokensDeps) {}

  /** A token for `resource`, from memory when it has 5 minutes left, else from the cache or Microsoft. */
  async getAccessToken(connection: Connection, resource: Resource, options: TokenOptions = {}): Promise<AccessToken> {
    const key = `${connection.id}|${resource}`;
    const held = this.tokens.get(key);
    if (!options.fresh && held && held.expiresOn.getTime() - this.deps.now().getTime() > EXPIRY_MARGIN_MS) {
      this.count('token.requests', connection, resource, { source: 'memory' });
      return held;
    }
    // A sign-in Microsoft refused stays refused until the user signs in again: no request for it.
    if (!options.fresh && connection.state === 'needs_reauth') {
      throw new TokenUnavailableError(connection.id, { ...classifyTokenFailure({ error: 'invalid_grant' }), code: connection.stateReason?.code ?? 'invalid_grant' });
    }
    const pendingKey = `${key}|${options.fresh ? 'fresh' : 'any'}`;
    let pending = this.pending.get(pendingKey);
    if (!pending) {
      pending = this.obtain(connection, resource, { kind: 'demand', fresh: options.fresh ?? false }).finally(() => this.pending.delete(pendingKey));
      this.pending.set(pendingKey, pending);
    }
    return pending;
  }

  /**
   * The timer's refresh: redeems the refresh token (delegated) or asks Microsoft for an app-only
   * token (application), whatever is cached, under the lease; `busy` when another holder has it.
   */
  async refresh(connection: Connection, needed?: (health: ConnectionHealth) => boolean): Promise<RefreshResult> {
    const resource = this.primaryResource(connection);
    try {
      const token = await this.obtain(connection, resource, { kind: 'refresh', ...(needed && { needed }) });
      return { outcome: 'refreshed', expiresOn: token.expiresOn };
    } catch (error) {
      if (error instanceof LeaseBusy) return { outcome: 'busy' };
      throw error;
    }
  }

  /** Forgets what this instance holds for a connection (its tokens were replaced or revoked). */
  forget(connectionId: string): void {
    for (const key of this.tokens.keys()) if (key.startsWith(`${connectionId}|`)) this.tokens.delete(key);
    this.caches.delete(connectionId);
  }

  private primaryResource(connection: Connection): Resource {
    if (connection.mode === 'application') return 'graph';
    return delegatedScopes(this.deps.msal.app(connection.appId).cloud, connection.transports).primary;
  }

  private async obtain(connection: Connection, resource: Resource, request: Request): Promise<AccessToken> {
    const tenantId = connection.tenantId;
    if (!tenantId) throw this.unavailable(connection, { error: 'no_tokens_found' }, 'it was never connected');
    const gate = (await this.deps.appGate?.(connection.appId)) ?? { allow: true };
    if (!gate.allow) throw new TokenUnavailableError(connection.id, gate.failure);
    // The timer's refresh, a fresh check, and the one request that tries a refused credential again all ask Microsoft.
    const network = request.kind === 'refresh' || request.fresh || gate.probe === true;
    const takeLease = () => (request.kind === 'refresh' ? this.deps.leases.acquire(connection, request.needed) : this.deps.leases.acquireWaiting(connection, LEASE_WAIT_MS));
    const succeeded = () => this.deps.onSuccess?.(connection, { appProbe: gate.probe === true }) ?? Promise.resolve();
    const token =
      connection.mode === 'delegated'
        ? await this.delegated(connection, tenantId, resource, request.kind, network, takeLease, succeeded)
        : await this.appOnly(connection, tenantId, resource, request.kind, network, succeeded, request.kind === 'refresh' ? takeLease : undefined);
    if (this.tokens.size >= MAX_CONNECTIONS_HELD) this.tokens.clear();
    this.tokens.set(`${connection.id}|${resource}`, token.token);
    return token.token;
  }

  private async delegated(
    connection: Connection,
    tenantId: string,
    resource: Resource,
    mode: Request['kind'],
    network: boolean,
    takeLease: () => Promise<HeldLease | undefined>,
    succeeded: () => Promise<void>,
  ): Promise<{ token: AccessToken; fromNetwork: boolean }> {
    const account = connection.account;
    if (!account) throw this.unavailable(connection, { error: 'no_tokens_found' }, 'no user signed in');
    const app = this.deps.msal.app(connection.appId);
    const scopes = delegatedScopes(app.cloud, connection.transports).byResource[resource];
    if (!scopes) throw new Error(`Connection ${connection.id}: its transports use no ${resource} permission`);

    const lease = await takeLease();
    if (!lease) {
      this.deps.metrics?.count('token.lease_contention', { customerId: connection.customerId, connectionId: connection.id, mode });
      this.deps.logger.info('tokens: another instance holds the refresh lease', { customerId: connection.customerId, connectionId: connection.id, mode });
      if (mode === 'refresh') throw new LeaseBusy();
      throw new TokenUnavailableError(connection.id, { ...classifyTokenFailure({ error: 'temporarily_unavailable' }), code: 'lease_busy', explanation: 'Another instance is refreshing the connection and did not finish in time.' });
    }

    let rewritten: string | undefined;
    let result: AuthenticationResult;
    try {
      const cache = await this.cacheOf(connection, lease.cacheVersion);
      const plugin: ICachePlugin = {
        beforeCacheAccess: (context) => {
          context.tokenCache.deserialize(rewritten ?? cache);
          return Promise.resolve();
        },
        afterCacheAccess: async (context) => {
          if (!context.cacheHasChanged) return;
          // Only a holder that still has the lease writes: one that overran it could overwrite a newer cache.
          if (!(await lease.renew())) throw new LeaseLost(connection.id);
          // Saved before the lease goes: the rotated refresh token is never only in memory.
          const serialized = context.tokenCache.serialize();
          await saveTokenCache(this.deps.secrets, connection.id, serialized);
          rewritten = serialized;
        },
      };
      const client =
        connection.signInMethod === 'device-code'
          ? this.deps.msal.publicClient(connection.appId, tenantId, plugin)
          : await this.deps.msal.delegated(connection.appId, tenantId, plugin);
      const cached = await client.getTokenCache().getAccountByHomeId(`${account.oid}.${tenantId}`);
      if (!cached) throw this.unavailable(connection, { error: 'no_account_in_cache' }, 'its token cache holds no account');
      result = await client.acquireTokenSilent({ account: cached, scopes, authority: this.deps.msal.authority(app, tenantId), ...(network && { forceRefresh: true }) });
    } catch (thrown) {
      const failure = thrown instanceof LeaseLost ? undefined : thrown instanceof TokenUnavailableError ? thrown.failure : tokenFailureOf(thrown);
      if (rewritten !== undefined || !failure) {
        // Not Microsoft's answer (storage, a lost lease): the cache may or may not have been written, so the next holder reads it again.
        this.caches.delete(connection.id);
        await lease.release({ kind: rewritten === undefined ? 'nothing' : 'signed_in' });
        throw thrown;
      }
      throw await this.failed(connection, resource, mode, failure, thrown, lease, { kind: 'failure', failure, state: failure.state ?? connection.state, used: mode === 'demand' });
    }

    const token = toAccessToken(result, account.upn);
    try {
      const released = await this.tellThenRelease(
        lease,
        result.fromCache ? undefined : succeeded,
        {
          kind: 'success',
          fromNetwork: !result.fromCache,
          cacheRewritten: rewritten !== undefined,
          accessTokenExpiresAt: token.expiresOn,
          used: mode === 'demand',
          state: result.fromCache ? connection.state : 'connected',
        },
        // The rotated cache is saved, so its version moves on; the schedule stays, so the lifecycle is told again.
        { kind: 'nothing', cacheRewritten: rewritten !== undefined },
      );
      if (rewritten !== undefined && released) this.holdCache(connection.id, rewritten, released.cacheVersion);
    } catch (error) {
      // The store has the cache but the row may not say so: read it again next time.
      this.caches.delete(connection.id);
      throw error;
    }
    this.count('token.requests', connection, resource, { source: result.fromCache ? 'cache' : 'microsoft', mode });
    return { token, fromNetwork: !result.fromCache };
  }

  /** On demand no lease is taken (`takeLease` undefined): there is no refresh token, and msal caches per tenant in memory. */
  private async appOnly(
    connection: Connection,
    tenantId: string,
    resource: Resource,
    mode: Request['kind'],
    network: boolean,
    succeeded: () => Promise<void>,
    takeLease?: () => Promise<HeldLease | undefined>,
  ): Promise<{ token: AccessToken; fromNetwork: boolean }> {
    const app = this.deps.msal.app(connection.appId);
    const lease = takeLease && (await takeLease());
    if (takeLease && !lease) throw new LeaseBusy();
    let result: AuthenticationResult | null;
    try {
      const client = await this.deps.msal.appOnlyClient(connection.appId);
      result = await client.acquireTokenByClientCredential({
        scopes: [defaultScope(app.cloud, resource)],
        authority: this.deps.msal.authority(app, tenantId),
        ...(network && { skipCache: true }),
      });
      if (!result) throw new Error('msal returned no app-only token');
    } catch (thrown) {
      const failure = tokenFailureOf(thrown);
      if (!failure) {
        await lease?.release({ kind: 'nothing' });
        throw thrown;
      }
      throw await this.failed(connection, resource, mode, failure, thrown, lease, { kind: 'failure', failure, state: failure.state ?? connection.state, used: false });
    }
    const token = toAccessToken(result, app.clientId);
    await this.tellThenRelease(lease, result.fromCache ? undefined : succeeded, {
      kind: 'success',
      fromNetwork: !result.fromCache,
      cacheRewritten: false,
      accessTokenExpiresAt: token.expiresOn,
      used: false,
      state: 'connected',
    });
    this.count('token.requests', connection, resource, { source: result.fromCache ? 'cache' : 'microsoft', mode });
    return { token, fromNetwork: !result.fromCache };
  }

  /** The connection's token cache at `version`: this instance's copy, or the secret store's when the copy is older. */
  private async cacheOf(connection: Connection, version: number): Promise<string> {
    const held = this.caches.get(connection.id);
    if (held?.version === version) return held.serialized;
    const stored = await this.deps.secrets.get(tokenCacheSecretName(connection.id));
    this.deps.metrics?.count('secretstore.reads', { purpose: 'token_cache', customerId: connection.customerId, connectionId: connection.id });
    if (!stored) throw this.unavailable(connection, { error: 'no_tokens_found' }, 'the secret store holds no token cache for it');
    this.holdCache(connection.id, stored.value, version);
    return stored.value;
  }

  private holdCache(connectionId: string, serialized: string, version: number): void {
    if (this.caches.size >= MAX_CONNECTIONS_HELD) this.caches.clear();
    this.caches.set(connectionId, { serialized, version });
  }

  /** Microsoft refused: counted, the lifecycle told (failures that are not transient), then the lease let go with `outcome`. */
  private async failed(
    connection: Connection,
    resource: Resource,
    mode: Request['kind'],
    failure: TokenFailure,
    cause: unknown,
    lease: HeldLease | undefined,
    outcome: LeaseOutcome,
  ): Promise<TokenUnavailableError> {
    this.tokens.delete(`${connection.id}|${resource}`);
    this.count('token.requests', connection, resource, { source: 'failure', mode, failureKind: failure.kind, code: failure.code });
    if (failure.code === 'http_429') {
      this.deps.metrics?.count('throttle.responses', { customerId: connection.customerId, connectionId: connection.id, tenantId: connection.tenantId, service: 'entra', operation: 'token', code: failure.code });
    }
    const tell = failure.kind === 'transient' ? undefined : () => this.deps.onFailure?.(connection, failure) ?? Promise.resolve();
    await this.tellThenRelease(lease, tell, outcome);
    return cause instanceof TokenUnavailableError ? cause : new TokenUnavailableError(connection.id, failure, { cause });
  }

  /**
   * Tells the lifecycle, which moves the connection (and records its event), and only then lets the
   * lease go with `outcome`, which sets when the connection is next due. Until the lease goes the row
   * stays due as it was, so a crash in between brings a retry or the timer back to the connection;
   * the other order could leave a revoked connection `connected` with a refresh that is never due
   * again, and no needs_reauth event. When telling fails, the lease goes with `fallback` (by default
   * leaving the schedule as it was, so the attempt is made again) and the error is the caller's.
   */
  private async tellThenRelease(
    lease: HeldLease | undefined,
    tell: (() => Promise<void>) | undefined,
    outcome: LeaseOutcome,
    fallback: LeaseOutcome = { kind: 'nothing' },
  ): Promise<ConnectionHealth | undefined> {
    try {
      await tell?.();
    } catch (error) {
      // The lifecycle's error is the one to report; a lease that cannot be let go expires by itself.
      await lease?.release(fallback).catch(() => undefined);
      throw error;
    }
    return lease?.release(outcome);
  }

  private unavailable(connection: Connection, signal: { error: string }, why: string): TokenUnavailableError {
    return new TokenUnavailableError(connection.id, { ...classifyTokenFailure(signal), explanation: `The connection has no usable sign-in: ${why}.` });
  }

  private count(name: 'token.requests', connection: Connection, resource: Resource, dimensions: Record<string, string>): void {
    (this.deps.metrics ?? noMetrics).count(name, { customerId: connection.customerId, connectionId: connection.id, tenantId: connection.tenantId, mode: connection.mode, resource, ...dimensions });
  }
}

/** The lease expired while its holder worked, and another took it: nothing more is written. */
class LeaseLost extends Error {
  constructor(connectionId: string) {
    super(`The refresh lease of connection ${connectionId} expired before its holder finished; the token cache was left as the next holder wrote it.`);
    this.name = 'LeaseLost';
  }
}

class LeaseBusy extends Error {}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** What a token request's failure means, or undefined for failures that are not about tokens (a bug, storage). */
export function tokenFailureOf(thrown: unknown): TokenFailure | undefined {
  if (thrown instanceof TokenUnavailableError) return thrown.failure;
  const microsoft = errorFromMsal(thrown);
  if (microsoft) return classifyTokenFailure(microsoft);
  if (isNetworkError(thrown)) return classifyTokenFailure({ error: 'network_error' });
  return undefined;
}

function isNetworkError(thrown: unknown): boolean {
  for (let error = thrown, depth = 0; error instanceof Error && depth < 5; error = error.cause, depth++) {
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (error instanceof TypeError && error.message === 'fetch failed') return true;
  }
  return false;
}

function toAccessToken(result: AuthenticationResult, subject: string): AccessToken {
  return { token: result.accessToken, expiresOn: result.expiresOn ?? new Date(Date.now() + 5 * 60_000), subject };
}
