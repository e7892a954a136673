import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const MI = '00000000-1111-2222-3333-444444444444';

function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('configuration was accepted');
}

describe('loadConfig', () => {
  it('runs locally on Azurite and the local secret store with nothing but a connection string', () => {
    const config = loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', HOME: '/home/dev' });
    expect(config).toEqual({
      storage: { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true', developmentStorage: true },
      secretStore: { kind: 'local', directory: '/home/dev/.m365-connector/secrets' },
      logLevel: 'info',
      runningInAzure: false,
      allowPrivateNetworkUrls: false,
      webhookRetryScheduleMs: [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
      sending: { perMinute: 30, concurrent: 4, maxMessageBytes: 35 * 1024 * 1024, retryWindowMs: 24 * 3_600_000 },
      receiving: { retentionMs: 7 * 86_400_000, graphNotifications: true },
    });
  });

  it('reads the receive settings and names bad ones', () => {
    const base = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', HOME: '/h' };
    expect(loadConfig({ ...base, RECEIVE_RETENTION: '30d', GRAPH_NOTIFICATIONS: 'OFF' }).receiving).toEqual({ retentionMs: 30 * 86_400_000, graphNotifications: false });
    expect(() => loadConfig({ ...base, RECEIVE_RETENTION: '2h', GRAPH_NOTIFICATIONS: 'maybe' })).toThrow(/RECEIVE_RETENTION: must be a duration from 1d to 90d[\s\S]*GRAPH_NOTIFICATIONS: must be "on" or "off"/);
  });

  it('keeps password sign-in (ROPC) off unless ALLOW_ROPC=true', () => {
    const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', HOME: '/h', ENTRA_CLIENT_ID: MI };
    expect(loadConfig(env).identity?.allowRopc).toBe(false);
    expect(loadConfig({ ...env, ALLOW_ROPC: ' TRUE ' }).identity?.allowRopc).toBe(true);
    expect(loadConfig({ ...env, ALLOW_ROPC: 'false' }).identity?.allowRopc).toBe(false);
    expect(problemsOf({ ...env, ALLOW_ROPC: 'yes' })).toEqual([expect.stringMatching(/^ALLOW_ROPC: must be "true" or "false"/)]);
  });

  it('reads the token-lifecycle settings: degraded after, credential expiry, home tenant', () => {
    const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', HOME: '/h', ENTRA_CLIENT_ID: MI };
    expect(loadConfig(env).identity).toMatchObject({ degradedAfterMs: 72 * 3_600_000 });
    const set = loadConfig({ ...env, CONNECTION_DEGRADED_AFTER: '5d', ENTRA_CREDENTIAL_EXPIRES_AT: '2027-03-31', ENTRA_HOME_TENANT_ID: MI.toUpperCase() });
    expect(set.identity?.degradedAfterMs).toBe(5 * 86_400_000);
    expect(set.identity?.apps[0]).toMatchObject({ credentialExpiresAt: '2027-03-31T00:00:00.000Z', homeTenantId: MI });
    const extra = JSON.stringify([{ id: 'gov', clientId: MI, cloud: 'usgov', credential: 'secret', credentialExpiresAt: '2027-01-01T12:00:00Z' }]);
    expect(loadConfig({ ...env, ENTRA_APPS: extra }).identity?.apps[1]).toMatchObject({ credentialExpiresAt: '2027-01-01T12:00:00.000Z' });
    expect(problemsOf({ ...env, CONNECTION_DEGRADED_AFTER: '10m', ENTRA_CREDENTIAL_EXPIRES_AT: 'next spring' })).toEqual([
      expect.stringMatching(/^CONNECTION_DEGRADED_AFTER: must be a duration from 1h to 30d/),
      expect.stringMatching(/^ENTRA_CREDENTIAL_EXPIRES_AT: must be a date/),
    ]);
  });

  it('reads the webhook retry schedule and the local-development network setting', () => {
    const config = loadConfig({
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      HOME: '/h',
      WEBHOOK_RETRY_SCHEDULE: '500ms, 2s,1m,1.5h',
      ALLOW_PRIVATE_NETWORK_URLS: 'TRUE',
    });
    expect(config.webhookRetryScheduleMs).toEqual([500, 2000, 60_000, 5_400_000]);
    expect(config.allowPrivateNetworkUrls).toBe(true);
    expect(problemsOf({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', HOME: '/h', WEBHOOK_RETRY_SCHEDULE: '5s,soon' })).toEqual([
      'WEBHOOK_RETRY_SCHEDULE: must be a comma-separated list of up to 30 durations such as 5s,5m,30m,2h',
    ]);
    expect(
      problemsOf({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', WEBSITE_INSTANCE_ID: 'i', KEY_VAULT_URL: 'https://v.vault.azure.net', ALLOW_PRIVATE_NETWORK_URLS: 'true' }),
    ).toEqual([expect.stringMatching(/^ALLOW_PRIVATE_NETWORK_URLS: a local-development setting; it is refused in Azure/)]);
  });

  it('reads identity-based storage the way the Functions host does', () => {
    const config = loadConfig({
      AzureWebJobsStorage__tableServiceUri: 'https://acct.table.core.windows.net/',
      AzureWebJobsStorage__queueServiceUri: 'https://acct.queue.core.windows.net',
      AzureWebJobsStorage__blobServiceUri: 'https://acct.blob.core.windows.net',
      AzureWebJobsStorage__credential: 'managedidentity',
      AzureWebJobsStorage__clientId: MI,
      WEBSITE_INSTANCE_ID: 'abc',
      KEY_VAULT_URL: 'https://vault.vault.azure.net/',
      AZURE_CLIENT_ID: MI,
    });
    expect(config.storage).toEqual({
      kind: 'identity',
      tableServiceUri: 'https://acct.table.core.windows.net',
      queueServiceUri: 'https://acct.queue.core.windows.net',
      blobServiceUri: 'https://acct.blob.core.windows.net',
      credential: { kind: 'managedIdentity', clientId: MI },
    });
    expect(config.secretStore).toEqual({
      kind: 'keyvault',
      vaultUrl: 'https://vault.vault.azure.net',
      credential: { kind: 'managedIdentity', clientId: MI },
    });
    expect(config.runningInAzure).toBe(true);
  });

  it('derives the three service URIs from accountName', () => {
    const config = loadConfig({ AzureWebJobsStorage__accountName: 'acct', HOME: '/h' });
    expect(config.storage).toMatchObject({
      tableServiceUri: 'https://acct.table.core.windows.net',
      blobServiceUri: 'https://acct.blob.core.windows.net',
      credential: { kind: 'default' },
    });
  });

  it('names every missing or invalid setting in one error, without echoing values', () => {
    const secretish = 'DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0';
    const problems = problemsOf({
      AzureWebJobsStorage: secretish,
      SECRET_STORE: 'keyvault',
      LOG_LEVEL: 'loud',
      AZURE_CLIENT_ID: 'not-a-guid',
    });
    expect(problems).toEqual([
      'AZURE_CLIENT_ID: must be the client id (a GUID) of the user-assigned managed identity',
      'LOG_LEVEL: must be one of debug, info, warn, error',
      expect.stringMatching(/^AzureWebJobsStorage: not a storage connection string/),
      expect.stringMatching(/^KEY_VAULT_URL: missing; required when SECRET_STORE is "keyvault"/),
    ]);
    expect(problems.join('\n')).not.toContain('c2VjcmV0');
  });

  it('refuses a half-configured identity-based storage and a mix of both forms', () => {
    expect(problemsOf({ AzureWebJobsStorage__tableServiceUri: 'https://a.table.core.windows.net', HOME: '/h' })).toEqual([
      expect.stringMatching(/^AzureWebJobsStorage__queueServiceUri: missing/),
      expect.stringMatching(/^AzureWebJobsStorage__blobServiceUri: missing/),
    ]);
    expect(
      problemsOf({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', AzureWebJobsStorage__accountName: 'acct', HOME: '/h' }),
    ).toEqual([expect.stringMatching(/^AzureWebJobsStorage: set either a connection string or/)]);
    expect(problemsOf({ AzureWebJobsStorage__accountName: 'Not_Valid', AzureWebJobsStorage__credential: 'secret', HOME: '/h' })).toEqual([
      'AzureWebJobsStorage__accountName: must be 3-24 lowercase letters and digits',
      'AzureWebJobsStorage__credential: the only supported value is "managedidentity"',
      expect.stringMatching(/^AzureWebJobsStorage: missing/),
    ]);
  });

  it('refuses plain http for services reached with bearer tokens, even on loopback', () => {
    expect(problemsOf({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SECRET_STORE: 'keyvault', KEY_VAULT_URL: 'http://127.0.0.1:8443' })).toEqual([
      'KEY_VAULT_URL: must be an https URL such as https://<vault>.vault.azure.net',
    ]);
    expect(
      problemsOf({
        AzureWebJobsStorage__accountName: 'acct',
        AzureWebJobsStorage__tableServiceUri: 'http://127.0.0.1:10002/devstoreaccount1',
        HOME: '/h',
      }),
    ).toEqual(['AzureWebJobsStorage__tableServiceUri: must be an https URL such as https://<account>.table.core.windows.net']);
    expect(
      loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SECRET_STORE: 'keyvault', KEY_VAULT_URL: 'https://127.0.0.1:8443' }).secretStore,
    ).toMatchObject({ vaultUrl: 'https://127.0.0.1:8443' });
  });

  it('refuses the local secret store in Azure and defaults to Key Vault there', () => {
    expect(problemsOf({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', WEBSITE_INSTANCE_ID: 'x', SECRET_STORE: 'local' })).toEqual([
      expect.stringMatching(/^SECRET_STORE: "local" .* refused in Azure/),
    ]);
    expect(problemsOf({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', WEBSITE_INSTANCE_ID: 'x' })).toEqual([
      expect.stringMatching(/^KEY_VAULT_URL: missing/),
    ]);
  });

  it('treats empty settings as unset', () => {
    expect(problemsOf({ AzureWebJobsStorage: '  ', HOME: '/h' })).toEqual([expect.stringMatching(/^AzureWebJobsStorage: missing/)]);
  });

  it('formats one readable message', () => {
    try {
      loadConfig({});
    } catch (error) {
      expect((error as Error).message).toMatch(/^Invalid configuration: 2 settings to fix\.\n {2}- AzureWebJobsStorage: missing/);
      return;
    }
    throw new Error('configuration was accepted');
  });
});
