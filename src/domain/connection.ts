import { z } from 'zod';
import { EVENT_TYPES } from './events.js';
import { ID_PATTERN } from './ids.js';
import { tagsSchema } from './tags.js';

/**
 * A connection links one customer to one Microsoft 365 tenant through the vendor's app, in one
 * mode. Its state says whether mail can flow and, when it cannot, who has to act.
 */

export const CONNECTION_MODES = ['delegated', 'application'] as const;
export type ConnectionMode = (typeof CONNECTION_MODES)[number];

/** How mail goes out and comes in for a connection's mailboxes; this decides the scopes asked for. */
export const transportsSchema = z
  .object({
    send: z.enum(['graph', 'smtp']).meta({ description: 'Graph sendMail, or SMTP submission with XOAUTH2.' }),
    receive: z.enum(['graph', 'imap', 'pop3', 'none']).meta({ description: 'Graph, IMAP or POP3 with XOAUTH2, or no receiving.' }),
  })
  .meta({ id: 'Transports' });
export type Transports = z.infer<typeof transportsSchema>;

export const SIGN_IN_METHODS = ['authorization-code', 'device-code', 'password'] as const;
export type SignInMethod = (typeof SIGN_IN_METHODS)[number];

/**
 * `degraded`: Microsoft has failed every token request for a long time (72 h by default) although
 * nothing says the credentials are bad; the connector keeps retrying and returns to `connected` by itself.
 */
export const CONNECTION_STATES = ['pending', 'connected', 'degraded', 'needs_reauth', 'needs_admin', 'app_misconfigured', 'disconnected'] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

/** Why a connection is in its state, for people: what happened and what to do next. */
export const stateReasonSchema = z.object({
  code: z.string().meta({ description: 'Machine-readable cause, e.g. an AADSTS code or "disconnected_by_vendor".' }),
  message: z.string(),
  nextStep: z.string().optional(),
});
export type StateReason = z.infer<typeof stateReasonSchema>;

export const connectionSchema = z.object({
  id: z.string().regex(ID_PATTERN.con),
  customerId: z.string(),
  mode: z.enum(CONNECTION_MODES).meta({
    description: '"delegated": a user signs in and the connector keeps their refresh token; "application": an admin grants app-only access to the tenant.',
  }),
  state: z.enum(CONNECTION_STATES),
  displayName: z.string().max(256).optional(),
  tags: tagsSchema,
  /** Which of the vendor's app registrations the connection uses. */
  appId: z.string(),
  transports: transportsSchema,
  tenantId: z.uuid().optional().meta({ description: 'The Microsoft 365 tenant, once connected.' }),
  account: z
    .object({ oid: z.uuid(), upn: z.string(), displayName: z.string().optional() })
    .optional()
    .meta({ description: 'Delegated connections: the user who signed in; their token serves the mailboxes they have access to.' }),
  signInMethod: z
    .enum(SIGN_IN_METHODS)
    .optional()
    .meta({
      description:
        'Delegated connections: how the user signed in. "authorization-code" (the consent link) unless ops connected it with the CLI ' +
        '("device-code", or "password" where ALLOW_ROPC permits it).',
    }),
  servicePrincipalId: z
    .uuid()
    .optional()
    .meta({ description: 'Application connections: the object id of the vendor app\'s service principal (Enterprise application) in the tenant.' }),
  granted: z.array(z.string()).optional().meta({ description: 'What Microsoft granted: delegated scopes, or app roles for application connections.' }),
  stateReason: stateReasonSchema.optional(),
  /**
   * The event of the last change, saved in the same write as the change: if recording the event
   * fails after the row was saved, a retry finds it here and records it under the same id.
   */
  lastEvent: z
    .object({
      id: z.string().regex(ID_PATTERN.evt),
      type: z.enum(EVENT_TYPES),
      occurredAt: z.iso.datetime(),
      tags: tagsSchema,
      data: z.record(z.string(), z.unknown()),
    })
    .optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  stateChangedAt: z.iso.datetime(),
});

export type Connection = z.infer<typeof connectionSchema>;

/** What callers of the API see of a connection: the bookkeeping of its events stays inside. */
export const connectionViewSchema = connectionSchema.omit({ lastEvent: true }).meta({ id: 'Connection' });
export type ConnectionView = z.infer<typeof connectionViewSchema>;

/**
 * A problem of the connection's app registration (its credential refused), which affects every
 * connection of the app at once and is kept with the app rather than written into each connection.
 */
export type AppProblem = StateReason;

/** What the vendor sees: the connection, shown `app_misconfigured` while its app's credential is refused. */
export function connectionView(connection: Connection, appProblem?: AppProblem): ConnectionView {
  const { lastEvent: _lastEvent, ...view } = connection;
  if (appProblem && (view.state === 'connected' || view.state === 'degraded')) return { ...view, state: 'app_misconfigured', stateReason: appProblem };
  return view;
}

/** Which states a connection may move to from each state. */
const TRANSITIONS: Record<ConnectionState, readonly ConnectionState[]> = {
  pending: ['connected', 'needs_admin', 'app_misconfigured', 'disconnected'],
  connected: ['degraded', 'needs_reauth', 'needs_admin', 'app_misconfigured', 'disconnected'],
  degraded: ['connected', 'needs_reauth', 'needs_admin', 'app_misconfigured', 'disconnected'],
  needs_reauth: ['connected', 'needs_admin', 'app_misconfigured', 'disconnected'],
  needs_admin: ['connected', 'needs_reauth', 'app_misconfigured', 'disconnected'],
  app_misconfigured: ['connected', 'needs_reauth', 'needs_admin', 'disconnected'],
  disconnected: [],
};

export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return TRANSITIONS[from].includes(to);
}

export interface StateChange {
  connection: Connection;
  from: ConnectionState;
  to: ConnectionState;
}

/**
 * The connection in its new state, or undefined when it is already there. Throws on a move the
 * state machine does not allow (a disconnected connection stays disconnected).
 */
export function changeState(connection: Connection, to: ConnectionState, reason: StateReason | undefined, now: Date): StateChange | undefined {
  if (connection.state === to) return undefined;
  if (!canTransition(connection.state, to)) {
    throw new InvalidTransitionError(connection.state, to);
  }
  const at = now.toISOString();
  const next: Connection = { ...connection, state: to, updatedAt: at, stateChangedAt: at };
  if (reason) next.stateReason = reason;
  else delete next.stateReason;
  return { connection: next, from: connection.state, to };
}

export class InvalidTransitionError extends Error {
  constructor(
    readonly from: ConnectionState,
    readonly to: ConnectionState,
  ) {
    super(`A connection in state "${from}" cannot move to "${to}".`);
    this.name = 'InvalidTransitionError';
  }
}
