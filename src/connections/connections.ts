import type { z } from 'zod';
import {
  changeState,
  connectionView,
  type Connection,
  type ConnectionMode,
  type ConnectionState,
  type StateReason,
  type Transports,
} from '../domain/connection.js';
import type { EventType } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import { mergeTags, type Tags } from '../domain/tags.js';
import type { NewEvent } from '../events/record-event.js';
import { keys, type Repositories } from '../store/repositories.js';
import { UNCHANGED } from '../store/table-repository.js';
import { updateAfterLastEvent } from '../events/update-after-last-event.js';
import type { Metrics } from '../telemetry/metrics.js';

/**
 * What happens to connections: created pending, moved between states, re-tagged, disconnected.
 * Every change saves its event in the same row write and then records it, so an event is never
 * lost to a failure between the two: the next change, a repeat of the call, or the connection's
 * next refresh records it first.
 */
export interface ConnectionDeps {
  connections: Repositories['connections'];
  /** Stores an event and queues its deliveries; recording an id that is already stored is safe. */
  recordEvent(event: NewEvent): Promise<unknown>;
  now(): Date;
  /** Counts state changes (connection.state_transitions), whoever makes them. */
  metrics?: Metrics;
}

export interface NewConnection {
  customerId: string;
  mode: ConnectionMode;
  appId: string;
  transports: Transports;
  displayName?: string;
  tags: Tags;
}

export async function createConnection(deps: ConnectionDeps, input: NewConnection): Promise<Connection> {
  const now = deps.now();
  const at = now.toISOString();
  const base: Connection = {
    id: newId('con', now.getTime()),
    customerId: input.customerId,
    mode: input.mode,
    appId: input.appId,
    transports: input.transports,
    state: 'pending',
    ...(input.displayName !== undefined && { displayName: input.displayName }),
    tags: input.tags,
    createdAt: at,
    updatedAt: at,
    stateChangedAt: at,
  };
  const connection = withEvent(base, 'connection.created', { connection: connectionView(base) }, now);
  await deps.connections.create(keys.connection(connection.customerId, connection.id), connection);
  await recordLastEvent(deps, connection);
  return connection;
}

/**
 * Moves a connection to `to`. Returns the connection as it is afterwards, or undefined when it does
 * not exist. Moving to the state it is in changes nothing (and records what a failed earlier call
 * left unrecorded); a move the state machine forbids throws InvalidTransitionError.
 */
export async function changeConnectionState(
  deps: ConnectionDeps,
  customerId: string,
  connectionId: string,
  to: ConnectionState,
  reason: StateReason | undefined,
  /** More for the event: what fixes it (a reconnect link), Microsoft's code. */
  details: Record<string, unknown> = {},
): Promise<Connection | undefined> {
  const now = deps.now();
  return updateWithEvent(deps, customerId, connectionId, (current) => {
    if (!current) return UNCHANGED;
    const change = changeState(current, to, reason, now);
    if (!change) return UNCHANGED;
    return withEvent(change.connection, 'connection.state_changed', { from: change.from, to: change.to, ...(reason && { reason }), ...details }, now);
  });
}

/** What Microsoft confirmed when a sign-in or admin consent completed. */
export type SignInResult = Required<Pick<Connection, 'tenantId' | 'granted'>> &
  Pick<Connection, 'account' | 'servicePrincipalId' | 'signInMethod'> & {
    /** Application mode: the administrator who granted access, for the event (the audit trail). */
    grantedBy?: { oid: string; upn: string };
  };

/** Raised inside the update when the stored connection no longer admits this sign-in. */
class SignInNoLongerFits extends Error {}

/**
 * Records a completed sign-in or admin consent: the tenant, the account and what was granted, and
 * the connection becomes connected. Its event is the state change, or `connection.reconnected`
 * when a connected connection was connected again. Returns undefined, changing nothing, when the
 * connection is gone or disconnected, or meanwhile belongs to another tenant or user (checked on
 * the row being written, so two sign-ins racing cannot both win).
 */
export async function recordSignIn(
  deps: ConnectionDeps,
  customerId: string,
  connectionId: string,
  result: SignInResult,
): Promise<Connection | undefined> {
  const now = deps.now();
  try {
    return await updateWithEvent(deps, customerId, connectionId, (current) => {
      if (!current || current.state === 'disconnected') throw new SignInNoLongerFits();
      if (current.tenantId !== undefined && current.tenantId.toLowerCase() !== result.tenantId.toLowerCase()) throw new SignInNoLongerFits();
      if (current.account && result.account && current.account.oid.toLowerCase() !== result.account.oid.toLowerCase()) throw new SignInNoLongerFits();
      const signedIn: Connection = {
        ...current,
        tenantId: result.tenantId,
        granted: result.granted,
        ...(result.account && { account: result.account }),
        ...(result.servicePrincipalId && { servicePrincipalId: result.servicePrincipalId }),
        ...(result.signInMethod && { signInMethod: result.signInMethod }),
        updatedAt: now.toISOString(),
      };
      const change = changeState(signedIn, 'connected', undefined, now);
      const details = {
        tenantId: result.tenantId,
        ...(result.account && { account: result.account }),
        ...(result.grantedBy && { grantedBy: result.grantedBy }),
        granted: result.granted,
      };
      return change
        ? withEvent(change.connection, 'connection.state_changed', { from: change.from, to: change.to, ...details }, now)
        : withEvent(signedIn, 'connection.reconnected', details, now);
    });
  } catch (error) {
    if (error instanceof SignInNoLongerFits) return undefined;
    throw error;
  }
}

/** Disconnects a connection and forgets its tokens; idempotent. */
export async function disconnectConnection(
  deps: ConnectionDeps & { forgetTokens(connectionId: string): Promise<unknown> },
  customerId: string,
  connectionId: string,
  reason: StateReason,
): Promise<Connection | undefined> {
  const disconnected = await changeConnectionState(deps, customerId, connectionId, 'disconnected', reason);
  if (disconnected) await deps.forgetTokens(connectionId);
  return disconnected;
}

export type TagsUpdate = { connection: Connection } | { issues: z.core.$ZodIssue[] } | undefined;

/** Applies a merge patch to a connection's tags; issues when the result would not be valid tags. */
export async function updateConnectionTags(
  deps: ConnectionDeps,
  customerId: string,
  connectionId: string,
  patch: Record<string, string | null>,
): Promise<TagsUpdate> {
  const now = deps.now().toISOString();
  // Set by the mutator, whose last run is the one that counts.
  const outcome: { issues?: z.core.$ZodIssue[] } = {};
  const updated = await deps.connections.update(keys.connection(customerId, connectionId), (current) => {
    delete outcome.issues;
    if (!current) return UNCHANGED;
    const merged = mergeTags(current.tags, patch);
    if ('issues' in merged) {
      outcome.issues = merged.issues;
      return UNCHANGED;
    }
    return { ...current, tags: merged.tags, updatedAt: now };
  });
  if (outcome.issues) return { issues: outcome.issues };
  return updated && { connection: updated.value };
}

/**
 * Rewrites a connection whose new version carries an event (withEvent), after recording the event
 * of every version it replaces (updateAfterLastEvent), and then records its own.
 */
async function updateWithEvent(
  deps: ConnectionDeps,
  customerId: string,
  connectionId: string,
  mutate: (current: Connection | undefined) => Connection | typeof UNCHANGED,
): Promise<Connection | undefined> {
  const key = keys.connection(customerId, connectionId);
  const before = await deps.connections.get(key);
  if (!before) return undefined;
  const recorded = new Set<string>();
  await recordLastEvent(deps, before.value, recorded);
  const updated = await updateAfterLastEvent(deps.connections, key, mutate, (row) => recordLastEvent(deps, row, recorded), recorded);
  const last = updated?.value.lastEvent;
  if (updated && last && !recorded.has(last.id)) {
    if (last.type === 'connection.state_changed') countTransition(deps, updated.value, last.data);
    await recordLastEvent(deps, updated.value, recorded);
  }
  return updated?.value;
}

function countTransition(deps: ConnectionDeps, connection: Connection, change: Record<string, unknown>): void {
  const reason = change.reason as StateReason | undefined;
  deps.metrics?.count('connection.state_transitions', {
    customerId: connection.customerId,
    connectionId: connection.id,
    tenantId: connection.tenantId,
    from: String(change.from),
    to: String(change.to),
    code: reason?.code,
  });
}

function withEvent(connection: Connection, type: EventType, data: Record<string, unknown>, now: Date): Connection {
  return {
    ...connection,
    lastEvent: { id: newId('evt', now.getTime()), type, occurredAt: now.toISOString(), tags: connection.tags, data },
  };
}

/**
 * Records the connection's last event, which its row carries from the write that made it: again
 * after a writer died before recording it (by id, so never twice). `recorded` collects the ids.
 */
export async function recordLastEvent(deps: Pick<ConnectionDeps, 'recordEvent'>, connection: Connection, recorded?: Set<string>): Promise<void> {
  const last = connection.lastEvent;
  if (!last) return;
  await deps.recordEvent({
    id: last.id,
    type: last.type,
    occurredAt: last.occurredAt,
    customerId: connection.customerId,
    connectionId: connection.id,
    tags: last.tags,
    data: last.data,
  });
  recorded?.add(last.id);
}
