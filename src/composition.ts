import type { TokenCredential } from '@azure/identity';
import { loadConfig, type AzureCredentialConfig, type Config } from './config.js';
import { ProbeFailure, cachedHealthCheck, type HealthReport } from './health/check-health.js';
import { createAzureCredential } from './identity/azure-credential.js';
import { createKeyVaultSecretStore } from './secrets/key-vault-secret-store.js';
import { LocalSecretStore } from './secrets/local-secret-store.js';
import type { SecretStore } from './secrets/secret-store.js';
import { PayloadStore } from './store/payload-store.js';
import { QueuePublisher } from './store/queue-publisher.js';
import { createStorageClients, type StorageClients } from './store/storage-clients.js';
import { CONTAINERS } from './store/storage-layout.js';
import { createLogger, invocationLogger, jsonLineSink, type InvocationLogTarget, type LogFields, type Logger } from './telemetry/logger.js';

/**
 * Builds the connector's dependencies from configuration, once per process. This is the only
 * place that picks implementations; everything else receives what it needs.
 */
export interface Services {
  config: Config;
  /** For code that runs outside an invocation (start-up, shutdown). */
  logger: Logger;
  /** A logger bound to one invocation, so the host correlates its lines. */
  logFor(context: InvocationLogTarget, fields?: LogFields): Logger;
  storage: StorageClients;
  payloads: PayloadStore;
  queues: QueuePublisher;
  secrets: SecretStore;
  /** Readiness of storage and the secret store, reused for a few seconds (see cachedHealthCheck). */
  checkHealth(): Promise<HealthReport>;
}

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
  const secrets: SecretStore =
    config.secretStore.kind === 'keyvault'
      ? createKeyVaultSecretStore(config.secretStore, credentialFor(config.secretStore.credential))
      : await LocalSecretStore.open(config.secretStore.directory, env);

  return {
    config,
    logger: createLogger({ level: config.logLevel, sink: jsonLineSink }),
    logFor: (context, fields) => invocationLogger({ level: config.logLevel }, context, fields),
    storage,
    payloads,
    queues: new QueuePublisher(storage.queueService, payloads),
    secrets,
    checkHealth: cachedHealthCheck({
      tableStorage: () => storage.tableService.listTables().byPage({ maxPageSize: 1 }).next(),
      queueStorage: () => storage.queueService.listQueues().byPage({ maxPageSize: 1 }).next(),
      blobStorage: async () => {
        if (!(await payloads.exists())) throw new ProbeFailure(`container "${CONTAINERS.payloads}" is missing`);
      },
      secretStore: () => secrets.ping(),
    }),
  };
}
