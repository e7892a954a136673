import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import type { AzureCredentialConfig } from '../config.js';

/**
 * The connector's own identity towards Azure (Storage, Key Vault): the user-assigned managed
 * identity in Azure, the developer's sign-in (az login, VS Code, environment) on a workstation.
 */
export function createAzureCredential(config: AzureCredentialConfig): TokenCredential {
  if (config.kind === 'managedIdentity') {
    if (config.resourceId) return new ManagedIdentityCredential({ resourceId: config.resourceId });
    if (config.clientId) return new ManagedIdentityCredential({ clientId: config.clientId });
    return new ManagedIdentityCredential();
  }
  return config.clientId
    ? new DefaultAzureCredential({ managedIdentityClientId: config.clientId })
    : new DefaultAzureCredential();
}
