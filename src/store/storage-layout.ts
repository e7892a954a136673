/**
 * Every table, queue and blob container the connector uses, in one place: `npm start` creates
 * them in Azurite, the deployment creates them in Azure, code refers to them by these names.
 */
export const TABLES = {
  customers: 'customers',
  connections: 'connections',
  mailboxes: 'mailboxes',
  events: 'events',
  apiKeys: 'apikeys',
  jwtIssuers: 'jwtissuers',
  webhookEndpoints: 'webhookendpoints',
  signInStates: 'signinstates',
  connectResults: 'connectresults',
  connectionHealth: 'connectionhealth',
  appHealth: 'apphealth',
  outbox: 'outbox',
  idempotencyKeys: 'idempotencykeys',
  sendGovernor: 'sendgovernor',
  receiveState: 'receivestate',
  inbox: 'inbox',
  graphSubscriptions: 'graphsubscriptions',
} as const;

export const QUEUES = {
  /** One message per event and webhook endpoint to deliver to. */
  deliverEvent: 'deliver-event',
  /** One message per customer whose recent events the delivery sweep looks at, or per page of customers still to be enqueued. */
  deliverySweep: 'delivery-sweep',
  /** One message per connection whose tokens are due for a refresh. */
  refreshConnection: 'refresh-connection',
  /** One message per page of due connections still to be enqueued (the timer's fan-out, continued). */
  refreshScan: 'refresh-scan',
  /** One message per outbound message to send (or to look at again: retries, scheduled sends). */
  sendMail: 'send-mail',
  /** One message per page of mailboxes due for a look still to be enqueued (the poll timer's fan-out, continued). */
  pollScan: 'poll-scan',
  /** One message per mailbox to look at for new mail. */
  pollMailbox: 'poll-mailbox',
  /** One message per batch of Graph change or lifecycle notifications, as Graph posted it. */
  graphNotification: 'graph-notification',
} as const;

export const CONTAINERS = {
  /** Payloads too large for a queue message (see QueuePublisher). */
  payloads: 'payloads',
  /** Outbound messages' content and attachments, until they are sent or failed. */
  outbox: 'outbox',
  /** Attachments uploaded on their own (POST …/attachments), for 24 hours. */
  uploads: 'uploads',
  /** Received messages (MIME), by day, for the retention period (RECEIVE_RETENTION). */
  inbox: 'inbox',
} as const;

export interface StorageLayout {
  tables: readonly string[];
  queues: readonly string[];
  containers: readonly string[];
}

export const STORAGE_LAYOUT: StorageLayout = {
  tables: Object.values(TABLES),
  queues: Object.values(QUEUES),
  containers: Object.values(CONTAINERS),
};
