import {
  changeState,
  connectionView,
  type Connection,
  type ConnectionMode,
  type ConnectionState,
  type StateReason,
} from '../domain/connection.js';
import type { EventType } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import { mergeTags, type Tags } from '../domain/tags.js';
import type { NewEvent } from '../events/record-event.js';
import { keys, type Repositories } from '../store/repositories.js';
import { UNCHANGED } from '../store/table-repository.js';

/**
 * What happens to connections: created pending, moved between states, re-tagged, disconnected.
 * Every change saves its event in the same row write and then records it, so an event is never
 * lost to a failure between the two: repeating the call records it.
 */
export interface ConnectionDeps {
  connections: Repositories['connections'];
  events: Repositories['events'];
  recordEvent(event: NewEvent): Promise<unknown>;
  now(): Date;
}

export interface NewConnection {
  customerId: string;
  mode: ConnectionMode;
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
): Promise<Connection | undefined> {
  const now = deps.now();
  const updated = await deps.connections.update(keys.connection(customerId, connectionId), (current) => {
    if (!current) return UNCHANGED;
    const change = changeState(current, to, reason, now);
    if (!change) return UNCHANGED;
    return withEvent(change.connection, 'connection.state_changed', { from: change.from, to: change.to, ...(reason && { reason }) }, now);
  });
  if (updated) await recordLastEvent(deps, updated.value);
  return updated?.value;
}

export async function updateConnectionTags(
  deps: ConnectionDeps,
  customerId: string,
  connectionId: string,
  patch: Record<string, string | null>,
): Promise<Connection | undefined> {
  const now = deps.now().toISOString();
  const updated = await deps.connections.update(keys.connection(customerId, connectionId), (current) =>
    current ? { ...current, tags: mergeTags(current.tags, patch), updatedAt: now } : UNCHANGED,
  );
  return updated?.value;
}

function withEvent(connection: Connection, type: EventType, data: Record<string, unknown>, now: Date): Connection {
  return { ...connection, lastEvent: { id: newId('evt', now.getTime()), type, occurredAt: now.toISOString(), data } };
}

/** Records the connection's last event unless it already is (the common case after a retry). */
async function recordLastEvent(deps: ConnectionDeps, connection: Connection): Promise<void> {
  const last = connection.lastEvent;
  if (!last) return;
  if (await deps.events.get(keys.event(connection.customerId, last.id))) return;
  await deps.recordEvent({
    id: last.id,
    type: last.type,
    occurredAt: last.occurredAt,
    customerId: connection.customerId,
    connectionId: connection.id,
    data: last.data,
  });
}
