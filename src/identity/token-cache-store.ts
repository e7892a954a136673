import type { ICachePlugin, TokenCacheContext } from '@azure/msal-node';
import type { SecretStore } from '../secrets/secret-store.js';

/**
 * Each delegated connection's msal token cache (its refresh token above all) lives in the secret
 * store under its own name: one partition per connection, never in Table Storage. The plugin loads
 * it before msal reads and writes it back only when msal changed it.
 */

export function tokenCacheSecretName(connectionId: string): string {
  return `msal-cache-${connectionId.toLowerCase().replace(/_/g, '-')}`;
}

export class ConnectionTokenCache implements ICachePlugin {
  constructor(
    private readonly secrets: Pick<SecretStore, 'get' | 'set'>,
    private readonly connectionId: string,
  ) {}

  async beforeCacheAccess(context: TokenCacheContext): Promise<void> {
    const stored = await this.secrets.get(tokenCacheSecretName(this.connectionId));
    if (stored) context.tokenCache.deserialize(stored.value);
  }

  async afterCacheAccess(context: TokenCacheContext): Promise<void> {
    if (!context.cacheHasChanged) return;
    await saveTokenCache(this.secrets, this.connectionId, context.tokenCache.serialize());
  }
}

export async function saveTokenCache(secrets: Pick<SecretStore, 'set'>, connectionId: string, serialized: string): Promise<void> {
  await secrets.set(tokenCacheSecretName(connectionId), serialized, {
    contentType: 'application/json',
    tags: { purpose: 'msal-token-cache', connectionId },
  });
}

/** Removes a connection's tokens; false when it had none. */
export function deleteTokenCache(secrets: Pick<SecretStore, 'delete'>, connectionId: string): Promise<boolean> {
  return secrets.delete(tokenCacheSecretName(connectionId));
}
