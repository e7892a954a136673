import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import type { AppRegistrationConfig } from '../../src/config.js';
import { AppHealthService } from '../../src/connection-health/app-health.js';
import { checkCredentialExpiry, type CredentialExpiryDeps } from '../../src/connection-health/credential-expiry.js';
import { VENDOR_EVENTS } from '../../src/domain/events.js';
import { recordEvent } from '../../src/events/record-event.js';
import { readAppCredentials } from '../../src/identity/app-registration-reader.js';
import { CLOUDS } from '../../src/identity/clouds.js';
import { MsalClients } from '../../src/identity/msal-clients.js';
import { createRepositories, type Repositories } from '../../src/store/repositories.js';
import { provisionStorage } from '../../src/store/provision-storage.js';
import { createLogger, type LogRecord } from '../../src/telemetry/logger.js';
import { RecordingMetrics } from '../../src/telemetry/metrics.js';
import { testStorage, uniqueName } from '../support/storage.js';

/**
 * The daily credential check against the sandbox: the expiry read from the app registration in
 * Graph (the app's own Application.Read.All in its home tenant) or taken from configuration, a
 * warning from 30 days, critical from 7, one vendor event per level, and nothing for a managed
 * identity.
 */

const DAY = 86_400_000;
let sandbox: RunningSandboxIdentity;
let directory: string;
let repositories: Repositories;
let defaultCas: string[];
let offset = 0;
const clock = () => new Date(Date.now() + offset);
const logs: LogRecord[] = [];
const logger = createLogger({ level: 'debug', sink: (record) => logs.push(record) });

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'credential-expiry-'));
  sandbox = await startSandboxIdentity({ caDirectory: join(directory, 'ca'), now: () => clock().getTime() });
  defaultCas = getCACertificates('default');
  setDefaultCACertificates([...defaultCas, sandbox.caPem]);
  const storage = testStorage();
  await provisionStorage(storage);
  repositories = createRepositories(storage);
}, 60_000);

afterAll(async () => {
  await sandbox.stop();
  setDefaultCACertificates(defaultCas);
  await rm(directory, { recursive: true, force: true });
});

/** An app registered in a home tenant of its own, with a secret that expires in `days`. */
async function registeredApp(options: { days: number; mayReadItself: boolean }) {
  const home = await sandbox.control.createTenant({ displayName: 'Vendor home' });
  const app = await sandbox.control.createApp({
    displayName: 'Vendor connector',
    redirectUris: ['https://connector.example/api/connect/callback'],
    homeTenantId: home.id,
    appRoles: options.mayReadItself ? ['https://graph.microsoft.com/Application.Read.All'] : ['https://graph.microsoft.com/Mail.Send'],
  });
  const secret = await sandbox.control.addClientSecret(app.clientId, { expiresAt: new Date(clock().getTime() + options.days * DAY).toISOString() });
  await sandbox.control.grantConsent(home.id, { clientId: app.clientId });
  const config: AppRegistrationConfig = {
    id: uniqueName('app'),
    clientId: app.clientId,
    cloud: { ...CLOUDS.global, name: 'custom', loginUrl: sandbox.httpsBase, graphUrl: sandbox.graphBase },
    credential: { kind: 'secret', secretName: 'entra-client-secret' },
    homeTenantId: home.id,
  };
  return { config, secret: secret.value };
}

function deps(apps: AppRegistrationConfig[], secrets: Record<string, string>, metrics = new RecordingMetrics()): CredentialExpiryDeps {
  const credential = (app: AppRegistrationConfig) => Promise.resolve(app.credential.kind === 'secret' ? { clientSecret: secrets[app.id] ?? '' } : {});
  const msal = new MsalClients({ apps, credential, logger });
  const appHealth = new AppHealthService({
    appHealth: repositories.appHealth,
    recordEvent: (event) => recordEvent({ events: repositories.events, endpoints: () => Promise.resolve([]), queues: { publish: () => Promise.reject(new Error('no endpoints')) }, now: clock }, event),
    clientIdOf: (appId) => apps.find((app) => app.id === appId)?.clientId ?? appId,
    logger,
    metrics,
    now: clock,
  });
  return { apps, appHealth, credential, readFromGraph: (app) => readAppCredentials(msal, app), logger, metrics, now: clock };
}

async function expiringEvents(appId: string) {
  return (await repositories.events.all(VENDOR_EVENTS)).filter((event) => event.type === 'app.credential_expiring' && event.data.appId === appId);
}

describe('credential expiry', () => {
  it('reads the expiry from the app registration in Graph: a warning at 20 days, once; critical from 7 days; expired after', async () => {
    const { config, secret } = await registeredApp({ days: 20, mayReadItself: true });
    const check = deps([config], { [config.id]: secret });
    const [first] = await checkCredentialExpiry(check);
    expect(first).toMatchObject({ appId: config.id, kind: 'secret', level: 'warning', source: 'graph', daysLeft: 19 });
    expect(logs.some((record) => record.level === 'warn' && record.appId === config.id && /expires within 30 days/.test(record.message))).toBe(true);
    expect(await expiringEvents(config.id)).toHaveLength(1);

    // The next day: the same level, a log line again, no second event.
    offset += DAY;
    expect((await checkCredentialExpiry(check))[0]).toMatchObject({ level: 'warning', daysLeft: 18 });
    expect(await expiringEvents(config.id)).toHaveLength(1);

    offset += 13 * DAY;
    expect((await checkCredentialExpiry(check))[0]).toMatchObject({ level: 'critical', daysLeft: 5 });
    offset += 7 * DAY;
    expect((await checkCredentialExpiry(check))[0]).toMatchObject({ level: 'expired' });
    const events = await expiringEvents(config.id);
    expect(events.map((event) => event.data.level)).toEqual(['warning', 'critical', 'expired']);
    expect(events[0]?.data).toMatchObject({ appId: config.id, kind: 'secret', source: 'graph', expiresAt: expect.any(String) as unknown });
    expect(logs.some((record) => record.level === 'error' && record.appId === config.id && /has expired/.test(record.message))).toBe(true);
    offset = 0;
  });

  it('takes the vendor\'s configured date first; says "unknown" when it may not read the registration', async () => {
    const { config, secret } = await registeredApp({ days: 10, mayReadItself: false });
    const configured = { ...config, id: uniqueName('cfg'), credentialExpiresAt: new Date(clock().getTime() + 60 * DAY).toISOString() };
    const reports = await checkCredentialExpiry(deps([config, configured], { [config.id]: secret, [configured.id]: secret }));
    expect(reports).toEqual([
      expect.objectContaining({ appId: config.id, level: 'unknown', source: 'none' }),
      expect.objectContaining({ appId: configured.id, level: 'ok', source: 'configuration', daysLeft: 59 }),
    ]);
    expect(await expiringEvents(config.id)).toHaveLength(0);
    expect(logs.some((record) => record.appId === config.id && /ENTRA_CREDENTIAL_EXPIRES_AT/.test(record.message))).toBe(true);
  });

  it('a managed identity as federated credential has nothing to expire, and says so', async () => {
    const app: AppRegistrationConfig = { id: uniqueName('mi'), clientId: '00000000-0000-0000-0000-000000000001', cloud: CLOUDS.global, credential: { kind: 'managed-identity' } };
    const [report] = await checkCredentialExpiry(deps([app], {}));
    expect(report).toEqual({ appId: app.id, kind: 'managed-identity', level: 'not_applicable', source: 'none' });
    expect(logs.some((record) => record.appId === app.id && /no secret or certificate to expire/.test(record.message))).toBe(true);
  });

  it('never logs or stores the secret', async () => {
    const { config, secret } = await registeredApp({ days: 3, mayReadItself: true });
    await checkCredentialExpiry(deps([config], { [config.id]: secret }));
    const stored = JSON.stringify([await repositories.appHealth.all('app'), await repositories.events.all(VENDOR_EVENTS)]);
    expect(stored + JSON.stringify(logs)).not.toContain(secret);
  });
});
