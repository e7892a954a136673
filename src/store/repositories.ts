import { apiKeyRecordSchema, jwtIssuerSchema, type ApiKeyRecord, type JwtIssuer } from '../domain/access.js';
import { connectionSchema, type Connection } from '../domain/connection.js';
import { customerSchema, type Customer } from '../domain/customer.js';
import { storedEventSchema, type StoredEvent } from '../domain/events.js';
import { mailboxSchema, type Mailbox } from '../domain/mailbox.js';
import { webhookEndpointSchema, type WebhookEndpoint } from '../domain/webhook-endpoint.js';
import { signInStateSchema, type SignInState } from '../domain/sign-in-state.js';
import { connectionHealthSchema, type ConnectionHealth } from '../domain/connection-health.js';
import { appHealthSchema, type AppHealth } from '../domain/app-health.js';
import { connectResultSchema, type ConnectResult } from '../connect/connect-results.js';
import { outboundMessageSchema, type OutboundMessage } from '../domain/outbound-message.js';
import { governorStateSchema, type GovernorState } from '../domain/send-governor.js';
import { receiveStateSchema, type ReceiveState } from '../domain/receive-state.js';
import { inboundMessageSchema, type InboundMessage } from '../domain/inbound-message.js';
import { z } from 'zod';
import type { StorageClients } from './storage-clients.js';
import { TABLES } from './storage-layout.js';
import { TableRepository, type EntityKey } from './table-repository.js';
import { zodCodec } from './zod-codec.js';

/**
 * The connector's tables and how their rows are keyed. Everything of a customer is partitioned
 * under the customer id, so one customer's rows are read without touching another's; vendor-wide
 * settings (keys, issuers, endpoints) live in one partition each.
 */
export interface Repositories {
  customers: TableRepository<Customer>;
  connections: TableRepository<Connection>;
  mailboxes: TableRepository<Mailbox>;
  events: TableRepository<StoredEvent>;
  apiKeys: TableRepository<ApiKeyRecord>;
  jwtIssuers: TableRepository<JwtIssuer>;
  webhookEndpoints: TableRepository<WebhookEndpoint>;
  signInStates: TableRepository<SignInState>;
  connectResults: TableRepository<ConnectResult>;
  connectionHealth: TableRepository<ConnectionHealth>;
  appHealth: TableRepository<AppHealth>;
  outbox: TableRepository<OutboundMessage>;
  idempotencyKeys: TableRepository<IdempotencyRecord>;
  sendGovernor: TableRepository<GovernorState>;
  receiveState: TableRepository<ReceiveState>;
  inbox: TableRepository<InboundMessage>;
  graphSubscriptions: TableRepository<SubscriptionIndex>;
}

/** Which mailbox a Graph subscription is for, found by the subscription id a notification names. */
export const subscriptionIndexSchema = z.object({
  customerId: z.string(),
  connectionId: z.string(),
  mailboxId: z.string(),
  folder: z.string(),
  clientStateHash: z.string(),
});
export type SubscriptionIndex = z.infer<typeof subscriptionIndexSchema>;

/** What an Idempotency-Key stands for: the message it created and the request that created it. */
export const idempotencyRecordSchema = z.object({ messageId: z.string(), requestHash: z.string(), createdAt: z.iso.datetime() });
export type IdempotencyRecord = z.infer<typeof idempotencyRecordSchema>;

export function createRepositories(storage: StorageClients): Repositories {
  const repo = <T extends Record<string, unknown>>(table: string, schema: z.ZodType<T>, json: (keyof T & string)[]) =>
    new TableRepository(storage.table(table), zodCodec(schema, json));
  return {
    customers: repo(TABLES.customers, customerSchema, ['tags']),
    connections: repo(TABLES.connections, connectionSchema, ['tags', 'transports', 'account', 'granted', 'stateReason', 'lastEvent']),
    mailboxes: repo(TABLES.mailboxes, mailboxSchema, ['receive']),
    events: repo(TABLES.events, storedEventSchema, ['tags', 'data', 'deliveries']),
    apiKeys: repo(TABLES.apiKeys, apiKeyRecordSchema, []),
    jwtIssuers: repo(TABLES.jwtIssuers, jwtIssuerSchema, []),
    webhookEndpoints: repo(TABLES.webhookEndpoints, webhookEndpointSchema, ['eventTypes']),
    signInStates: repo(TABLES.signInStates, signInStateSchema, []),
    connectResults: repo(TABLES.connectResults, connectResultSchema, ['outcome']),
    connectionHealth: repo(TABLES.connectionHealth, connectionHealthSchema, ['lease', 'lastFailure']),
    appHealth: repo(TABLES.appHealth, appHealthSchema, ['misconfigured', 'credential', 'lastEvent']),
    outbox: repo(TABLES.outbox, outboundMessageSchema, ['content', 'attempts', 'lastError', 'lastEvent']),
    idempotencyKeys: repo(TABLES.idempotencyKeys, idempotencyRecordSchema, []),
    sendGovernor: repo(TABLES.sendGovernor, governorStateSchema, ['sends', 'slots']),
    receiveState: repo(TABLES.receiveState, receiveStateSchema, ['lease', 'imap', 'pop3', 'graph', 'subscriptions', 'lastError', 'stuck']),
    inbox: repo(TABLES.inbox, inboundMessageSchema, ['attachments']),
    graphSubscriptions: repo(TABLES.graphSubscriptions, subscriptionIndexSchema, []),
  };
}

export const keys = {
  customer: (customerId: string): EntityKey => ({ partitionKey: 'customer', rowKey: customerId }),
  customersPartition: 'customer',
  connection: (customerId: string, connectionId: string): EntityKey => ({ partitionKey: customerId, rowKey: connectionId }),
  mailbox: (customerId: string, connectionId: string, mailboxId: string): EntityKey => ({
    partitionKey: customerId,
    rowKey: `${connectionId}.${mailboxId}`,
  }),
  /** Row-key prefix of the mailboxes of one connection. */
  mailboxesOf: (connectionId: string): string => `${connectionId}.`,
  event: (customerId: string, eventId: string): EntityKey => ({ partitionKey: customerId, rowKey: eventId }),
  apiKey: (prefix: string): EntityKey => ({ partitionKey: 'apikey', rowKey: prefix }),
  apiKeysPartition: 'apikey',
  /** Issuers are often URLs, which row keys cannot hold as they are. */
  jwtIssuer: (issuer: string): EntityKey => ({ partitionKey: 'issuer', rowKey: Buffer.from(issuer, 'utf8').toString('base64url') }),
  jwtIssuersPartition: 'issuer',
  webhookEndpoint: (id: string): EntityKey => ({ partitionKey: 'endpoint', rowKey: id }),
  webhookEndpointsPartition: 'endpoint',
  connectionHealth: (customerId: string, connectionId: string): EntityKey => ({ partitionKey: customerId, rowKey: connectionId }),
  appHealth: (clientId: string): EntityKey => ({ partitionKey: 'app', rowKey: clientId.toLowerCase() }),
  appHealthPartition: 'app',
  outboundMessage: (customerId: string, messageId: string): EntityKey => ({ partitionKey: customerId, rowKey: messageId }),
  /** The key itself is the vendor's and may hold anything; its hash is what is kept. */
  idempotencyKey: (customerId: string, connectionId: string, keyHash: string): EntityKey => ({ partitionKey: customerId, rowKey: `${connectionId}.${keyHash}` }),
  /** One row per mailbox: Microsoft's limits are the mailbox's, whichever connection sends. */
  receiveState: (customerId: string, connectionId: string, mailboxId: string): EntityKey => ({
    partitionKey: customerId,
    rowKey: `${connectionId}.${mailboxId}`,
  }),
  inboundMessage: (customerId: string, messageId: string): EntityKey => ({ partitionKey: customerId, rowKey: messageId }),
  /** Subscription ids are GUIDs; one partition keeps the lookup a point read. */
  graphSubscription: (subscriptionId: string): EntityKey => ({ partitionKey: 'subscription', rowKey: subscriptionId }),
  sendGovernor: (address: string): EntityKey => ({ partitionKey: Buffer.from(address.toLowerCase(), 'utf8').toString('base64url'), rowKey: 'limits' }),
};
