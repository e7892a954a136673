import { z } from 'zod';
import type { ConnectionState } from '../domain/connection.js';
import { isDegraded, isDue, retryDelayMs, type RefreshPolicy } from '../domain/connection-health.js';
import { TokenUnavailableError, type AccessTokens } from '../identity/access-tokens.js';
import { keys, type Repositories } from '../store/repositories.js';
import { QUEUES } from '../store/storage-layout.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { ConnectionHealthStore } from './health-store.js';
import type { TokenLifecycle } from './token-lifecycle.js';
import type { AppHealthService } from './app-health.js';

/**
 * The refresh-connection queue handler's work: one connection, if it is still due. The refresh
 * itself happens under the connection's lease (AccessTokens.refresh), so of many messages for one
 * connection one makes the token call and the others find it busy or no longer due. A transient
 * failure schedules its own retry with back-off; the others change the connection's state, before
 * the lease goes (AccessTokens), so a crash in between leaves the connection due for the retry.
 * Every run first records the connection's last change again, in case its writer died before
 * recording the event: that is how a retry after such a crash gets the event out.
 */

export const refreshMessageSchema = z.object({
  customerId: z.string().min(1),
  connectionId: z.string().min(1),
  /** A retry after a transient failure, made right after the attempt that failed at this time. */
  retryOf: z.iso.datetime().optional(),
});
export type RefreshMessage = z.infer<typeof refreshMessageSchema>;

export interface RefreshDeps {
  connections: Repositories['connections'];
  health: ConnectionHealthStore;
  tokens: Pick<AccessTokens, 'refresh'>;
  lifecycle: TokenLifecycle;
  apps: Pick<AppHealthService, 'nextProbeAt'>;
  queues: { publish(queue: string, payload: unknown, options?: { delaySeconds?: number }): Promise<unknown> };
  policy: RefreshPolicy;
  logger: Logger;
  metrics: Metrics;
  now(): Date;
  random?: () => number;
}

export type RefreshOutcome =
  | { outcome: 'refreshed'; expiresOn: Date }
  | { outcome: 'skipped'; reason: 'gone' | 'not_due' | 'busy' | ConnectionState }
  | { outcome: 'failed'; kind: string; code: string; retryInSeconds?: number };

/** States in which the timer keeps a connection's tokens alive (or checks whether they work again). */
const REFRESHED_STATES: readonly ConnectionState[] = ['connected', 'degraded', 'needs_admin', 'app_misconfigured'];
/** Queue messages wait at most 7 days; retries are far shorter. */
const MAX_DELAY_SECONDS = 7 * 86_400;

export async function refreshConnection(deps: RefreshDeps, message: RefreshMessage): Promise<RefreshOutcome> {
  const found = await deps.connections.get(keys.connection(message.customerId, message.connectionId));
  if (!found) return { outcome: 'skipped', reason: 'gone' };
  const connection = found.value;
  await deps.lifecycle.recordLastChange(connection);
  if (!REFRESHED_STATES.includes(connection.state)) {
    // Waiting for a person (or gone): off the timer's list until a sign-in puts it back.
    await deps.health.reschedule(connection);
    return { outcome: 'skipped', reason: connection.state };
  }
  const health = (await deps.health.ensure(connection)).value;
  const now = deps.now();
  const retryStillCurrent = message.retryOf !== undefined && message.retryOf === health.lastAttemptAt;
  if (!retryStillCurrent && !isDue(health, now)) return { outcome: 'skipped', reason: 'not_due' };

  const log = deps.logger.child({ customerId: connection.customerId, connectionId: connection.id });
  const dimensions = { customerId: connection.customerId, connectionId: connection.id, tenantId: connection.tenantId, mode: connection.mode };
  try {
    // Checked again on the row the lease is taken on: a refresh that finished since the check above makes this one unneeded.
    const result = await deps.tokens.refresh(connection, (current) => (retryStillCurrent ? current.lastAttemptAt === message.retryOf : isDue(current, deps.now())));
    if (result.outcome === 'busy') {
      deps.metrics.count('refresh.attempts', { ...dimensions, outcome: 'busy' });
      return { outcome: 'skipped', reason: 'busy' };
    }
    // AccessTokens told the lifecycle (onSuccess): a failing connection or app is back.
    deps.metrics.count('refresh.attempts', { ...dimensions, outcome: 'success' });
    log.info('tokens refreshed', { expiresOn: result.expiresOn.toISOString() });
    return { outcome: 'refreshed', expiresOn: result.expiresOn };
  } catch (error) {
    if (!(error instanceof TokenUnavailableError)) throw error;
    const { failure } = error;
    deps.metrics.count('refresh.attempts', { ...dimensions, outcome: 'failure', failureKind: failure.kind, code: failure.code });
    if (failure.kind === 'app_config') {
      // Raised once for the app; its connections wait for the next try of the credential instead of coming back every tick.
      await deps.health.postpone(connection, (await deps.apps.nextProbeAt(connection.appId)) ?? new Date(now.getTime() + deps.policy.retryMaxMs));
    }
    if (failure.kind !== 'transient') {
      // AccessTokens already told the lifecycle (onFailure); the state change is its event.
      log.warn('token refresh failed; the connection needs someone to act', { failureKind: failure.kind, code: failure.code, nextStep: failure.nextStep });
      return { outcome: 'failed', kind: failure.kind, code: failure.code };
    }
    const after = await deps.health.get(connection.customerId, connection.id);
    const failures = after?.consecutiveFailures ?? 1;
    if (after && isDegraded(after, deps.policy, now) && after.failingSince !== undefined) await deps.lifecycle.degraded(connection, failure, after.failingSince);
    const retryInSeconds = Math.min(MAX_DELAY_SECONDS, Math.ceil(retryDelayMs(failures, deps.policy, deps.random) / 1000));
    await deps.queues.publish(
      QUEUES.refreshConnection,
      { customerId: connection.customerId, connectionId: connection.id, ...(after?.lastAttemptAt !== undefined && { retryOf: after.lastAttemptAt }) } satisfies RefreshMessage,
      { delaySeconds: retryInSeconds },
    );
    const fields = { failureKind: failure.kind, code: failure.code, consecutiveFailures: failures, retryInSeconds };
    // An answer the taxonomy does not know may never pass: ops should see it before it turns the connection degraded.
    if (failure.unrecognized) log.error('token refresh failed with an answer the connector does not recognise; retrying', fields);
    else log.warn('token refresh failed; retrying', fields);
    return { outcome: 'failed', kind: failure.kind, code: failure.code, retryInSeconds };
  }
}

