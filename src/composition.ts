import type { TokenCredential } from '@azure/identity';
import { createAuthenticator, type Authenticate } from './api/auth/authenticate.js';
import { createVendorTokenVerifier } from './api/auth/verify-vendor-token.js';
import type { ApiServices } from './api/services.js';
import { loadConfig, type AzureCredentialConfig, type Config, type IdentityConfig } from './config.js';
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
import { loadAppCredential, type AppCredential } from './identity/app-credentials.js';
import { MsalClients } from './identity/msal-clients.js';
import { ConnectorKeys } from './identity/connector-keys.js';
import { ConsentLinks } from './identity/consent-links.js';
import { SignInStates } from './identity/sign-in-states.js';
import { BrowserEndpoints } from './identity/browser-endpoints.js';
import { deleteTokenCache } from './identity/token-cache-store.js';
import { AccessTokens } from './identity/access-tokens.js';
import { ConnectFlow } from './connect/connect-flow.js';
import { ConnectResults } from './connect/connect-results.js';
import { connectionExchangeSetup } from './connect/connection-exchange-setup.js';

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
  /** The connect flow and what it needs; undefined until an app registration is configured (ENTRA_CLIENT_ID). */
  identity: IdentityServices | undefined;
}

export interface IdentityServices {
  connect: ConnectFlow;
  results: ConnectResults;
  msal: MsalClients;
  links: ConsentLinks;
  browser: BrowserEndpoints;
  accessTokens: AccessTokens;
  vendorName: string;
}

/** How long an app's credential (a secret read from Key Vault) is reused before it is read again. */
const APP_CREDENTIAL_CACHE_MS = 5 * 60_000;

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
  const identity = config.identity && buildIdentity(config.identity, { config, credentialFor, secrets, repositories, connections, logger, now });
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

interface IdentityBuildDeps {
  config: Config;
  credentialFor(settings: AzureCredentialConfig): TokenCredential;
  secrets: SecretStore;
  repositories: Repositories;
  connections: ConnectionDeps;
  logger: Logger;
  now(): Date;
}

function buildIdentity(identity: IdentityConfig, deps: IdentityBuildDeps): IdentityServices {
  const { secrets, repositories, logger } = deps;
  const now = () => deps.now();
  const credentialCache = new TtlCache<string, AppCredential>(APP_CREDENTIAL_CACHE_MS);
  const msal = new MsalClients({
    apps: identity.apps,
    credential: (app) =>
      credentialCache.get(app.id, () =>
        loadAppCredential(app, secrets, (clientId) =>
          deps.credentialFor({ kind: 'managedIdentity', ...(clientId !== undefined && { clientId }) }),
        ),
      ),
    logger,
  });
  const keys = new ConnectorKeys(secrets);
  const links = new ConsentLinks(keys, identity.publicBaseUrl, identity.consentLinkTtlMs, now);
  const results = new ConnectResults(repositories.connectResults, now);
  const browser = new BrowserEndpoints();
  const connect = new ConnectFlow({
    repositories,
    connections: deps.connections,
    mailboxes: { mailboxes: repositories.mailboxes, now },
    links,
    states: new SignInStates(repositories.signInStates, keys, now),
    msal,
    browser,
    secrets,
    identity,
    logger,
    now,
  });
  return { connect, results, msal, links, browser, accessTokens: new AccessTokens({ msal, secrets }), vendorName: identity.vendorName };
}
