import type { SecretStore } from '../secrets/secret-store.js';

/**
 * Each delegated connection's msal token cache (its refresh token above all) lives in the secret
 * store under its own name: one partition per connection, never in Table Storage. AccessTokens
 * reads it and writes it back when msal changed it.
 */

export function tokenCacheSecretName(connectionId: string): string {
  return `msal-cache-${connectionId.toLowerCase().replace(/_/g, '-')}`;
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
