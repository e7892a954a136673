import { join } from 'node:path';
import { writeFileAtomically } from '../src/atomic-file.js';
import { readFileIfExists } from '../src/read-file-if-exists.js';
import { CLOUDS } from '../src/identity/clouds.js';
import { SANDBOX_SETTINGS_FILE } from '../src/local-settings.js';
import { appRegistrationPermissions } from '../src/identity/scopes.js';
import { SandboxControlError, startSandboxIdentity, type RunningSandboxIdentity } from './sandbox/identity/index.js';

/**
 * What `npm start` adds when no real Entra app is configured: the sandbox identity platform with a
 * registered vendor app and a demo customer tenant (Contoso, with an administrator, a user and a
 * shared mailbox), kept in the data folder across restarts. The connector is then configured
 * exactly as for Microsoft (ENTRA_* settings, the client secret in the secret store), so nothing
 * in the connector knows it is talking to a sandbox.
 *
 * The settings it produced are saved as `sandbox.settings.json` so that other local processes
 * (`npm run connector -- …`) reach the same sandbox: see src/local-settings.ts.
 */

export const DEFAULT_SANDBOX_PORTS = { https: 7072, browser: 7073 } as const;

export interface SandboxDemoDirectory {
  tenantId: string;
  domain: string;
  admin: string;
  user: string;
  sharedMailbox: string;
}

interface SavedDemo {
  Values: Record<string, string>;
  caCertificatePath: string;
  demo: SandboxDemoDirectory & { clientId: string; connections?: Record<string, string> };
}

export interface SandboxDemo {
  sandbox: RunningSandboxIdentity;
  /** Where the settings below are saved for other local processes. */
  settingsPath: string;
  caCertificatePath: string;
  /** App settings that point the connector at the sandbox. */
  settings: Record<string, string>;
  /** Whether the app registration was made by this start (its old client secret is useless). */
  appIsNew: boolean;
  /** Adds a client secret to the app registration and returns its value, shown once. */
  addClientSecret(): Promise<string>;
  directory: SandboxDemoDirectory;
  /** Demo connections by name (e.g. delegated, application) once `rememberConnection` saved them. */
  connections: Record<string, string>;
  rememberConnection(name: string, connectionId: string): Promise<void>;
  stop(): Promise<void>;
}

export interface SandboxDemoOptions {
  dataDir: string;
  ports: { https: number; browser: number };
  /** The connector's public base URL: the app's redirect URIs are under it. */
  publicBaseUrl: string;
  vendorName: string;
}

export async function startSandboxDemo(options: SandboxDemoOptions): Promise<SandboxDemo> {
  const settingsPath = join(options.dataDir, SANDBOX_SETTINGS_FILE);
  const saved = await readSaved(settingsPath);
  const sandbox = await startSandboxIdentity({
    caDirectory: join(options.dataDir, 'ca'),
    dataDir: join(options.dataDir, 'identity'),
    httpsPort: options.ports.https,
    browserPort: options.ports.browser,
  });
  try {
    const directory = (saved && (await tenantStillThere(sandbox, saved.demo))) ? saved.demo : await createDirectory(sandbox);
    const redirectUris = [`${options.publicBaseUrl}/api/connect/callback`, `${options.publicBaseUrl}/api/connect/admin-callback`];
    const app = saved ? await appStillUsable(sandbox, saved.demo.clientId, redirectUris) : undefined;
    let clientId = app;
    if (clientId === undefined) {
      // A new registration when the connector moved to another address: its redirect URIs are fixed.
      const { delegated, appRoles } = appRegistrationPermissions(CLOUDS.global);
      const created = await sandbox.control.createApp({
        displayName: options.vendorName,
        redirectUris,
        delegatedPermissions: delegated,
        appRoles,
        publicClient: true,
      });
      clientId = created.clientId;
    }
    const registered = clientId;
    const caCertificatePath = join(options.dataDir, 'ca', 'ca.pem');
    const settings = {
      ENTRA_CLIENT_ID: clientId,
      ENTRA_CLOUD: 'custom',
      ENTRA_LOGIN_URL: sandbox.httpsBase,
      ENTRA_GRAPH_URL: sandbox.graphBase,
      PUBLIC_BASE_URL: options.publicBaseUrl,
    };
    const connections = { ...saved?.demo.connections };
    const save = () => writeFileAtomically(settingsPath, `${JSON.stringify({ Values: settings, caCertificatePath, demo: { ...directory, clientId, connections } } satisfies SavedDemo, null, 2)}\n`);
    await save();
    return {
      sandbox,
      settingsPath,
      caCertificatePath,
      settings,
      appIsNew: app === undefined,
      async addClientSecret() {
        return (await sandbox.control.addClientSecret(registered, { displayName: 'npm start' })).value;
      },
      directory,
      connections,
      async rememberConnection(name, connectionId) {
        connections[name] = connectionId;
        await save();
      },
      stop: () => sandbox.stop(),
    };
  } catch (error) {
    await sandbox.stop();
    throw error;
  }
}

async function readSaved(path: string): Promise<SavedDemo | undefined> {
  try {
    const text = await readFileIfExists(path);
    return text === undefined ? undefined : (JSON.parse(text) as SavedDemo);
  } catch (error) {
    throw new Error(`Cannot read ${path} (delete it to start the sandbox afresh): ${(error as Error).message}`, { cause: error });
  }
}

async function tenantStillThere(sandbox: RunningSandboxIdentity, demo: SandboxDemoDirectory): Promise<boolean> {
  return (await sandbox.control.listTenants()).some((tenant) => tenant.id === demo.tenantId);
}

async function appStillUsable(sandbox: RunningSandboxIdentity, clientId: string, redirectUris: string[]): Promise<string | undefined> {
  try {
    const app = await sandbox.control.getApp(clientId);
    return redirectUris.every((uri) => app.redirectUris.includes(uri)) ? clientId : undefined;
  } catch (error) {
    if (error instanceof SandboxControlError && error.status === 404) return undefined;
    throw error;
  }
}

async function createDirectory(sandbox: RunningSandboxIdentity): Promise<SandboxDemoDirectory> {
  const tenant = await sandbox.control.createTenant({ displayName: 'Contoso' });
  const domain = tenant.domains[0] ?? '';
  const admin = await sandbox.control.createUser(tenant.id, { userPrincipalName: `admin@${domain}`, displayName: 'Contoso Administrator', isAdmin: true });
  const user = await sandbox.control.createUser(tenant.id, { userPrincipalName: `megan@${domain}`, displayName: 'Megan Bowen' });
  const shared = await sandbox.control.createMailbox(tenant.id, { address: `support@${domain}`, displayName: 'Contoso Support', kind: 'shared', fullAccess: [user.userPrincipalName] });
  return { tenantId: tenant.id, domain, admin: admin.userPrincipalName, user: user.userPrincipalName, sharedMailbox: shared.address };
}
