import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STORAGE_LAYOUT } from '../../src/store/storage-layout.js';
import { allowedDimensions, METRIC_CATALOG, type MetricName } from '../../src/telemetry/metric-catalog.js';

/**
 * Bicep cannot be compiled here (its compiler downloads a binary), so these checks read the
 * templates' text: enough to catch a setting, a queue or a role that the code and the templates
 * disagree about. `npm run check:bicep` builds them where a compiler is installed.
 */

const root = join(import.meta.dirname, '..', '..');
const bicepDir = join(root, 'bicep');
const read = (...path: string[]) => readFileSync(join(root, ...path), 'utf8');
const templates = ['main.bicep', ...readdirSync(join(bicepDir, 'modules')).filter((f) => f.endsWith('.bicep')).map((f) => `modules/${f}`)].map(
  (file) => ({ file, text: readFileSync(join(bicepDir, file), 'utf8') }),
);
const template = (file: string) => templates.find((t) => t.file === file)?.text ?? '';

/** The settings src/config.ts reads: the keys of its envSchema (not exported, so read from its text). */
function configSettingNames(): string[] {
  const source = read('src', 'config.ts');
  const body = /const envSchema = z\.object\(\{\n([\s\S]*?)\n\}\);/.exec(source)?.[1];
  if (body === undefined) throw new Error('src/config.ts: envSchema = z.object({ … }); not found');
  return [...body.matchAll(/^ {2}([A-Za-z_][A-Za-z0-9_]*):/gm)].map((m) => m[1] ?? '');
}

/** App settings the function app sets: `{ name: 'X', value: … }` entries. */
function appSettingNames(): string[] {
  return [...template('modules/function-app.bicep').matchAll(/\{\s*name:\s*'([A-Za-z_][A-Za-z0-9_]*)',\s*value:/g)].map((m) => m[1] ?? '');
}

/** Settings config.ts reads that a deployment intentionally leaves unset, and why. */
const NOT_SET: Record<string, string> = {
  AzureWebJobsStorage: 'a connection string carries the account key; the host and the code use the managed identity instead',
  AzureWebJobsStorage__accountName: 'the three service URIs are set instead; they are right in every cloud, the derived ones only in the global cloud',
  AzureWebJobsStorage__managedIdentityResourceId: 'the identity is named by AzureWebJobsStorage__clientId; config refuses both',
  LOCAL_SECRET_STORE_DIR: 'local secret store only; Azure uses Key Vault (SECRET_STORE=keyvault)',
  ALLOW_PRIVATE_NETWORK_URLS: 'local development only; refused in Azure',
  HOME: 'set by the platform; only the local secret store reads it',
  USERPROFILE: 'Windows workstations only; only the local secret store reads it',
  ENTRA_CLIENT_SECRET_NAME: 'the deployed app\'s credential is the managed identity (ENTRA_CREDENTIAL=managed-identity), not a secret',
  ENTRA_CERTIFICATE_NAME: 'the deployed app\'s credential is the managed identity, not a certificate',
  ENTRA_CREDENTIAL_EXPIRES_AT: 'a managed identity as federated credential has no expiry',
  ENTRA_LOGIN_URL: 'custom clouds (the local sandbox) only; ENTRA_CLOUD names a national cloud\'s endpoints',
  ENTRA_GRAPH_URL: 'custom clouds only',
  ENTRA_GRAPH_RESOURCE: 'custom clouds only',
  ENTRA_OUTLOOK_RESOURCE: 'custom clouds only',
  ENTRA_OUTLOOK_APP_RESOURCE: 'custom clouds only',
  ENTRA_IMAP_HOST: 'custom clouds only',
  ENTRA_POP3_HOST: 'custom clouds only',
  ENTRA_SMTP_HOST: 'custom clouds only',
};

/** Settings the templates set that config.ts does not read: read by the Functions host or the Application Insights SDK. */
const HOST_SETTINGS = ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'];

/** Built-in roles the templates may assign (learn.microsoft.com/azure/role-based-access-control/built-in-roles). */
const KNOWN_ROLES: Record<string, string> = {
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner',
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor',
  'b86a8fe4-44ce-4948-aee5-eccb2c155cd7': 'Key Vault Secrets Officer',
  '3913510d-42f4-4e42-8a64-420c390055eb': 'Monitoring Metrics Publisher',
};
const BROAD_ROLES: Record<string, string> = {
  '8e3af657-a8ff-443c-a75c-2fe8c4bcb635': 'Owner',
  'b24988ac-6180-42a0-ab88-20f7382dd24c': 'Contributor',
  '18d7d88d-d35e-4fb5-a5c3-7773c20a72d9': 'User Access Administrator',
  '17d1049b-9a84-46fb-8f53-869881c3d3ab': 'Storage Account Contributor',
  '00482a5a-887f-4fb3-b363-3b7fe8e74483': 'Key Vault Administrator',
};

const GUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

describe('bicep templates', () => {
  it('set every setting config.ts reads, except those listed as intentionally unset', () => {
    const read = configSettingNames();
    const set = appSettingNames();
    expect(read.length).toBeGreaterThan(40);
    const undecided = read.filter((name) => !set.includes(name) && !(name in NOT_SET));
    expect(undecided, 'settings config.ts reads that the templates neither set nor list in NOT_SET').toEqual([]);
    const setAnyway = set.filter((name) => name in NOT_SET);
    expect(setAnyway, 'settings listed as intentionally unset that the templates set').toEqual([]);
    const stale = Object.keys(NOT_SET).filter((name) => !read.includes(name));
    expect(stale, 'NOT_SET names a setting config.ts no longer reads').toEqual([]);
    const unknown = set.filter((name) => !read.includes(name) && !HOST_SETTINGS.includes(name));
    expect(unknown, 'app settings nobody reads').toEqual([]);
  });

  it('use the managed identity, Key Vault and AAD ingestion, with no secret in an app setting', () => {
    const app = template('modules/function-app.bicep');
    expect(app).toMatch(/name: 'AzureWebJobsStorage__credential', value: 'managedidentity'/);
    expect(app).toMatch(/name: 'SECRET_STORE', value: 'keyvault'/);
    expect(app).toMatch(/name: 'ENTRA_CREDENTIAL', value: 'managed-identity'/);
    expect(app).toMatch(/name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=\$\{identityClientId\};Authorization=AAD'/);
    for (const { file, text } of templates) {
      expect(text, file).not.toMatch(/listKeys\(|AccountKey=|InstrumentationKey=|@secure\(\)/);
    }
  });

  it('run the app on Flex Consumption with Node 22 in functionAppConfig', () => {
    const app = template('modules/function-app.bicep');
    expect(app).toMatch(/name: 'FC1'\s+tier: 'FlexConsumption'/);
    expect(app).toMatch(/kind: 'functionapp,linux'/);
    expect(app).toMatch(/runtime: \{\s+name: 'node'\s+version: '22'/);
    expect(app).toMatch(/type: 'UserAssignedIdentity'/);
    expect(app).not.toMatch(/FUNCTIONS_WORKER_RUNTIME|WEBSITE_NODE_DEFAULT_VERSION|WEBSITE_RUN_FROM_PACKAGE/);
  });

  it('create every table, queue and container of the storage layout (the app creates none in Azure)', () => {
    // provisionStorage runs only in the local start-up; a deployed app relies on the templates.
    const provisioners = ['functions/startup.ts', 'src/startup.ts', 'src/composition.ts'].filter((file) => read(file).includes('provisionStorage'));
    expect(provisioners).toEqual([]);
    const storage = template('modules/storage.bicep');
    const names = (variable: string) => {
      const body = new RegExp(`var ${variable} = \\[([\\s\\S]*?)\\]`).exec(storage)?.[1] ?? '';
      return [...body.matchAll(/'([^']+)'/g)].map((m) => m[1]).sort();
    };
    expect(names('tableNames')).toEqual([...STORAGE_LAYOUT.tables].sort());
    expect(names('queueNames')).toEqual([...STORAGE_LAYOUT.queues].sort());
    expect(names('containerNames')).toEqual([...STORAGE_LAYOUT.containers].sort());
    expect(storage).toMatch(/for table in tableNames/);
    expect(storage).toMatch(/for queue in queueNames/);
    expect(storage).toMatch(/for container in containerNames/);
  });

  it('assign only known, narrow built-in roles', () => {
    const used = new Set(templates.flatMap(({ text }) => [...text.matchAll(GUID)].map((m) => m[0].toLowerCase())));
    expect(used.size).toBeGreaterThan(0);
    for (const guid of used) {
      expect(BROAD_ROLES[guid], `${guid} is a broad role`).toBeUndefined();
      expect(KNOWN_ROLES[guid], `${guid} is not a known built-in role`).toBeDefined();
    }
    expect([...used].map((guid) => KNOWN_ROLES[guid]).sort()).toEqual(Object.values(KNOWN_ROLES).sort());
    const roles = template('modules/role-assignments.bicep');
    const assignments = [...roles.matchAll(/roleDefinitionId: subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions', (\w+)\)/g)];
    expect(assignments.length).toBeGreaterThan(0);
    // Each assignment names its role by a variable holding the GUID (the storage roles by a loop over such variables).
    const storageRoles = (/var storageRoles = \[([\s\S]*?)\]/.exec(roles)?.[1] ?? '').split(/\s+/).filter(Boolean);
    expect(roles).toMatch(/for role in storageRoles/);
    const variables = assignments.flatMap(([, variable]) => (variable === 'role' ? storageRoles : [variable ?? '']));
    for (const variable of variables) expect(roles, `${variable} is a named role GUID`).toMatch(new RegExp(`var ${variable} = '${GUID.source}'`, 'i'));
  });

  it('lock down storage, Key Vault and the site', () => {
    const storage = template('modules/storage.bicep');
    expect(storage).toMatch(/allowSharedKeyAccess: false/);
    expect(storage).toMatch(/allowBlobPublicAccess: false/);
    expect(storage).toMatch(/minimumTlsVersion: 'TLS1_2'/);
    expect(storage).toMatch(/supportsHttpsTrafficOnly: true/);
    const vault = template('modules/keyvault.bicep');
    expect(vault).toMatch(/enableRbacAuthorization: true/);
    expect(vault).toMatch(/enableSoftDelete: true/);
    expect(vault).toMatch(/enablePurgeProtection: true/);
    const app = template('modules/function-app.bicep');
    expect(app).toMatch(/httpsOnly: true/);
    expect(app).toMatch(/minTlsVersion: '1\.2'/);
    expect(template('modules/monitoring.bicep')).toMatch(/DisableLocalAuth: true/);
  });

  it('the deployment package is built remotely: node_modules and dist stay out, what the build needs goes in', () => {
    expect(read('azure.yaml')).toMatch(/remoteBuild: true/);
    const ignored = read('.funcignore').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules/', 'dist/', 'test/', 'local.settings.json']));
    const build = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    for (const needed of ['package.json', 'package-lock.json', 'host.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/', ...build.include.map((dir) => `${dir}/`)]) {
      expect(ignored.some((pattern) => pattern === needed || (pattern.endsWith('/') && needed.startsWith(pattern))), needed).toBe(false);
    }
  });

  it('host.json exports the host\'s telemetry through OpenTelemetry, and keeps every request and exception if sampling applies', () => {
    const host = JSON.parse(read('host.json')) as { telemetryMode?: string; logging?: { applicationInsights?: { samplingSettings?: { excludedTypes?: string } } } };
    // The worker's telemetry (src/telemetry/azure-monitor.ts) is OpenTelemetry; the host's must be too, for one trace per invocation.
    expect(host.telemetryMode).toBe('OpenTelemetry');
    expect(host.logging?.applicationInsights?.samplingSettings?.excludedTypes?.split(';')).toEqual(expect.arrayContaining(['Request', 'Exception']));
  });

  it('alert on what ops must see, with queries naming metrics and dimensions the code emits', () => {
    const alerts = template('modules/alerts.bicep');
    for (const name of ['poison-messages', 'connections-need-action', 'credential-expiring', 'sustained-throttling', 'webhook-deliveries-failing', 'function-errors']) {
      expect(alerts).toContain(`name: '${name}'`);
    }
    const alertQueries = [...alerts.matchAll(/query: '''([\s\S]*?)'''/g)].map((m) => m[1] ?? '');
    expect(alertQueries).toHaveLength(6);
    const workbook = JSON.parse(read('bicep', 'modules', 'workbook.json')) as { items: { content: { query?: string } }[] };
    const workbookQueries = workbook.items.map((item) => item.content.query).filter((query) => query !== undefined);
    expect(workbookQueries.length).toBeGreaterThanOrEqual(4);

    let metricQueries = 0;
    for (const query of [...alertQueries, ...workbookQueries]) {
      if (!query.includes('customMetrics')) continue;
      metricQueries += 1;
      // The metrics a query names: name == "x" and name in ("x", "y").
      const names = [
        ...[...query.matchAll(/name == "([a-z_.]+)"/g)].map((m) => m[1] ?? ''),
        ...[...query.matchAll(/name in \(([^)]*)\)/g)].flatMap((m) => [...(m[1] ?? '').matchAll(/"([a-z_.]+)"/g)].map((n) => n[1] ?? '')),
      ];
      expect(names.length, query).toBeGreaterThan(0);
      for (const name of names) expect(Object.keys(METRIC_CATALOG), `${name} in ${query}`).toContain(name);
      // Each dimension it reads is one at least one of those metrics carries.
      const allowed = new Set(names.flatMap((name) => [...allowedDimensions(name as MetricName)]));
      for (const dimension of query.matchAll(/customDimensions\.([A-Za-z]+)/g)) expect([...allowed], `${dimension[1] ?? ''} in ${query}`).toContain(dimension[1]);
    }
    expect(metricQueries).toBeGreaterThanOrEqual(9);
  });
});
