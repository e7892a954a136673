import { z } from 'zod';
import { isRunningInAzure } from './azure-environment.js';
import { CLOUD_NAMES, CLOUDS, parseHostPort, type Cloud } from './identity/clouds.js';

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
  /** The vendor's Entra app registrations and the connect flow; absent when no app is configured. */
  identity: IdentityConfig | undefined;
  sending: SendingConfig;
  receiving: ReceivingConfig;
  /** True inside Azure App Service / Functions (see isRunningInAzure). */
  runningInAzure: boolean;
}

/** Inbound mail. */
export interface ReceivingConfig {
  /** How long a received message's MIME is kept for download. */
  retentionMs: number;
  /** Ask Graph for change notifications (false: Graph mailboxes are polled by delta only). */
  graphNotifications: boolean;
}

/** Outbound mail: Microsoft's per-mailbox limits as the connector keeps them, and how long a message is tried. */
export interface SendingConfig {
  /** Messages per mailbox in any 60 seconds (Exchange Online: 30). */
  perMinute: number;
  /** Requests in flight per mailbox (Graph's Outlook limit: 4). */
  concurrent: number;
  /** The largest message as sent (Exchange Online's default: 35 MB). */
  maxMessageBytes: number;
  /** How long a message is retried before it fails. */
  retryWindowMs: number;
}

const positiveIntegerUpTo = (max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from 1 to ${String(max)}`)
    .transform(Number)
    .pipe(z.number().int().min(1, `must be a whole number from 1 to ${String(max)}`).max(max, `must be a whole number from 1 to ${String(max)}`));

export type AppCredentialConfig =
  /** A client secret, kept in the secret store under this name. */
  | { kind: 'secret'; secretName: string }
  /** A certificate: the secret store holds a JSON document { privateKeyPem, thumbprintSha256 } under this name. */
  | { kind: 'certificate'; secretName: string }
  /** A user-assigned managed identity, trusted by the app as a federated credential: no secret at all. */
  | { kind: 'managed-identity'; clientId?: string };

export interface AppRegistrationConfig {
  /** How connections name the app; "default" for the one configured by ENTRA_CLIENT_ID. */
  id: string;
  clientId: string;
  cloud: Cloud;
  credential: AppCredentialConfig;
  /** When the secret or certificate expires, as the vendor noted it (ENTRA_CREDENTIAL_EXPIRES_AT); otherwise read from Graph when permitted. */
  credentialExpiresAt?: string;
  /** The tenant the app is registered in: where its Graph `application` object (credential expiry dates) is read. */
  homeTenantId?: string;
}

export interface IdentityConfig {
  apps: readonly AppRegistrationConfig[];
  /** The connector's public https origin: consent links and redirect URIs hang below it. */
  publicBaseUrl: string;
  /** Shown to customer admins: who is asking for access. */
  vendorName: string;
  consentLinkTtlMs: number;
  /** Resource owner password credentials: off by default, because they bypass MFA and Conditional Access. */
  allowRopc: boolean;
  /** Continuous transient token failure for this long makes a connection `degraded`. */
  degradedAfterMs: number;
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
/** A switch: `on` (true) or `off` (false), in any case. */
const flag = (on: string, off: string) =>
  setting(
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum([on, off], { error: `must be "${on}" or "${off}"` }))
      .transform((v) => v === on),
  );
/** A duration such as 30s, 5m, 72h or 7d, in milliseconds, within [min, max]. */
const durationBetween = (minMs: number, maxMs: number, message: string) =>
  z
    .string()
    .trim()
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined || ms < minMs || ms > maxMs) {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
      return ms;
    });

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const guid = (what: string) => z.string().trim().regex(GUID, `must be the client id (a GUID) of ${what}`);
const serviceUrl = (example: string) =>
  z
    .string()
    .trim()
    .refine(isServiceUrl, `must be an https URL such as ${example}`)
    .transform((v) => v.replace(/\/+$/, ''));

const secretName = z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a secret name (letters, digits, hyphens)');
/** More app registrations than the default one, e.g. one per national cloud; each names its credential. */
const extraAppsSchema = z
  .array(
    z
      .object({
        id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1-32 lowercase letters, digits and hyphens'),
        clientId: z.string().regex(GUID, 'must be a GUID'),
        cloud: z.enum(['global', 'usgov', 'usgovdod', 'china']).default('global'),
        credential: z.enum(['secret', 'certificate', 'managed-identity']),
        secretName: secretName.optional(),
        certificateName: secretName.optional(),
        ficClientId: z.string().regex(GUID, 'must be a GUID').optional(),
        credentialExpiresAt: z.iso.datetime({ offset: true }).or(z.iso.date()).optional(),
        homeTenantId: z.string().regex(GUID, 'must be a GUID').optional(),
      })
      .strict(),
  )
  .max(20);

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
  ALLOW_PRIVATE_NETWORK_URLS: flag('true', 'false'),
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
  ENTRA_CLIENT_ID: setting(z.string().trim().regex(GUID, 'must be the application (client) id of your app registration, a GUID')),
  ENTRA_CLOUD: setting(z.string().trim().toLowerCase().pipe(z.enum(CLOUD_NAMES, { error: `must be one of ${CLOUD_NAMES.join(', ')}` }))),
  ENTRA_CREDENTIAL: setting(
    z.string().trim().toLowerCase().pipe(z.enum(['secret', 'certificate', 'managed-identity'], { error: 'must be secret, certificate or managed-identity' })),
  ),
  ENTRA_CLIENT_SECRET_NAME: setting(z.string().trim().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a secret name (letters, digits, hyphens)')),
  ENTRA_CERTIFICATE_NAME: setting(z.string().trim().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a secret name (letters, digits, hyphens)')),
  ENTRA_FIC_CLIENT_ID: setting(guid('the user-assigned managed identity the app trusts as a federated credential')),
  ENTRA_LOGIN_URL: setting(serviceUrl('https://login.microsoftonline.com')),
  ENTRA_GRAPH_URL: setting(serviceUrl('https://graph.microsoft.com')),
  ENTRA_GRAPH_RESOURCE: setting(serviceUrl('https://graph.microsoft.com')),
  ENTRA_OUTLOOK_RESOURCE: setting(serviceUrl('https://outlook.office.com')),
  ENTRA_OUTLOOK_APP_RESOURCE: setting(serviceUrl('https://outlook.office365.com')),
  ENTRA_IMAP_HOST: setting(z.string().trim()),
  ENTRA_POP3_HOST: setting(z.string().trim()),
  ENTRA_SMTP_HOST: setting(z.string().trim()),
  PUBLIC_BASE_URL: setting(
    z
      .string()
      .trim()
      .refine(isPublicBaseUrl, 'must be the https URL the connector is reached at (http only for localhost)')
      .transform((v) => v.replace(/\/+$/, '')),
  ),
  VENDOR_NAME: setting(z.string().trim().max(100)),
  CONSENT_LINK_TTL: setting(durationBetween(60_000, 30 * 86_400_000, 'must be a duration from 1m to 30d, such as 7d')),
  SEND_RATE_PER_MINUTE: setting(positiveIntegerUpTo(300)),
  SEND_CONCURRENCY: setting(positiveIntegerUpTo(16)),
  MAX_MESSAGE_MB: setting(positiveIntegerUpTo(150)),
  SEND_RETRY_WINDOW: setting(durationBetween(60_000, 7 * 86_400_000, 'must be a duration from 1m to 7d, such as 24h')),
  RECEIVE_RETENTION: setting(durationBetween(86_400_000, 90 * 86_400_000, 'must be a duration from 1d to 90d, such as 7d')),
  GRAPH_NOTIFICATIONS: flag('on', 'off'),
  CONNECTION_DEGRADED_AFTER: setting(durationBetween(3_600_000, 30 * 86_400_000, 'must be a duration from 1h to 30d, such as 72h')),
  ENTRA_CREDENTIAL_EXPIRES_AT: setting(
    z
      .string()
      .trim()
      .pipe(z.union([z.iso.datetime({ offset: true }), z.iso.date()], { error: 'must be a date such as 2027-03-31 or 2027-03-31T12:00:00Z' })),
  ),
  ENTRA_HOME_TENANT_ID: setting(guid('the tenant the app is registered in')),
  ENTRA_APPS: setting(
    z
      .string()
      .trim()
      .transform((text, ctx) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          ctx.addIssue({ code: 'custom', message: 'must be a JSON array of app registrations: [{"id":"gov","clientId":"…","cloud":"usgov"}]' });
          return z.NEVER;
        }
        const apps = extraAppsSchema.safeParse(parsed);
        if (!apps.success) {
          const issue = apps.error.issues[0];
          ctx.addIssue({ code: 'custom', message: `${issue?.path.length ? `[${issue.path.join('].')}: ` : ''}${issue?.message ?? 'invalid'}` });
          return z.NEVER;
        }
        return apps.data;
      }),
  ),
  ALLOW_ROPC: flag('true', 'false'),
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

  const identity = readIdentity(values, runningInAzure, problems);

  if (problems.length > 0 || !storage || !secretStore) throw new ConfigError(firstProblemPerSetting(problems));
  return {
    identity,
    storage,
    secretStore,
    logLevel: values.LOG_LEVEL ?? 'info',
    runningInAzure,
    allowPrivateNetworkUrls,
    webhookRetryScheduleMs: values.WEBHOOK_RETRY_SCHEDULE ?? DEFAULT_WEBHOOK_RETRY_SCHEDULE_MS,
    sending: {
      perMinute: values.SEND_RATE_PER_MINUTE ?? 30,
      concurrent: values.SEND_CONCURRENCY ?? 4,
      maxMessageBytes: (values.MAX_MESSAGE_MB ?? 35) * 1024 * 1024,
      retryWindowMs: values.SEND_RETRY_WINDOW ?? 24 * 3_600_000,
    },
    receiving: {
      retentionMs: values.RECEIVE_RETENTION ?? 7 * 86_400_000,
      graphNotifications: values.GRAPH_NOTIFICATIONS ?? true,
    },
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

function readIdentity(env: Env, runningInAzure: boolean, problems: string[]): IdentityConfig | undefined {
  const clientId = env.ENTRA_CLIENT_ID;
  if (clientId === undefined) {
    const orphans = (Object.keys(env) as (keyof Env)[]).filter((k) => k.startsWith('ENTRA_') && env[k] !== undefined);
    if (orphans.length > 0) problems.push(`ENTRA_CLIENT_ID: missing, while ${orphans.join(', ')} ${orphans.length === 1 ? 'is' : 'are'} set`);
    return undefined;
  }
  const cloudName = env.ENTRA_CLOUD ?? 'global';
  // A custom cloud (another identity platform speaking Microsoft's protocol, such as the local
  // sandbox) names its login host; every other host defaults to the global cloud's.
  const base = CLOUDS[cloudName === 'custom' ? 'global' : cloudName];
  if (cloudName === 'custom' && env.ENTRA_LOGIN_URL === undefined) problems.push('ENTRA_LOGIN_URL: required when ENTRA_CLOUD is "custom"');
  const hosts = {
    ENTRA_IMAP_HOST: env.ENTRA_IMAP_HOST === undefined ? base.imap : parseHostPort(env.ENTRA_IMAP_HOST, 993),
    ENTRA_POP3_HOST: env.ENTRA_POP3_HOST === undefined ? base.pop3 : parseHostPort(env.ENTRA_POP3_HOST, 995),
    ENTRA_SMTP_HOST: env.ENTRA_SMTP_HOST === undefined ? base.smtp : parseHostPort(env.ENTRA_SMTP_HOST, 587),
  };
  for (const [name, value] of Object.entries(hosts)) if (value === undefined) problems.push(`${name}: must be host or host:port`);
  const { ENTRA_IMAP_HOST: imap, ENTRA_POP3_HOST: pop3, ENTRA_SMTP_HOST: smtp } = hosts;
  const credential = appCredential(env.ENTRA_CREDENTIAL ?? (runningInAzure ? 'managed-identity' : 'secret'), '', {
    secretName: env.ENTRA_CLIENT_SECRET_NAME,
    certificateName: env.ENTRA_CERTIFICATE_NAME,
    ficClientId: env.ENTRA_FIC_CLIENT_ID ?? env.AZURE_CLIENT_ID,
  });
  const publicBaseUrl = env.PUBLIC_BASE_URL ?? (runningInAzure ? undefined : 'http://localhost:7071');
  if (publicBaseUrl === undefined) problems.push('PUBLIC_BASE_URL: missing; required with ENTRA_CLIENT_ID (e.g. https://connector.vendor.example)');
  if (!imap || !pop3 || !smtp || !publicBaseUrl || (cloudName === 'custom' && env.ENTRA_LOGIN_URL === undefined)) return undefined;
  const cloud: Cloud = {
    ...base,
    name: cloudName,
    loginUrl: env.ENTRA_LOGIN_URL ?? base.loginUrl,
    graphUrl: env.ENTRA_GRAPH_URL ?? base.graphUrl,
    graphResource: env.ENTRA_GRAPH_RESOURCE ?? base.graphResource,
    outlookResource: env.ENTRA_OUTLOOK_RESOURCE ?? base.outlookResource,
    outlookAppResource: env.ENTRA_OUTLOOK_APP_RESOURCE ?? base.outlookAppResource,
    imap,
    pop3,
    smtp,
  };
  const extraApps: AppRegistrationConfig[] = (env.ENTRA_APPS ?? []).map((extra) => ({
    id: extra.id,
    clientId: extra.clientId,
    cloud: CLOUDS[extra.cloud],
    credential: appCredential(extra.credential, `-${extra.id}`, { ...extra, ficClientId: extra.ficClientId ?? env.AZURE_CLIENT_ID }),
    ...(extra.credentialExpiresAt !== undefined && { credentialExpiresAt: new Date(extra.credentialExpiresAt).toISOString() }),
    ...(extra.homeTenantId !== undefined && { homeTenantId: extra.homeTenantId.toLowerCase() }),
  }));
  const ids = ['default', ...extraApps.map((extra) => extra.id)];
  const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
  if (duplicate !== undefined) problems.push(`ENTRA_APPS: the app id "${duplicate}" is used twice ("default" is the ENTRA_CLIENT_ID app)`);
  return {
    apps: [
      {
        id: 'default',
        clientId,
        cloud,
        credential,
        ...(env.ENTRA_CREDENTIAL_EXPIRES_AT !== undefined && { credentialExpiresAt: new Date(env.ENTRA_CREDENTIAL_EXPIRES_AT).toISOString() }),
        ...(env.ENTRA_HOME_TENANT_ID !== undefined && { homeTenantId: env.ENTRA_HOME_TENANT_ID.toLowerCase() }),
      },
      ...extraApps,
    ],
    publicBaseUrl,
    vendorName: env.VENDOR_NAME ?? 'Your software vendor',
    consentLinkTtlMs: env.CONSENT_LINK_TTL ?? 7 * 86_400_000,
    allowRopc: env.ALLOW_ROPC ?? false,
    degradedAfterMs: env.CONNECTION_DEGRADED_AFTER ?? 72 * 3_600_000,
  };
}

/** An app's credential; secret names default to entra-client-secret / entra-client-certificate plus `suffix`. */
function appCredential(
  kind: AppCredentialConfig['kind'],
  suffix: string,
  names: { secretName?: string | undefined; certificateName?: string | undefined; ficClientId?: string | undefined },
): AppCredentialConfig {
  if (kind === 'secret') return { kind, secretName: names.secretName ?? `entra-client-secret${suffix}` };
  if (kind === 'certificate') return { kind, secretName: names.certificateName ?? `entra-client-certificate${suffix}` };
  return { kind, ...(names.ficClientId !== undefined && { clientId: names.ficClientId }) };
}

function isPublicBaseUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && ['localhost', '127.0.0.1'].includes(url.hostname));
  } catch {
    return false;
  }
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
