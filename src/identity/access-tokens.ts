import type { AuthenticationResult } from '@azure/msal-node';
import type { Connection } from '../domain/connection.js';
import type { SecretStore } from '../secrets/secret-store.js';
import type { MsalClients } from './msal-clients.js';
import { defaultScope, delegatedScopes, type Resource } from './scopes.js';
import { ConnectionTokenCache } from './token-cache-store.js';

/**
 * Access tokens for a connected connection, per resource: Graph, or Exchange for IMAP/POP/SMTP.
 * Delegated connections use the refresh token in their own msal cache (msal refreshes and rotates
 * it, and the plugin saves the cache when it changed), as the same kind of client that signed in:
 * public for device code, confidential otherwise; a resource the sign-in did not ask for is
 * obtained silently with the same refresh token. Application connections use client credentials
 * at the connection's tenant.
 */

export interface AccessToken {
  token: string;
  expiresOn: Date;
  /** Who the token acts as: the signed-in user (delegated) or the app (application). */
  subject: string;
}

export class NotConnectedError extends Error {
  constructor(connectionId: string, why: string) {
    super(`Connection ${connectionId} has no tokens: ${why}`);
    this.name = 'NotConnectedError';
  }
}

export class AccessTokens {
  constructor(private readonly deps: { msal: MsalClients; secrets: Pick<SecretStore, 'get' | 'set'> }) {}

  async forConnection(connection: Connection, resource: Resource): Promise<AccessToken> {
    if (!connection.tenantId) throw new NotConnectedError(connection.id, 'it was never connected');
    return connection.mode === 'delegated' ? this.delegated(connection, connection.tenantId, resource) : this.appOnly(connection, connection.tenantId, resource);
  }

  private async delegated(connection: Connection, tenantId: string, resource: Resource): Promise<AccessToken> {
    const account = connection.account;
    if (!account) throw new NotConnectedError(connection.id, 'no user signed in');
    const app = this.deps.msal.app(connection.appId);
    const scopes = delegatedScopes(app.cloud, connection.transports).byResource[resource];
    if (!scopes) throw new NotConnectedError(connection.id, `its transports use no ${resource} permission`);
    const cache = new ConnectionTokenCache(this.deps.secrets, connection.id);
    // Microsoft binds a refresh token to the kind of client it was issued to: a device code sign-in's
    // must be redeemed without the app's credential (AADSTS700025 otherwise).
    const client =
      connection.signInMethod === 'device-code'
        ? this.deps.msal.publicClient(connection.appId, tenantId, cache)
        : await this.deps.msal.delegated(connection.appId, tenantId, cache);
    const cached = await client.getTokenCache().getAccountByHomeId(`${account.oid}.${tenantId}`);
    if (!cached) throw new NotConnectedError(connection.id, 'its token cache holds no account');
    return toAccessToken(await client.acquireTokenSilent({ account: cached, scopes, authority: this.deps.msal.authority(app, tenantId) }), account.upn);
  }

  private async appOnly(connection: Connection, tenantId: string, resource: Resource): Promise<AccessToken> {
    const app = this.deps.msal.app(connection.appId);
    const client = await this.deps.msal.appOnlyClient(connection.appId);
    const result = await client.acquireTokenByClientCredential({ scopes: [defaultScope(app.cloud, resource)], authority: this.deps.msal.authority(app, tenantId) });
    if (!result) throw new NotConnectedError(connection.id, 'Microsoft returned no app-only token');
    return toAccessToken(result, app.clientId);
  }
}

function toAccessToken(result: AuthenticationResult, subject: string): AccessToken {
  return { token: result.accessToken, expiresOn: result.expiresOn ?? new Date(Date.now() + 5 * 60_000), subject };
}
