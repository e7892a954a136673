import { changeConnectionState, recordLastEvent, type ConnectionDeps } from '../connections/connections.js';
import { canTransition, InvalidTransitionError, type Connection, type ConnectionState, type StateReason } from '../domain/connection.js';
import type { LinkPurpose } from '../domain/sign-in-state.js';
import type { TokenFailure } from '../domain/token-failure.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AppHealthService } from './app-health.js';
import type { ConnectionHealthStore } from './health-store.js';

/**
 * What token failures and successes do to a connection's state. Every change is a
 * `connection.state_changed` event with Microsoft's code, an explanation and the next step, and,
 * where a person can fix it with one, a fresh link (reconnect, or the administrator's grant).
 * A refused app credential changes the app's state instead (AppHealthService).
 */

export interface LifecycleDeps {
  connections: ConnectionDeps;
  health: ConnectionHealthStore;
  apps: AppHealthService;
  /** Issues the link that fixes the connection; absent when links cannot be made. */
  issueLink?(connection: Connection, purpose: LinkPurpose): Promise<{ url: string; expiresAt: string }>;
  logger: Logger;
  metrics: Metrics;
}

const RECOVERABLE: readonly ConnectionState[] = ['degraded', 'needs_admin', 'app_misconfigured'];

export class TokenLifecycle {
  constructor(private readonly deps: LifecycleDeps) {}

  /** A failure that is not transient: the connection (or its app) moves to the state that says who must act. */
  async failed(connection: Connection, failure: TokenFailure): Promise<void> {
    if (failure.kind === 'transient' || !failure.state) return;
    if (failure.kind === 'app_config') {
      await this.deps.apps.markMisconfigured(connection.appId, failure);
      return;
    }
    if (connection.state === failure.state || !canTransition(connection.state, failure.state)) return;
    const reason: StateReason = { code: failure.code, message: failure.explanation, nextStep: failure.nextStep };
    const purpose = linkPurpose(connection, failure);
    const link = purpose && this.deps.issueLink ? await this.deps.issueLink(connection, purpose) : undefined;
    await this.move(connection, failure.state, reason, { failureKind: failure.kind, remedy: failure.remedy, ...(link && purpose && { link: { ...link, purpose } }) });
  }

  /**
   * Microsoft gave the connection a token: a connection waiting on an administrator or on Microsoft
   * is connected again, and so is its app when the token came from the request that tried the app's
   * refused credential (otherwise the app's state was just read by the gate, and there is nothing to clear).
   */
  async succeeded(connection: Connection, outcome: { appProbe: boolean }): Promise<void> {
    if (outcome.appProbe) await this.deps.apps.markWorking(connection.appId);
    if (!RECOVERABLE.includes(connection.state)) return;
    await this.move(connection, 'connected', undefined, {
      recoveredFrom: connection.stateReason?.code ?? connection.state,
      explanation: 'Microsoft issues tokens for the connection again; mail flows.',
      nextStep: 'Nothing to do.',
    });
  }

  /**
   * Records the connection's last change, in case the writer that made it died before recording
   * its event (the event is recorded by id, so never twice). A refresh starts with it: for a
   * connection that now waits for a person, the refresh retry is the only caller that comes back.
   */
  async recordLastChange(connection: Connection): Promise<void> {
    await recordLastEvent(this.deps.connections, connection);
  }

  /** Transient failures lasted too long: the connection is called degraded (and keeps being retried). */
  async degraded(connection: Connection, failure: TokenFailure, failingSince: string): Promise<void> {
    if (connection.state !== 'connected') return;
    await this.move(
      connection,
      'degraded',
      {
        code: failure.code,
        message: `Microsoft has failed every token request for this connection since ${failingSince}: ${failure.explanation}`,
        nextStep: failure.unrecognized
          ? `Microsoft's answer (${failure.code}) is not one the connector knows: look it up in Microsoft's AADSTS list and check the app registration; the connector keeps retrying.`
          : 'Nothing to do unless Microsoft reports an incident; the connector keeps retrying and the connection returns to connected by itself.',
      },
      { failureKind: failure.kind, failingSince },
    );
  }

  private async move(connection: Connection, to: ConnectionState, reason: StateReason | undefined, details: Record<string, unknown>): Promise<void> {
    if (connection.state === to || !canTransition(connection.state, to)) return;
    let moved: Connection | undefined;
    try {
      moved = await changeConnectionState(this.deps.connections, connection.customerId, connection.id, to, reason, details);
    } catch (error) {
      // Changed meanwhile (disconnected, say): the newer state stands.
      if (error instanceof InvalidTransitionError) return;
      throw error;
    }
    if (!moved) return;
    const fields = { customerId: connection.customerId, connectionId: connection.id, from: connection.state, to, code: reason?.code };
    if (to === 'connected') this.deps.logger.info('connection recovered', fields);
    else this.deps.logger.warn(`connection is ${to}`, { ...fields, nextStep: reason?.nextStep });
    await this.deps.health.reschedule(moved);
  }
}

/** Which link fixes it: the user signs in again, or an administrator grants consent (for an application connection, consent is its sign-in). */
function linkPurpose(connection: Connection, failure: TokenFailure): LinkPurpose | undefined {
  if (failure.remedy === 'reconnect') return 'connect';
  if (failure.remedy === 'admin_consent') return connection.mode === 'application' ? 'connect' : 'admin-grant';
  return undefined;
}
