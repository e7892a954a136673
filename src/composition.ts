import type { TokenCredential } from '@azure/identity';
import { createAuthenticator, type Authenticate } from './api/auth/authenticate.js';
import { createVendorTokenVerifier } from './api/auth/verify-vendor-token.js';
import type { ApiServices } from './api/services.js';
import { loadConfig, type AzureCredentialConfig, type Config } from './config.js';
import type { ConnectionDeps } from './connections/connections.js';
import type { ApiKeyRecord, JwtIssuer } from './domain/access.js';
import type { WebhookEndpoint } from './domain/webhook-endpoint.js';
import { deliverEvent, type DeliveryResult } from './events/deliver-event.js';
import type { DeliveryMessage } from './events/delivery-message.js';
import { recordEvent, type NewEvent } from './events/record-event.js';
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
import { CONTAINERS } from './store/storage-layout.js';
import { createLogger, invocationLogger, jsonLineSink, type InvocationLogTarget, type LogFields, type Logger } from './telemetry/logger.js';
import { TtlCache } from './ttl-cache.js';

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
}

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

  const endpointsCache = new TtlCache<'all', WebhookEndpoint[]>(SETTINGS_CACHE_MS);
  const apiKeyCache = new TtlCache<string, ApiKeyRecord | undefined>(SETTINGS_CACHE_MS);
  const issuerCache = new TtlCache<string, JwtIssuer | undefined>(SETTINGS_CACHE_MS);
  const enabledEndpoints = () =>
    endpointsCache.get('all', async () =>
      (await repositories.webhookEndpoints.all(keys.webhookEndpointsPartition)).filter((endpoint) => endpoint.enabled),
    );

  const record = (event: NewEvent) => recordEvent({ events: repositories.events, endpoints: enabledEndpoints, queues, now }, event);
  const connections: ConnectionDeps = { connections: repositories.connections, recordEvent: record, now };
  const replayDeps: ReplayDeps = { events: repositories.events, queues };
  const webhookSecrets = new WebhookSecrets({ store: secrets, now });
  const logger = createLogger({ level: config.logLevel, sink: jsonLineSink });
  const verifier = createVendorTokenVerifier({
    findIssuer: (issuer) => issuerCache.get(issuer, async () => (await repositories.jwtIssuers.get(keys.jwtIssuer(issuer)))?.value),
    allowPrivateNetwork: config.allowPrivateNetworkUrls,
    now,
    logger,
  });

  return {
    config,
    logger,
    logFor: (context, fields) => invocationLogger({ level: config.logLevel }, context, fields),
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
      // The connect flow (consent links) is not built yet.
      consentLinks: undefined,
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
    recordEvent: record,
    deliverEvent: (message) =>
      deliverEvent(
        {
          events: repositories.events,
          endpoints: repositories.webhookEndpoints,
          secrets: webhookSecrets,
          queues,
          retryScheduleMs: config.webhookRetryScheduleMs,
          allowPrivateNetwork: config.allowPrivateNetworkUrls,
          now,
        },
        message,
      ),
  };
}
