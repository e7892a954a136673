import { ConfidentialClientApplication } from '@azure/msal-node';
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

/** Graph tokens of the organization's app from the sandbox, as msal-node gets them: app-only, or a user's by password. */
export function graphTokens(sandbox: RunningSandboxIdentity, org: Organization): { app(): Promise<string>; user(upn: string): Promise<string> } {
  const client = () => {
    const options = sandbox.msalAuthOptions(org.tenant.id);
    return new ConfidentialClientApplication({ auth: { clientId: org.clientId, clientSecret: org.secret, authority: options.authority, knownAuthorities: options.knownAuthorities } });
  };
  const token = (result: { accessToken: string } | null) => {
    if (!result) throw new Error('msal returned no token');
    return result.accessToken;
  };
  return {
    app: async () => token(await client().acquireTokenByClientCredential({ scopes: [`${GRAPH}/.default`] })),
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- the password grant gets a real user token without a browser
    user: async (upn) => token(await client().acquireTokenByUsernamePassword({ scopes: [`${GRAPH}/.default`], username: upn, password: SANDBOX_PASSWORD })),
  };
}
