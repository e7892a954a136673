/**
 * Every metric the connector emits, with its unit, meaning and the dimensions it may carry. The
 * catalog is the contract with ops: alerts and the workbook query these names and dimensions, the
 * exporter only passes the dimensions listed here (so an id cannot turn into a new dimension by
 * accident), and the tests check what was emitted against it.
 */

/** Who a measurement is about. Any metric may carry them, when it is known. */
export const IDENTITY_DIMENSIONS = ['customerId', 'connectionId', 'mailboxId', 'tenantId'] as const;

interface MetricDefinition {
  readonly kind: 'counter' | 'histogram';
  readonly unit: string;
  readonly description: string;
  /** Dimensions besides the identity ones. */
  readonly dimensions: readonly string[];
}

const counter = (unit: string, description: string, dimensions: readonly string[]) => ({ kind: 'counter' as const, unit, description, dimensions });
const histogram = (unit: string, description: string, dimensions: readonly string[]) => ({ kind: 'histogram' as const, unit, description, dimensions });

export const METRIC_CATALOG = {
  'send.attempts': counter('{attempt}', 'Send attempts; outcome is sent, already_sent (found in Sent Items) or the failure class (throttled, transient, connection, permanent).', ['transport', 'outcome', 'code']),
  'send.duration': histogram('ms', 'How long a send attempt took, from asking for the token to Microsoft\'s answer.', ['transport', 'outcome']),
  'send.governor_waits': counter('{wait}', 'Sends held back by the per-mailbox governor: slept through in the worker (inline) or put back on the queue.', ['transport', 'inline']),
  'send.governor_wait': histogram('ms', 'How long the governor held a send back.', ['transport', 'inline']),
  'throttle.responses': counter('{response}', 'Throttling answers from Microsoft (HTTP 429, Exchange\'s throttle replies), by service and operation.', ['service', 'operation', 'transport', 'code']),
  'token.requests': counter('{request}', 'Access tokens asked for, by where they came from: memory, the MSAL cache, Microsoft, or a failure.', ['mode', 'resource', 'source', 'failureKind', 'code']),
  'token.lease_contention': counter('{wait}', 'Token refreshes that waited for another instance holding the connection\'s refresh lease.', ['mode']),
  'secretstore.reads': counter('{read}', 'Reads from the secret store (Key Vault), by purpose.', ['purpose']),
  'refresh.attempts': counter('{attempt}', 'Scheduled token refreshes by outcome (success, failure, busy) and failure kind and code.', ['mode', 'outcome', 'failureKind', 'code']),
  'connection.state_transitions': counter('{transition}', 'Connections moving from one state to another.', ['from', 'to', 'code']),
  'app.misconfigured': counter('{finding}', 'An app registration refused by Microsoft for every connection (bad secret, missing permission).', ['appId', 'code']),
  'app.credential_days_left': histogram('d', 'Days until the app registration\'s credential expires (-1: unknown), from the daily check; level is ok, warning, critical or expired.', ['appId', 'level']),
  'receive.polls': counter('{look}', 'Looks at a mailbox for new mail, by transport, outcome (ok, failed), failure code and why the look ran.', ['transport', 'outcome', 'code', 'reason']),
  'receive.poll_duration': histogram('ms', 'How long a look at a mailbox took.', ['transport', 'outcome']),
  'receive.messages': counter('{message}', 'Received messages emitted as message.received events.', ['transport']),
  'receive.messages_set_aside': counter('{message}', 'Received messages that could not be kept after 3 tries and were set aside.', ['transport']),
  'receive.notifications': counter('{notification}', 'Graph change and lifecycle notifications, accepted or rejected (unknown subscription, wrong clientState).', ['kind', 'outcome', 'event']),
  'webhook.deliveries': counter('{delivery}', 'Event deliveries to the vendor\'s webhook endpoints, by outcome (delivered, retry, failed) and HTTP status.', ['endpointId', 'outcome', 'status']),
  'webhook.delivery_duration': histogram('ms', 'How long the vendor\'s endpoint took to answer a delivery.', ['endpointId', 'outcome']),
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRIC_CATALOG;
export type CounterName = { [N in MetricName]: (typeof METRIC_CATALOG)[N]['kind'] extends 'counter' ? N : never }[MetricName];
export type HistogramName = { [N in MetricName]: (typeof METRIC_CATALOG)[N]['kind'] extends 'histogram' ? N : never }[MetricName];

export function metricDefinition(name: MetricName): MetricDefinition {
  return METRIC_CATALOG[name];
}

/** The dimensions `name` may carry: the identity ones and its own. */
export function allowedDimensions(name: MetricName): ReadonlySet<string> {
  return new Set<string>([...IDENTITY_DIMENSIONS, ...METRIC_CATALOG[name].dimensions]);
}
