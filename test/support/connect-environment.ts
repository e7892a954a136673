import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../local/free-port.js';
import { startLocalHost, type LocalHost } from '../../local/host/host.js';
import { startSandboxIdentity, type RunningSandboxIdentity, type SandboxIdentityOptions, type SigningKeyMaterial } from '../../local/sandbox/identity/index.js';
import type { Tenant, User } from '../../local/sandbox/identity/sandbox-state.js';
import { getServices, type IdentityServices, type Services } from '../../src/composition.js';
import { createConnection } from '../../src/connections/connections.js';
import { addMailbox } from '../../src/connections/mailboxes.js';
import type { Connection, ConnectionMode, Transports } from '../../src/domain/connection.js';
import type { LinkPurpose } from '../../src/domain/sign-in-state.js';
import { keys } from '../../src/store/repositories.js';
import { provisionStorage } from '../../src/store/provision-storage.js';
import { tokenCacheSecretName } from '../../src/identity/token-cache-store.js';
import { ConnectorKeys } from '../../src/identity/connector-keys.js';
import { ConsentLinks } from '../../src/identity/consent-links.js';

/**
 * The connect flow as a customer meets it: the real function app in the local host on Azurite,
 * configured like any deployment (ENTRA_* settings, the client secret in the secret store) but
 * pointed at the sandbox identity platform as a custom cloud. One per test file: the process's
 * services are a singleton, configured from the environment once.
 */

export const VENDOR_NAME = 'Fabrikam Helpdesk';
const root = fileURLToPath(new URL('../../', import.meta.url));

const DELEGATED_PERMISSIONS = [
  'https://graph.microsoft.com/User.Read',
  'https://graph.microsoft.com/Mail.Send',
  'https://graph.microsoft.com/Mail.ReadWrite',
  'https://graph.microsoft.com/Mail.Send.Shared',
  'https://graph.microsoft.com/Mail.ReadWrite.Shared',
  'https://outlook.office.com/IMAP.AccessAsUser.All',
  'https://outlook.office.com/POP.AccessAsUser.All',
  'https://outlook.office.com/SMTP.Send',
];
const APP_ROLES = [
  'https://graph.microsoft.com/Mail.Send',
  'https://graph.microsoft.com/Mail.ReadWrite',
  'https://outlook.office365.com/IMAP.AccessAsApp',
  'https://outlook.office365.com/SMTP.SendAsApp',
];

export interface Directory {
  tenant: Tenant;
  domain: string;
  admin: User;
  user: User;
}

export interface ConnectEnvironment {
  sandbox: RunningSandboxIdentity;
  host: LocalHost;
  services: Services;
  identity: IdentityServices;
  /** The connector's public base URL (the local host). */
  baseUrl: string;
  clientId: string;
  secretKeyId: string;
  /** A tenant (with `id` when given) with an admin and a user. */
  createDirectory(name: string, id?: string): Promise<Directory>;
  createConnection(input: { customerId: string; mode: ConnectionMode; transports?: Transports; mailboxes?: string[] }): Promise<Connection>;
  link(connection: Pick<Connection, 'customerId' | 'id'>, purpose?: LinkPurpose): Promise<string>;
  /** Broken versions of a link of `connection`, each of which must be refused. */
  badLinks(connection: Pick<Connection, 'customerId' | 'id'>): Promise<BadLinks>;
  connection(connection: Pick<Connection, 'customerId' | 'id'>): Promise<Connection>;
  /** The connection's msal token cache in the secret store, if any. */
  tokenCache(connectionId: string): Promise<string | undefined>;
  stop(): Promise<void>;
}

export interface BadLinks {
  /** A genuine link, for comparison. */
  genuine: string;
  /** The payload names another customer; the signature is the genuine one. */
  alteredPayload: string;
  /** The genuine payload with a changed signature. */
  alteredSignature: string;
  /** Signed with the right key, but expired a minute ago. */
  expired: string;
}

export interface ConnectEnvironmentOptions {
  storageConnectionString: string;
  env?: NodeJS.ProcessEnv;
  /** The sandbox's token signing key (the one the test mail server trusts). */
  signingKey?: SigningKeyMaterial;
  /** Shorter sandbox lifetimes (device code polling) or a movable clock (to expire codes). */
  sandbox?: Pick<SandboxIdentityOptions, 'lifetimes' | 'now'>;
}

export async function startConnectEnvironment(options: ConnectEnvironmentOptions): Promise<ConnectEnvironment> {
  const directory = await mkdtemp(join(tmpdir(), 'connect-'));
  const defaultCas = tls.getCACertificates('default');
  const sandbox = await startSandboxIdentity({ caDirectory: join(directory, 'ca'), ...options.sandbox, ...(options.signingKey && { signingKey: options.signingKey }) });
  tls.setDefaultCACertificates([...defaultCas, sandbox.caPem]);
  const port = await freePort();
  const baseUrl = `http://localhost:${port}`;

  const app = await sandbox.control.createApp({
    displayName: VENDOR_NAME,
    redirectUris: [`${baseUrl}/api/connect/callback`, `${baseUrl}/api/connect/admin-callback`],
    delegatedPermissions: DELEGATED_PERMISSIONS,
    appRoles: APP_ROLES,
    publicClient: true,
  });
  const secret = await sandbox.control.addClientSecret(app.clientId);

  Object.assign(process.env, {
    AzureWebJobsStorage: options.storageConnectionString,
    SECRET_STORE: 'local',
    LOCAL_SECRET_STORE_DIR: join(directory, 'secrets'),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    ENTRA_CLIENT_ID: app.clientId,
    ENTRA_CLOUD: 'custom',
    ENTRA_LOGIN_URL: sandbox.httpsBase,
    ENTRA_GRAPH_URL: sandbox.graphBase,
    PUBLIC_BASE_URL: baseUrl,
    VENDOR_NAME,
    // Tests look at mailboxes themselves (services.receiving); a test that wants the timer sets this to false.
    'AzureWebJobs.poll-timer.Disabled': 'true',
    ...options.env,
  });
  const services = await getServices();
  const identity = services.identity;
  if (!identity) throw new Error('the connect flow is not configured');
  await provisionStorage(services.storage);
  await services.secrets.set('entra-client-secret', secret.value);
  const host = await startLocalHost({ appDir: root, main: 'functions/*.ts', port, hostId: `connect-${port}` });

  return {
    sandbox,
    host,
    services,
    identity,
    baseUrl,
    clientId: app.clientId,
    secretKeyId: secret.keyId,
    async createDirectory(name, id) {
      const tenant = await sandbox.control.createTenant({ displayName: name, ...(id !== undefined && { id }) });
      const domain = tenant.domains[0] ?? '';
      const admin = await sandbox.control.createUser(tenant.id, { userPrincipalName: `admin@${domain}`, displayName: `${name} Admin`, isAdmin: true });
      const user = await sandbox.control.createUser(tenant.id, { userPrincipalName: `megan@${domain}`, displayName: 'Megan Bowen' });
      return { tenant, domain, admin, user };
    },
    async createConnection({ customerId, mode, transports = { send: 'graph', receive: 'graph' }, mailboxes = [] }) {
      const now = () => new Date();
      if (!(await services.repositories.customers.get(keys.customer(customerId)))) {
        await services.repositories.customers.create(keys.customer(customerId), { id: customerId, displayName: `Customer ${customerId}`, tags: {}, createdAt: now().toISOString(), updatedAt: now().toISOString() });
      }
      const connection = await createConnection(services.api.connections, { customerId, mode, appId: 'default', transports, tags: {} });
      for (const address of mailboxes) await addMailbox({ mailboxes: services.repositories.mailboxes, receiveState: services.repositories.receiveState, now }, connection, { address, kind: 'shared' });
      return connection;
    },
    async link(connection, purpose = 'connect') {
      return (await identity.links.issue(connection.customerId, connection.id, purpose)).url;
    },
    async badLinks(connection) {
      const genuine = (await identity.links.issue(connection.customerId, connection.id, 'connect')).url;
      const [payload = '', signature = ''] = (genuine.split('/').pop() ?? '').split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      const forged = Buffer.from(JSON.stringify({ ...claims, c: 'someone-else' })).toString('base64url');
      const past = new ConsentLinks(new ConnectorKeys(services.secrets), baseUrl, 60_000, () => new Date(Date.now() - 120_000));
      return {
        genuine,
        alteredPayload: `${baseUrl}/api/connect/${forged}.${signature}`,
        alteredSignature: `${baseUrl}/api/connect/${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`,
        expired: (await past.issue(connection.customerId, connection.id, 'connect')).url,
      };
    },
    async connection(connection) {
      const found = await services.repositories.connections.get(keys.connection(connection.customerId, connection.id));
      if (!found) throw new Error(`no connection ${connection.id}`);
      return found.value;
    },
    async tokenCache(connectionId) {
      return (await services.secrets.get(tokenCacheSecretName(connectionId)))?.value;
    },
    async stop() {
      await host.stop();
      await sandbox.stop();
      tls.setDefaultCACertificates(defaultCas);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** How a delegated connection looks once `directory`'s user connected it through the browser flow. */
export function connectedByUser(directory: Directory): Partial<Connection> {
  return {
    state: 'connected',
    tenantId: directory.tenant.id,
    account: { oid: directory.user.id, upn: directory.user.userPrincipalName, displayName: directory.user.displayName },
    signInMethod: 'authorization-code',
  };
}
