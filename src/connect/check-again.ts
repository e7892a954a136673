import type { CheckOptions } from '../connectivity/check-connection.js';
import type { Connection } from '../domain/connection.js';
import type { ConnectionCheck } from '../domain/connection-check.js';
import type { ExchangeAppSetupPage } from '../pages/model.js';
import { keys, type Repositories } from '../store/repositories.js';
import type { ConnectOutcome, ConnectResults } from './connect-results.js';

/**
 * "Check again" on the Exchange set-up page: after pasting the PowerShell, the customer's
 * administrator sees whether the connector now gets into the mailboxes. Anonymous like the page
 * itself (the unguessable, expiring result id is the proof), so it only ever runs the checker for
 * the result's own connection, never sends a test message, and runs at most once per
 * CHECK_INTERVAL_MS per result, however often the button is pressed.
 */

export interface CheckAgainDeps {
  results: Pick<ConnectResults, 'load' | 'startCheck'>;
  connections: Pick<Repositories['connections'], 'get'>;
  checkConnection(connection: Connection, options: CheckOptions): Promise<ConnectionCheck>;
}

export type SetupOutcome = Omit<ExchangeAppSetupPage, 'vendorName' | 'url'>;

export type CheckAgain =
  | { kind: 'gone' }
  /** The result is of another kind, or its page names no mailbox: there is nothing on its page to check. */
  | { kind: 'not-checkable'; outcome: ConnectOutcome }
  | { kind: 'unavailable'; outcome: SetupOutcome }
  | { kind: 'wait'; outcome: SetupOutcome; retryAfterMs: number }
  | { kind: 'checked'; outcome: SetupOutcome; connection: Connection; check: ConnectionCheck };

export const CHECK_INTERVAL_MS = 10_000;

/**
 * The mailboxes one press checks, at most: each takes up to a probe timeout per protocol, and the
 * page waits for all of them within one HTTP request.
 */
export const MAX_CHECKED_MAILBOXES = 5;

export async function checkAgain(deps: CheckAgainDeps, resultId: string): Promise<CheckAgain> {
  const stored = await deps.results.load(resultId);
  if (!stored) return { kind: 'gone' };
  const { outcome, subject } = stored;
  if (outcome.kind !== 'exchange-app-setup' || !subject || outcome.setup.mailboxes.length === 0) return { kind: 'not-checkable', outcome };

  const found = await deps.connections.get(keys.connection(subject.customerId, subject.connectionId));
  const connection = found?.value;
  // Any state the checker can say something about: a failed token step may have moved the
  // connection to needs_admin, and the administrator who fixed that must be able to check again.
  if (!connection || connection.mode !== 'application' || connection.state === 'pending' || connection.state === 'disconnected') {
    return { kind: 'unavailable', outcome };
  }

  const turn = await deps.results.startCheck(resultId, CHECK_INTERVAL_MS);
  if (turn.kind === 'gone') return { kind: 'gone' };
  if (turn.kind === 'wait') return { kind: 'wait', outcome, retryAfterMs: turn.retryAfterMs };

  // The mailboxes the page's commands are for: those are what the administrator just set up.
  const check = await deps.checkConnection(connection, { mailboxes: outcome.setup.mailboxes.slice(0, MAX_CHECKED_MAILBOXES) });
  return { kind: 'checked', outcome, connection, check };
}
