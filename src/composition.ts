import type { TokenCredential } from '@azure/identity';
import { createAuthenticator, type Authenticate } from './api/auth/authenticate.js';
import { createVendorTokenVerifier } from './api/auth/verify-vendor-token.js';
import type { ApiServices } from './api/services.js';
import { loadConfig, type AppRegistrationConfig, type AzureCredentialConfig, type Config, type IdentityConfig } from './config.js';
import type { ConnectionDeps } from './connections/connections.js';
import type { AppProblem } from './domain/connection.js';
import type { ApiKeyRecord, JwtIssuer } from './domain/access.js';
import type { WebhookEndpoint } from './domain/webhook-endpoint.js';
import { deliverEvent, type DeliveryResult } from './events/deliver-event.js';
import type { DeliveryMessage } from './events/delivery-message.js';
import { recordEvent, type NewEvent } from './events/record-event.js';
import { enqueueDeliverySweeps, requeueStuckDeliveries, type DeliverySweepResult } from './events/delivery-sweep.js';
import { ReplayNotFoundError, replayEvent, replayFailedEvents, type ReplayDeps } from './events/replay-events.js';
import { WebhookSecrets } from './events/webhook-secrets.js';
import { ProbeFailure, cachedHealthCheck } from './health/check-health.js';
import { createAzureCredential } from './identity/azure-credential.js';
import { createKeyVaultSecretStore } from './secrets/key-vault-secret-store.js';
import { LocalSecretStore } from './secrets/local-secret-store.js';
import type { SecretStore } from './secrets/secret-store.js';
import { PayloadStore } from './store/payload-store.js';
import { QueuePublisher } from './store/queue-publisher.js';
import { createRepositories, keys, type Repositories } from './store/repositories.js';
import { createStorageClients, type StorageClients } from './store/storage-clients.js';
import type { InvocationLogTarget, LogFields, Logger } from './telemetry/logger.js';
import { TtlCache } from './ttl-cache.js';
import { loadAppCredential, type AppCredential } from './identity/app-credentials.js';
import { MsalClients } from './identity/msal-clients.js';
import { ConnectorKeys } from './identity/connector-keys.js';
import { ConsentLinks } from './identity/consent-links.js';
import { SignInStates } from './identity/sign-in-states.js';
import { BrowserEndpoints } from './identity/browser-endpoints.js';
import { deleteTokenCache, saveTokenCache } from './identity/token-cache-store.js';
import { AccessTokens } from './identity/access-tokens.js';
import { AppHealthService } from './connection-health/app-health.js';
import { ConnectionHealthStore } from './connection-health/health-store.js';
import { TokenLifecycle } from './connection-health/token-lifecycle.js';
import { refreshConnection, type RefreshMessage, type RefreshOutcome } from './connection-health/refresh-connection.js';
import { enqueueDueRefreshes, type RefreshScan } from './connection-health/schedule-refreshes.js';
import { checkCredentialExpiry, type CredentialReport } from './connection-health/credential-expiry.js';
import { readAppCredentials } from './identity/app-registration-reader.js';
import { checkConnection } from './connectivity/check-connection.js';
import { listMailboxes } from './connections/mailboxes.js';
import type { Probes } from './connectivity/check-connection.js';
import { DEFAULT_REFRESH_POLICY, type RefreshPolicy } from './domain/connection-health.js';
import type { Metrics } from './telemetry/metrics.js';
import { processTelemetry } from './telemetry/telemetry.js';
import { noTracing, tracedWork, type Tracing } from './telemetry/tracing.js';
import { randomUUID } from 'node:crypto';
import { ConnectFlow } from './connect/connect-flow.js';
import { ConnectResults } from './connect/connect-results.js';
import { connectionExchangeSetup } from './connect/connection-exchange-setup.js';
import { OutboxContent, UPLOAD_TTL_MS } from './sending/outbox-content.js';
import { submitMessage, type SendJob } from './sending/submit-message.js';
import { sendMessage, type SendOutcome } from './sending/send-message.js';
import { SendGovernor } from './sending/send-governor.js';
import { CONTAINERS, QUEUES } from './store/storage-layout.js';
import { newId } from './domain/ids.js';
import { graphSender } from './mail/graph-sender.js';
import { smtpSender, type PooledMailSender } from './mail/smtp-sender.js';
import type { MailSender } from './mail/mail-transport.js';
import { DEFAULT_GOVERNOR_LIMITS } from './domain/send-governor.js';
import type { Connection } from './domain/connection.js';
import { DEFAULT_RECEIVE_POLICY } from './domain/receive-state.js';
import { graphReceiver } from './mail/graph-receiver.js';
import type { FoundMessage, ImapReceiver, Pop3Receiver } from './mail/mail-receiver.js';
import { InboxContent } from './receiving/inbox-content.js';
import { ingestMessage, type IngestMailbox } from './receiving/ingest-message.js';
import { handleNotifications, type NotificationBatch, type NotificationOutcome } from './receiving/graph-notifications.js';
import { pollMailbox, type PollJob, type PollOutcome, type Receivers } from './receiving/poll-mailbox.js';
import { ReceiveStates } from './receiving/receive-states.js';
import { enqueueDuePolls, type PollScan } from './receiving/schedule-polls.js';

/**
 * Builds the connector's dependencies from configuration, once per process. This is the only
 * place that picks implementations; everything else receives what it needs.
 */
export interface Services {
  config: Config;
  /** For code that runs outside an invocation (start-up, shutdown, the admin CLI). */
  logger: Logger;
  /** A logger bound to one invocation, so the host correlates its lines. */
  logFor(context: InvocationLogTarget, fields?: LogFields): Logger;
  /** Spans around units of work, under the invocation's trace. */
  tracing: Tracing;
  storage: StorageClients;
  payloads: PayloadStore;
  queues: QueuePublisher;
  secrets: SecretStore;
  repositories: Repositories;
  webhookSecrets: WebhookSecrets;
  /** Who is calling the vendor API. */
  authenticate: Authenticate;
  api: ApiServices;
  recordEvent(event: NewEvent): Promise<unknown>;
  deliverEvent(message: DeliveryMessage): Promise<DeliveryResult>;
  /** The delivery-sweep timer's and queue's fan-out: one page of customers whose recent events to sweep. */
  enqueueDeliverySweeps(continuationToken?: string): Promise<{ enqueued: number; more: boolean }>;
  /** The delivery-sweep queue's work: one customer's stuck webhook deliveries queued again. */
  requeueStuckDeliveries(customerId: string): Promise<DeliverySweepResult>;
  /** The connect flow and what it needs; undefined until an app registration is configured (ENTRA_CLIENT_ID). */
  identity: IdentityServices | undefined;
  /** The send-mail queue's work; undefined until an app registration is configured. */
  sendMessage: ((job: SendJob) => Promise<SendOutcome>) | undefined;
  /** Received messages' MIME in Blob storage. */
  inboxContent: InboxContent;
  /** Polling, Graph notifications; undefined until an app registration is configured. */
  receiving: ReceivingServices | undefined;
}

export interface ReceivingServices {
  pollMailbox(job: PollJob): Promise<PollOutcome>;
  /** The poll timer's and poll-scan queue's work: one page of due mailboxes. */
  enqueueDuePolls(scan: PollScan): Promise<{ enqueued: number; more: boolean }>;
  handleNotifications(batch: NotificationBatch): Promise<NotificationOutcome>;
}

export interface IdentityServices {
  connect: ConnectFlow;
  results: ConnectResults;
  msal: MsalClients;
  links: ConsentLinks;
  browser: BrowserEndpoints;
  /** Every transport's access tokens (getAccessToken). */
  accessTokens: AccessTokens;
  health: ConnectionHealthStore;
  apps: AppHealthService;
  lifecycle: TokenLifecycle;
  policy: RefreshPolicy;
  /** The refresh-connection queue's work. */
  refreshConnection(message: RefreshMessage): Promise<RefreshOutcome>;
  /** The daily look at every app registration's credential expiry. */
  checkCredentialExpiry(): Promise<CredentialReport[]>;
  /** The refresh timer's and refresh-scan queue's work: one page of due connections. */
  enqueueDueRefreshes(scan: RefreshScan): Promise<{ enqueued: number; more: boolean }>;
  vendorName: string;
}

/** How long an app's credential (a secret read from Key Vault) is reused before it is read again. */
const APP_CREDENTIAL_CACHE_MS = 5 * 60_000;

/** How long a sign-in waits for a refresh in flight before it writes its tokens anyway. */
const SIGN_IN_LEASE_WAIT_MS = 10_000;

/** Six days: under the queue message's 7-day life, so a scheduled message never expires unseen. */
const MAX_QUEUE_DELAY_SECONDS = 6 * 86_400;

/** How long vendor-wide settings are trusted before they are read again (revocations take this long). */
const SETTINGS_CACHE_MS = 30_000;

let services: Promise<Services> | undefined;

/** The process's services; the first call reads and validates configuration. */
export function getServices(env: NodeJS.ProcessEnv = process.env): Promise<Services> {
  services ??= buildServices(env).catch((error: unknown) => {
    services = undefined;
    throw error;
  });
  return services;
}

async function buildServices(env: NodeJS.ProcessEnv): Promise<Services> {
  const config = loadConfig(env);
  const credentials = new Map<string, TokenCredential>();
  const credentialFor = (settings: AzureCredentialConfig): TokenCredential => {
    const key = JSON.stringify(settings);
    let credential = credentials.get(key);
    if (!credential) {
      credential = createAzureCredential(settings);
      credentials.set(key, credential);
    }
    return credential;
  };

  const storage = createStorageClients(config.storage, () => {
    if (config.storage.kind !== 'identity') throw new Error('connection-string storage needs no credential');
    return credentialFor(config.storage.credential);
  });
  const payloads = new PayloadStore(storage.blobService, CONTAINERS.payloads);
  const queues = new QueuePublisher(storage.queueService, payloads);
  const secrets: SecretStore =
    config.secretStore.kind === 'keyvault'
      ? createKeyVaultSecretStore(config.secretStore, credentialFor(config.secretStore.credential))
      : await LocalSecretStore.open(config.secretStore.directory, env);
  const repositories = createRepositories(storage);
  const now = () => new Date();

  const telemetry = processTelemetry(config.logLevel);
  const { logger, metrics, tracing } = telemetry;
  const endpointsCache = new TtlCache<'all', WebhookEndpoint[]>(SETTINGS_CACHE_MS);
  const apiKeyCache = new TtlCache<string, ApiKeyRecord | undefined>(SETTINGS_CACHE_MS);
  const issuerCache = new TtlCache<string, JwtIssuer | undefined>(SETTINGS_CACHE_MS);
  const appProblemCache = new TtlCache<string, AppProblem | undefined>(SETTINGS_CACHE_MS);
  const enabledEndpoints = () =>
    endpointsCache.get('all', async () =>
      (await repositories.webhookEndpoints.all(keys.webhookEndpointsPartition)).filter((endpoint) => endpoint.enabled),
    );

  const record = (event: NewEvent) => recordEvent({ events: repositories.events, endpoints: enabledEndpoints, queues, now }, event);
  const connections: ConnectionDeps = { connections: repositories.connections, recordEvent: record, now, metrics };
  const replayDeps: ReplayDeps = { events: repositories.events, queues, now };
  const webhookSecrets = new WebhookSecrets({ store: secrets, now });
  const outboxContent = new OutboxContent(
    new PayloadStore(storage.blobService, CONTAINERS.outbox),
    new PayloadStore(storage.blobService, CONTAINERS.uploads),
  );
  const inboxContent = new InboxContent(new PayloadStore(storage.blobService, CONTAINERS.inbox));
  const enqueueSend = async (job: SendJob, delaySeconds: number) => {
    // Queue messages live 7 days and wait at most that long; a later send comes back and waits again.
    await queues.publish(QUEUES.sendMail, job, { delaySeconds: Math.min(delaySeconds, MAX_QUEUE_DELAY_SECONDS) });
  };
  const identity = config.identity && buildIdentity(config.identity, { config, credentialFor, secrets, repositories, connections, queues, logger, metrics, tracing, now, recordEvent: record });
  const verifier = createVendorTokenVerifier({
    findIssuer: (issuer) => issuerCache.get(issuer, async () => (await repositories.jwtIssuers.get(keys.jwtIssuer(issuer)))?.value),
    allowPrivateNetwork: config.allowPrivateNetworkUrls,
    now,
    logger,
  });

  return {
    config,
    logger,
    logFor: (context, fields) => telemetry.loggerFor(context, fields),
    tracing,
    storage,
    payloads,
    queues,
    secrets,
    repositories,
    webhookSecrets,
    authenticate: createAuthenticator({
      findApiKey: (prefix) => apiKeyCache.get(prefix, async () => (await repositories.apiKeys.get(keys.apiKey(prefix)))?.value),
      verifyToken: (token) => verifier.verify(token),
    }),
    api: {
      repositories,
      connections,
      now,
      checkHealth: cachedHealthCheck({
        tableStorage: () => storage.tableService.listTables().byPage({ maxPageSize: 1 }).next(),
        queueStorage: () => storage.queueService.listQueues().byPage({ maxPageSize: 1 }).next(),
        blobStorage: async () => {
          if (!(await payloads.exists())) throw new ProbeFailure(`container "${CONTAINERS.payloads}" is missing`);
        },
        secretStore: () => secrets.ping(),
      }),
      consentLinks: identity && {
        async issue(connection, purpose = 'connect') {
          const link = await identity.links.issue(connection.customerId, connection.id, purpose);
          return { url: link.url, expiresAt: link.expiresAt.toISOString() };
        },
      },
      exchangeSetup: (connection, options) =>
        connectionExchangeSetup(
          {
            repositories,
            clientIdOf: (appId) => config.identity?.apps.find((app) => app.id === appId)?.clientId,
            vendorName: config.identity?.vendorName ?? 'Vendor',
          },
          connection,
          options,
        ),
      async forgetTokens(connectionId) {
        await deleteTokenCache(secrets, connectionId);
      },
      checkConnection:
        identity &&
        ((connection, options) =>
          checkConnection(
            {
              tokens: identity.accessTokens,
              mailboxes: (c) => listMailboxes({ mailboxes: repositories.mailboxes }, c),
              cloud: (appId) => identity.msal.app(appId).cloud,
              // Loaded on the first check: the mail clients are not needed to start the app.
              probes: lazyProbes,
              vendorName: identity.vendorName,
              now,
            },
            connection,
            options,
          )),
      sending: {
        submit: (connection, request, idempotencyKey) =>
          submitMessage(
            {
              outbox: repositories.outbox,
              idempotencyKeys: repositories.idempotencyKeys,
              mailboxes: (c) => listMailboxes({ mailboxes: repositories.mailboxes }, c),
              content: outboxContent,
              enqueue: enqueueSend,
              maxMessageBytes: config.sending.maxMessageBytes,
              retryWindowMs: config.sending.retryWindowMs,
              now,
            },
            connection,
            request,
            idempotencyKey,
          ),
        async upload(connection, bytes, contentType) {
          const created = now();
          const id = newId('att', created.getTime());
          await outboxContent.putUpload(connection.customerId, connection.id, { id, bytes, contentType });
          return { id, size: bytes.length, contentType, expiresAt: new Date(created.getTime() + UPLOAD_TTL_MS).toISOString() };
        },
      },
      receivedContent: (message) => inboxContent.get(message.blobName),
      appProblem: (appId) =>
        appProblemCache.get(appId, async () => {
          const broken = identity && (await identity.apps.get(appId))?.misconfigured;
          return broken && { code: broken.code, message: broken.explanation, nextStep: broken.nextStep };
        }),
      defaultAppId: config.identity?.apps[0]?.id ?? 'default',
      appIds: config.identity?.apps.map((app) => app.id) ?? [],
      async replayEvent(customerId, eventId) {
        try {
          return (await replayEvent(replayDeps, customerId, eventId)).length;
        } catch (error) {
          if (error instanceof ReplayNotFoundError) return undefined;
          throw error;
        }
      },
      async replayFailedEvents(customerId, since) {
        const result = await replayFailedEvents(replayDeps, customerId, since);
        return { events: result.replayedEvents, deliveries: result.queued.length };
      },
    },
    identity,
    inboxContent,
    receiving: identity && buildReceiving({ config, repositories, identity, content: inboxContent, queues, recordEvent: record, logger, metrics, tracing, now }),
    sendMessage: identity && buildSending({ config, repositories, identity, content: outboxContent, enqueue: enqueueSend, recordEvent: record, logger, metrics, tracing, now }),
    recordEvent: record,
    enqueueDeliverySweeps: (continuationToken) => enqueueDeliverySweeps({ customers: repositories.customers, queues }, continuationToken),
    requeueStuckDeliveries: (customerId) => requeueStuckDeliveries(replayDeps, customerId),
    deliverEvent: (message) =>
      tracedWork(tracing, 'deliver webhook', { customerId: message.customerId, eventId: message.eventId, endpointId: message.endpointId, attempt: message.attempt }, () =>
        deliverEvent(
          {
            events: repositories.events,
            endpoints: repositories.webhookEndpoints,
            secrets: webhookSecrets,
            queues,
            retryScheduleMs: config.webhookRetryScheduleMs,
            allowPrivateNetwork: config.allowPrivateNetworkUrls,
            metrics,
            now,
          },
          message,
        ),
      ),
  };
}

interface IdentityBuildDeps {
  config: Config;
  credentialFor(settings: AzureCredentialConfig): TokenCredential;
  secrets: SecretStore;
  repositories: Repositories;
  connections: ConnectionDeps;
  queues: QueuePublisher;
  logger: Logger;
  metrics: Metrics;
  tracing: Tracing;
  now(): Date;
  recordEvent(event: NewEvent): Promise<unknown>;
}

function buildIdentity(identity: IdentityConfig, deps: IdentityBuildDeps): IdentityServices {
  const { secrets, repositories, logger } = deps;
  const now = () => deps.now();
  const credentialCache = new TtlCache<string, AppCredential>(APP_CREDENTIAL_CACHE_MS);
  const msalCredential = (app: AppRegistrationConfig) =>
    credentialCache.get(app.id, () =>
      loadAppCredential(app, secrets, (clientId) => deps.credentialFor({ kind: 'managedIdentity', ...(clientId !== undefined && { clientId }) })),
    );
  const msal = new MsalClients({ apps: identity.apps, credential: msalCredential, logger });
  const keys = new ConnectorKeys(secrets);
  const links = new ConsentLinks(keys, identity.publicBaseUrl, identity.consentLinkTtlMs, now);
  const results = new ConnectResults(repositories.connectResults, now);
  const browser = new BrowserEndpoints();
  const policy: RefreshPolicy = { ...DEFAULT_REFRESH_POLICY, degradedAfterMs: identity.degradedAfterMs };
  const health = new ConnectionHealthStore({ health: repositories.connectionHealth, policy, now, owner: randomUUID() });
  const apps = new AppHealthService({
    appHealth: repositories.appHealth,
    recordEvent: (event) => deps.recordEvent(event),
    clientIdOf: (appId) => msal.app(appId).clientId,
    logger,
    metrics: deps.metrics,
    now,
  });
  const lifecycle = new TokenLifecycle({
    connections: deps.connections,
    health,
    apps,
    async issueLink(connection, purpose) {
      const link = await links.issue(connection.customerId, connection.id, purpose);
      return { url: link.url, expiresAt: link.expiresAt.toISOString() };
    },
    logger,
    metrics: deps.metrics,
  });
  const accessTokens = new AccessTokens({
    msal,
    secrets,
    leases: health,
    appGate: (appId) => apps.gate(appId),
    onFailure: (connection, failure) => lifecycle.failed(connection, failure),
    onSuccess: (connection, outcome) => lifecycle.succeeded(connection, outcome),
    metrics: deps.metrics,
    logger,
    now,
  });
  const connect = new ConnectFlow({
    repositories,
    connections: deps.connections,
    mailboxes: { mailboxes: repositories.mailboxes, receiveState: repositories.receiveState, now },
    links,
    states: new SignInStates(repositories.signInStates, keys, now),
    msal,
    browser,
    async signedIn(connection, serializedCache) {
      accessTokens.forget(connection.id);
      if (serializedCache === undefined) {
        await health.signedIn(connection);
      } else {
        const lease = await health.acquireWaiting(connection, SIGN_IN_LEASE_WAIT_MS);
        await saveTokenCache(secrets, connection.id, serializedCache);
        // A sign-in is kept even when a refresh holds on past the wait; the version still moves on.
        if (lease) await lease.release({ kind: 'signed_in' });
        else await health.signedIn(connection);
      }
      await apps.markWorking(connection.appId);
    },
    identity,
    logger,
    now,
  });
  return {
    connect,
    results,
    msal,
    links,
    browser,
    accessTokens,
    health,
    apps,
    lifecycle,
    policy,
    refreshConnection: (message) =>
      tracedWork(deps.tracing, 'refresh connection', { customerId: message.customerId, connectionId: message.connectionId }, () =>
        refreshConnection({ connections: repositories.connections, health, tokens: accessTokens, lifecycle, apps, queues: deps.queues, policy, logger, metrics: deps.metrics, now }, message),
      ),
    enqueueDueRefreshes: (scan) => enqueueDueRefreshes({ health: repositories.connectionHealth, queues: deps.queues }, scan),
    checkCredentialExpiry: () =>
      checkCredentialExpiry({
        apps: identity.apps,
        appHealth: apps,
        credential: (app) => msalCredential(app),
        readFromGraph: (app) => readAppCredentials(msal, app),
        logger,
        metrics: deps.metrics,
        now,
      }),
    vendorName: identity.vendorName,
  };
}

interface SendingBuildDeps {
  config: Config;
  repositories: Repositories;
  identity: IdentityServices;
  content: OutboxContent;
  enqueue: (job: SendJob, delaySeconds: number) => Promise<void>;
  recordEvent: (event: NewEvent) => Promise<unknown>;
  logger: Logger;
  metrics: Metrics;
  tracing: Tracing;
  now: () => Date;
}

function buildSending(deps: SendingBuildDeps): (job: SendJob) => Promise<SendOutcome> {
  const { identity, repositories } = deps;
  const governor = new SendGovernor({
    state: repositories.sendGovernor,
    limits: { ...DEFAULT_GOVERNOR_LIMITS, perMinute: deps.config.sending.perMinute, concurrent: deps.config.sending.concurrent },
    now: deps.now,
  });
  // One sender per app registration: each has its cloud's hosts, and SMTP pools its connections.
  const senders = new Map<string, { graph: MailSender; smtp: PooledMailSender }>();
  const sendersOf = (appId: string) => {
    let pair = senders.get(appId);
    if (!pair) {
      const cloud = identity.msal.app(appId).cloud;
      pair = { graph: graphSender({ graphUrl: cloud.graphUrl }), smtp: smtpSender({ smtp: cloud.smtp, imap: cloud.imap }) };
      senders.set(appId, pair);
    }
    return pair;
  };
  return (job) =>
    tracedWork(deps.tracing, 'send message', { customerId: job.customerId, messageId: job.messageId }, () => sendMessage(
      {
        outbox: repositories.outbox,
        connections: repositories.connections,
        mailboxes: repositories.mailboxes,
        content: deps.content,
        tokens: identity.accessTokens,
        senders: (connection) => sendersOf(connection.appId),
        governor,
        enqueue: deps.enqueue,
        recordEvent: deps.recordEvent,
        logger: deps.logger,
        metrics: deps.metrics,
        now: deps.now,
      },
      job,
    ));
}

export interface ReceivingBuildDeps {
  config: Config;
  repositories: Repositories;
  identity: IdentityServices;
  content: InboxContent;
  queues: QueuePublisher;
  recordEvent: (event: NewEvent) => Promise<unknown>;
  logger: Logger;
  metrics: Metrics;
  tracing?: Tracing;
  now: () => Date;
  /** Tests replace where Graph is told to post notifications (undefined: notifications off). */
  notificationUrls?: { notifications: string; lifecycle: string } | undefined;
  /** Tests wrap the transports to break them at a chosen point. */
  wrapReceivers?: (real: Receivers) => Receivers;
}

/** Messages handed over per folder per look: enough to keep up with a busy mailbox, few enough for one invocation. */
const RECEIVE_BATCH_SIZE = 50;
/** How far back a cursor that had to start over (UIDVALIDITY, an expired delta token) looks again. */
const RESYNC_DAYS = 7;
/** How long one IMAP or POP3 session may take, from connecting to logging out. */
const RECEIVE_TIMEOUT_MS = 120_000;
/** Longer than a look of RECEIVE_BATCH_SIZE messages takes (a session is cut off at RECEIVE_TIMEOUT_MS). */
const POLL_LEASE_MS = 5 * 60_000;

export function buildReceiving(deps: ReceivingBuildDeps): ReceivingServices {
  const { identity, repositories, config } = deps;
  const publicBaseUrl = config.identity?.publicBaseUrl ?? '';
  const states = new ReceiveStates({ states: repositories.receiveState, now: deps.now, owner: randomUUID(), leaseMs: POLL_LEASE_MS });
  // One set of receivers per app registration: each has its cloud's hosts.
  const receivers = new Map<string, Receivers>();
  const receiversOf = (connection: Connection): Receivers => {
    let set = receivers.get(connection.appId);
    if (!set) {
      const cloud = identity.msal.app(connection.appId).cloud;
      const real: Receivers = {
        imap: lazyReceiver<ImapReceiver>(async () => (await import('./mail/imap-receiver.js')).imapReceiver({ ...cloud.imap, timeoutMs: RECEIVE_TIMEOUT_MS })),
        pop3: lazyReceiver<Pop3Receiver>(async () => (await import('./mail/pop3-receiver.js')).pop3Receiver({ ...cloud.pop3, timeoutMs: RECEIVE_TIMEOUT_MS })),
        graph: graphReceiver({ graphUrl: cloud.graphUrl }),
      };
      set = deps.wrapReceivers ? deps.wrapReceivers(real) : real;
      receivers.set(connection.appId, set);
    }
    return set;
  };
  const ingest = (mailbox: IngestMailbox, found: FoundMessage) =>
    ingestMessage(
      {
        inbox: repositories.inbox,
        content: deps.content,
        recordEvent: deps.recordEvent,
        rawUrl: (customerId, connectionId, messageId) =>
          `${publicBaseUrl}/api/v1/customers/${encodeURIComponent(customerId)}/connections/${connectionId}/messages/${messageId}/raw`,
        retentionMs: config.receiving.retentionMs,
        now: deps.now,
      },
      mailbox,
      found,
    );
  const enqueuePoll = async (job: PollJob, delaySeconds: number) => {
    await deps.queues.publish(QUEUES.pollMailbox, job, { delaySeconds });
  };
  const policy = DEFAULT_RECEIVE_POLICY;
  return {
    pollMailbox: (job) =>
      tracedWork(deps.tracing ?? noTracing, 'look at mailbox', { customerId: job.customerId, connectionId: job.connectionId, mailboxId: job.mailboxId, reason: job.reason }, () => pollMailbox(
        {
          states,
          connections: repositories.connections,
          mailboxes: repositories.mailboxes,
          tokens: identity.accessTokens,
          receivers: receiversOf,
          ingest,
          subscriptions: {
            index: repositories.graphSubscriptions,
            urls:
              'notificationUrls' in deps
                ? deps.notificationUrls
                : config.receiving.graphNotifications
                  ? { notifications: `${publicBaseUrl}/api/graph/notifications`, lifecycle: `${publicBaseUrl}/api/graph/lifecycle` }
                  : undefined,
            policy,
            logger: deps.logger,
            now: deps.now,
          },
          enqueuePoll,
          policy,
          batchSize: RECEIVE_BATCH_SIZE,
          resyncDays: RESYNC_DAYS,
          logger: deps.logger,
          metrics: deps.metrics,
          now: deps.now,
        },
        job,
      )),
    enqueueDuePolls: (scan) => enqueueDuePolls({ states: repositories.receiveState, queues: deps.queues, now: deps.now }, scan),
    handleNotifications: (batch) =>
      handleNotifications(
        {
          index: repositories.graphSubscriptions,
          connections: repositories.connections,
          mailboxes: repositories.mailboxes,
          states,
          tokens: identity.accessTokens,
          graph: (connection) => receiversOf(connection).graph,
          ingest,
          enqueuePoll,
          logger: deps.logger,
          metrics: deps.metrics,
        },
        batch,
      ),
  };
}

/** The IMAP and POP3 clients are loaded on the first look: a Graph-only connector never needs them. */
function lazyReceiver<R extends { poll(request: never): Promise<unknown> }>(load: () => Promise<R>): R {
  let receiver: Promise<R> | undefined;
  return {
    async poll(request: never) {
      receiver ??= load();
      return (await receiver).poll(request);
    },
  } as R;
}

const lazyProbes: Probes = {
  imap: async (input) => (await import('./mail/probes.js')).probeImap(input),
  pop3: async (input) => (await import('./mail/probes.js')).probePop3(input),
  smtp: async (input) => (await import('./mail/probes.js')).probeSmtp(input),
  graph: async (input) => (await import('./mail/probes.js')).probeGraph(input),
};
