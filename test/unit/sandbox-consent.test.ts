import { describe, expect, it } from 'vitest';
import { declaredPermissions, grantDelegated, missingDelegated, removeAppFromTenant, requestedDelegated } from '../../local/sandbox/identity/consent.js';
import { EXCHANGE_ONLINE, MICROSOFT_GRAPH, parseScopes } from '../../local/sandbox/identity/resources.js';
import { emptySandboxData, SandboxState, type AppRegistration, type User } from '../../local/sandbox/identity/sandbox-state.js';

const tenantId = 't';
const app: AppRegistration = {
  clientId: 'app',
  displayName: 'Connector',
  redirectUris: [],
  publicClient: false,
  delegatedPermissions: [
    { resourceAppId: MICROSOFT_GRAPH.appId, name: 'Mail.Send' },
    { resourceAppId: EXCHANGE_ONLINE.appId, name: 'SMTP.Send' },
  ],
  appRoles: [{ resourceAppId: EXCHANGE_ONLINE.appId, name: 'IMAP.AccessAsApp' }],
  secrets: [],
  certificates: [],
  federatedCredentials: [],
};
const user = (id: string): User => ({ id, tenantId, userPrincipalName: `${id}@contoso.test`, displayName: id, isAdmin: false, tokensValidFrom: 0 });

describe('consent', () => {
  it('expands .default from the registration and adds named scopes', () => {
    const requested = requestedDelegated(app, parseScopes('https://graph.microsoft.com/.default https://graph.microsoft.com/Mail.Read', ''));
    expect([...requested]).toEqual([[MICROSOFT_GRAPH, ['Mail.Read', 'Mail.Send']]]);
    expect([...declaredPermissions(app, 'appRole')]).toEqual([[EXCHANGE_ONLINE, ['IMAP.AccessAsApp']]]);
  });

  it('counts a grant to everyone and a grant to the user, and nothing without a service principal', () => {
    const state = new SandboxState(emptySandboxData());
    const requested = requestedDelegated(app, parseScopes('Mail.Send Mail.Read', ''));
    expect([...missingDelegated(state, app, user('a'), requested)]).toEqual([[MICROSOFT_GRAPH, ['Mail.Send', 'Mail.Read']]]);
    grantDelegated(state, tenantId, app.clientId, null, new Map([[MICROSOFT_GRAPH, ['Mail.Send']]]));
    grantDelegated(state, tenantId, app.clientId, 'a', new Map([[MICROSOFT_GRAPH, ['Mail.Read']]]));
    expect(missingDelegated(state, app, user('a'), requested).size).toBe(0);
    expect([...missingDelegated(state, app, user('b'), requested)]).toEqual([[MICROSOFT_GRAPH, ['Mail.Read']]]);
    expect(state.data.servicePrincipals).toHaveLength(1);

    removeAppFromTenant(state, tenantId, app.clientId);
    expect(state.data.servicePrincipals).toHaveLength(0);
    expect(state.data.delegatedGrants).toHaveLength(0);
  });
});
