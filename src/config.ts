import { z } from 'zod';
import { isRunningInAzure } from './azure-environment.js';

/**
 * Environment → validated, typed settings. Read once at start-up; every missing or invalid
 * setting is reported in one message so an operator fixes them all in one deployment.
 * Messages name settings, never their values: values may be connection strings with keys.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type AzureCredentialConfig =
  | { kind: 'managedIdentity'; clientId?: string; resourceId?: string }
  /** DefaultAzureCredential: `az login`, VS Code, environment or workload identity on a workstation. */
  | { kind: 'default'; clientId?: string };

export type StorageConfig =
  | { kind: 'connectionString'; connectionString: string; developmentStorage: boolean }
  | {
      kind: 'identity';
      tableServiceUri: string;
      queueServiceUri: string;
      blobServiceUri: string;
      credential: AzureCredentialConfig;
    };

export type SecretStoreConfig =
  | { kind: 'keyvault'; vaultUrl: string; credential: AzureCredentialConfig }
  | { kind: 'local'; directory: string };

export interface Config {
  storage: StorageConfig;
  secretStore: SecretStoreConfig;
  logLevel: LogLevel;
  /**
   * Local development only: vendor-configured URLs (token key URLs, webhook endpoints) may point at
   * loopback and private addresses, and webhooks may use plain http. Refused in Azure.
   */
  allowPrivateNetworkUrls: boolean;
  /** Delays before each webhook retry; the delivery fails after the last one. */
  webhookRetryScheduleMs: readonly number[];
  /** True inside Azure App Service / Functions (see isRunningInAzure). */
  runningInAzure: boolean;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(
      `Invalid configuration: ${problems.length} setting${problems.length === 1 ? '' : 's'} to fix.\n` +
        problems.map((p) => `  - ${p}`).join('\n') +
        '\nSee the Configuration section of README.md.',
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Empty strings count as unset, as the Functions host treats an empty app setting. */
const blankAsUnset = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const setting = <T extends z.ZodType>(schema: T) => z.preprocess(blankAsUnset, schema.optional());

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const guid = (what: string) => z.string().trim().regex(GUID, `must be the client id (a GUID) of ${what}`);
const serviceUrl = (example: string) =>
  z
    .string()
    .trim()
    .refine(isServiceUrl, `must be an https URL such as ${example}`)
    .transform((v) => v.replace(/\/+$/, ''));

/** The Functions host's storage setting: the connector shares the host's storage account. */
const P = 'AzureWebJobsStorage__';
const envSchema = z.object({
  AzureWebJobsStorage: setting(z.string().trim()),
  AzureWebJobsStorage__accountName: setting(
    z.string().trim().regex(/^[a-z0-9]{3,24}$/, 'must be 3-24 lowercase letters and digits'),
  ),
  AzureWebJobsStorage__tableServiceUri: setting(serviceUrl('https://<account>.table.core.windows.net')),
  AzureWebJobsStorage__queueServiceUri: setting(serviceUrl('https://<account>.queue.core.windows.net')),
  AzureWebJobsStorage__blobServiceUri: setting(serviceUrl('https://<account>.blob.core.windows.net')),
  AzureWebJobsStorage__credential: setting(
    z
      .string()
      .trim()
      .refine((v) => v.toLowerCase() === 'managedidentity', 'the only supported value is "managedidentity"'),
  ),
  AzureWebJobsStorage__clientId: setting(guid('a user-assigned managed identity')),
  AzureWebJobsStorage__managedIdentityResourceId: setting(z.string().trim().startsWith('/subscriptions/', 'must be an Azure resource id')),
  SECRET_STORE: setting(
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['keyvault', 'local'], { error: 'must be "keyvault" or "local"' })),
  ),
  KEY_VAULT_URL: setting(serviceUrl('https://<vault>.vault.azure.net')),
  LOCAL_SECRET_STORE_DIR: setting(z.string().trim()),
  AZURE_CLIENT_ID: setting(guid('the user-assigned managed identity')),
  ALLOW_PRIVATE_NETWORK_URLS: setting(
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['true', 'false'], { error: 'must be "true" or "false"' }))
      .transform((v) => v === 'true'),
  ),
  WEBHOOK_RETRY_SCHEDULE: setting(
    z
      .string()
      .trim()
      .transform((text, ctx) => {
        const delays = text.split(',').map((part) => parseDuration(part.trim()));
        if (delays.some((d) => d === undefined) || delays.length === 0 || delays.length > 30) {
          ctx.addIssue({ code: 'custom', message: 'must be a comma-separated list of up to 30 durations such as 5s,5m,30m,2h' });
          return z.NEVER;
        }
        // A retry is a queue message made visible later, and Storage queues delay at most 7 days.
        if (delays.some((d) => d !== undefined && d > 7 * 86_400_000)) {
          ctx.addIssue({ code: 'custom', message: 'each delay must be at most 7d (the longest a queue message can wait)' });
          return z.NEVER;
        }
        return delays as number[];
      }),
  ),
  LOG_LEVEL: setting(
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be one of debug, info, warn, error' })),
  ),
  HOME: setting(z.string()),
  USERPROFILE: setting(z.string()),
});
type Env = z.output<typeof envSchema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values = parseSettings(env, problems);
  const runningInAzure = isRunningInAzure(env);

  const storage = readStorage(values, problems);
  const secretStore = readSecretStore(values, runningInAzure, problems);

  const allowPrivateNetworkUrls = values.ALLOW_PRIVATE_NETWORK_URLS ?? false;
  if (allowPrivateNetworkUrls && runningInAzure) {
    problems.push('ALLOW_PRIVATE_NETWORK_URLS: a local-development setting; it is refused in Azure, where it would open the connector\'s network to vendor-configured URLs');
  }

  if (problems.length > 0 || !storage || !secretStore) throw new ConfigError(firstProblemPerSetting(problems));
  return {
    storage,
    secretStore,
    logLevel: values.LOG_LEVEL ?? 'info',
    runningInAzure,
    allowPrivateNetworkUrls,
    webhookRetryScheduleMs: values.WEBHOOK_RETRY_SCHEDULE ?? DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS,
  };
}

/**
 * Validates every setting; an invalid one is reported and then treated as unset, so the checks
 * that combine settings still run and the one message covers everything.
 */
function parseSettings(env: NodeJS.ProcessEnv, problems: string[]): Env {
  const first = envSchema.safeParse(env);
  if (first.success) return first.data;
  const invalid = new Set<string>();
  for (const issue of first.error.issues) {
    const name = String(issue.path[0]);
    invalid.add(name);
    problems.push(`${name}: ${issue.message}`);
  }
  return envSchema.parse(Object.fromEntries(Object.entries(env).filter(([name]) => !invalid.has(name))));
}

function readStorage(env: Env, problems: string[]): StorageConfig | undefined {
  const connectionString = env.AzureWebJobsStorage;
  const identityKeys = (Object.keys(envSchema.shape) as (keyof Env)[]).filter(
    (k) => k.startsWith(P) && env[k] !== undefined,
  );

  if (connectionString !== undefined) {
    if (identityKeys.length > 0) {
      problems.push(
        `AzureWebJobsStorage: set either a connection string or the identity-based ${P}* settings, not both (found ${identityKeys.join(', ')})`,
      );
      return undefined;
    }
    const developmentStorage = /(^|;)\s*UseDevelopmentStorage\s*=\s*true\s*(;|$)/i.test(connectionString);
    if (!developmentStorage && !/(^|;)\s*(AccountName|BlobEndpoint|QueueEndpoint|TableEndpoint)\s*=/i.test(connectionString)) {
      problems.push(
        'AzureWebJobsStorage: not a storage connection string (expected UseDevelopmentStorage=true or DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...)',
      );
      return undefined;
    }
    return { kind: 'connectionString', connectionString, developmentStorage };
  }

  if (identityKeys.length === 0) {
    problems.push(
      `AzureWebJobsStorage: missing. Set a connection string (UseDevelopmentStorage=true for Azurite), or ${P}accountName (or the three ${P}*ServiceUri settings) with ${P}credential=managedidentity`,
    );
    return undefined;
  }

  const accountName = env[`${P}accountName`];
  const serviceUri = (service: 'table' | 'queue' | 'blob'): string | undefined => {
    const key = `${P}${service}ServiceUri` as const;
    const value = env[key] ?? (accountName ? `https://${accountName}.${service}.core.windows.net` : undefined);
    if (value === undefined) problems.push(`${key}: missing (or set ${P}accountName to derive all three service URIs)`);
    return value;
  };
  const tableServiceUri = serviceUri('table');
  const queueServiceUri = serviceUri('queue');
  const blobServiceUri = serviceUri('blob');

  const clientId = env[`${P}clientId`];
  const resourceId = env[`${P}managedIdentityResourceId`];
  if (clientId !== undefined && resourceId !== undefined) {
    problems.push(`${P}clientId and ${P}managedIdentityResourceId: set one of them, not both`);
    return undefined;
  }
  if (!tableServiceUri || !queueServiceUri || !blobServiceUri) return undefined;
  const credential: AzureCredentialConfig =
    env[`${P}credential`] !== undefined
      ? { kind: 'managedIdentity', ...(clientId && { clientId }), ...(resourceId && { resourceId }) }
      : { kind: 'default', ...(clientId && { clientId }) };
  return { kind: 'identity', tableServiceUri, queueServiceUri, blobServiceUri, credential };
}

function readSecretStore(env: Env, runningInAzure: boolean, problems: string[]): SecretStoreConfig | undefined {
  const kind = env.SECRET_STORE ?? (runningInAzure ? 'keyvault' : 'local');
  if (kind === 'keyvault') {
    const vaultUrl = env.KEY_VAULT_URL;
    if (vaultUrl === undefined) {
      problems.push('KEY_VAULT_URL: missing; required when SECRET_STORE is "keyvault" (e.g. https://<vault>.vault.azure.net)');
      return undefined;
    }
    const clientId = env.AZURE_CLIENT_ID;
    const credential: AzureCredentialConfig = runningInAzure
      ? { kind: 'managedIdentity', ...(clientId && { clientId }) }
      : { kind: 'default', ...(clientId && { clientId }) };
    return { kind: 'keyvault', vaultUrl, credential };
  }
  if (runningInAzure) {
    problems.push(
      'SECRET_STORE: "local" keeps secrets on the machine\'s disk and is refused in Azure; set SECRET_STORE=keyvault and KEY_VAULT_URL',
    );
    return undefined;
  }
  const home = env.HOME ?? env.USERPROFILE;
  const directory = env.LOCAL_SECRET_STORE_DIR ?? (home ? `${home}/.m365-connector/secrets` : undefined);
  if (directory === undefined) {
    problems.push('LOCAL_SECRET_STORE_DIR: missing, and there is no HOME to default it to');
    return undefined;
  }
  return { kind: 'local', directory };
}

/**
 * The Standard Webhooks schedule: retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, so a
 * receiver that is down for a day still gets every event.
 */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS: readonly number[] = [
  5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

/** "500ms", "5s", "5m", "2h", "1d" → milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (!match) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(match[1]) * unit);
}

/** An invalid setting reads as unset to the later checks; say only what is wrong with it. */
function firstProblemPerSetting(problems: string[]): string[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const setting = problem.slice(0, problem.indexOf(':'));
    if (seen.has(setting)) return false;
    seen.add(setting);
    return true;
  });
}

/** https only: these services are reached with bearer tokens, which the Azure SDKs never send over http. */
function isServiceUrl(value: string): boolean {
  try {
    return new URL(value).protocol === 'https:';
  } catch {
    return false;
  }
}
