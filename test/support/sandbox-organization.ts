import type { RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import type { Tenant } from '../../local/sandbox/identity/sandbox-state.js';
import type { UserView } from '../../local/sandbox/identity/control-schemas.js';

/** What the sandbox Graph tests start from: a customer tenant with two users and an app consented there. */

export const GRAPH = 'https://graph.microsoft.com';
export const SANDBOX_PASSWORD = 'Sandbox-Passw0rd!';

export interface Organization {
  tenant: Tenant;
  domain: string;
  megan: UserView;
  adele: UserView;
  clientId: string;
  /** The tenant the app is registered in (the sandbox makes one when none is named). */
  homeTenantId: string;
  secret: string;
}

/** A customer tenant with two users (and their mailboxes), and an app the admin consented to with these Graph permissions. */
export async function organization(sandbox: RunningSandboxIdentity, name: string, permissions: { delegated?: string[]; appRoles?: string[] }): Promise<Organization> {
  const tenant = await sandbox.control.createTenant({ displayName: name });
  const domain = tenant.domains[0] ?? '';
  const megan = await sandbox.control.createUser(tenant.id, { userPrincipalName: `megan@${domain}`, displayName: 'Megan Bowen', password: SANDBOX_PASSWORD });
  const adele = await sandbox.control.createUser(tenant.id, { userPrincipalName: `adele@${domain}`, displayName: 'Adele Vance', password: SANDBOX_PASSWORD });
  const app = await sandbox.control.createApp({
    displayName: `${name} connector`,
    delegatedPermissions: (permissions.delegated ?? []).map((p) => `${GRAPH}/${p}`),
    appRoles: (permissions.appRoles ?? []).map((p) => `${GRAPH}/${p}`),
  });
  const { value: secret } = await sandbox.control.addClientSecret(app.clientId);
  await sandbox.control.grantConsent(tenant.id, { clientId: app.clientId });
  return { tenant, domain, megan, adele, clientId: app.clientId, homeTenantId: app.homeTenantId ?? '', secret };
}
