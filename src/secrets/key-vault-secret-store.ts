import { setTimeout as sleep } from 'node:timers/promises';
import type { TokenCredential } from '@azure/identity';
import {
  isRestError,
  SecretClient,
  type SecretClientOptions,
  type SecretProperties as KeyVaultSecretProperties,
} from '@azure/keyvault-secrets';
import {
  assertSecretName,
  type Secret,
  type SecretListing,
  type SecretProperties,
  type SecretStore,
  type SetSecretOptions,
} from './secret-store.js';

/**
 * The secret store in Azure: one Key Vault, reached with the connector's managed identity.
 *
 * The vault has soft delete and purge protection, so a deleted name stays reserved (and its
 * versions recoverable) for the retention period. Re-creating a secret under a deleted name
 * therefore means recovering it and then writing a new version; the versions from before the
 * deletion come back with it and stay readable by version id.
 */

export interface KeyVaultSecretStoreOptions {
  /** Only tests set anything here (disableChallengeResourceVerification, for a vault on localhost). */
  clientOptions?: SecretClientOptions;
  /** Pause between checks while Key Vault finishes a delete or a recovery, which takes seconds. */
  pollIntervalMs?: number;
  /** How long a delete, or a set that has to wait for a delete or recovery, may take in all. */
  settleTimeoutMs?: number;
  /** A health check that hangs is as bad as one that fails. */
  pingTimeoutMs?: number;
}

/** A Key Vault failure, described without the request it came from (whose body may hold the value). */
export class KeyVaultSecretStoreError extends Error {
  readonly statusCode: number | undefined;
  readonly code: string | undefined;

  constructor(message: string, statusCode?: number, code?: string) {
    super(message);
    this.name = 'KeyVaultSecretStoreError';
    this.statusCode = statusCode;
    this.code = code;
  }
}

/**
 * The inner error codes Key Vault puts under a 409 `Conflict` while a name is soft-deleted or on
 * its way in or out of that state (verified against service responses; see the tests' server).
 */
const DELETED_BUT_RECOVERABLE = 'ObjectIsDeletedButRecoverable';
const BEING_DELETED = 'ObjectIsBeingDeleted';
const BEING_RECOVERED = 'ObjectIsBeingRecovered';
/**
 * The inner error code under the 403 `Forbidden` that answers a read of a disabled secret version:
 * the caller has access, so granting a role would not help (recorded in Azure/azure-sdk-for-js,
 * keyvault-secrets recording_cant_get_a_disabled_secret).
 */
const SECRET_DISABLED = 'SecretDisabled';

/** Key Vault version ids are 32 hex digits; anything else cannot name a version. */
const VERSION = /^[0-9a-f]{32}$/i;

export class KeyVaultSecretStore implements SecretStore {
  readonly kind = 'keyvault';
  private readonly client: SecretClient;
  private readonly pollIntervalMs: number;
  private readonly settleTimeoutMs: number;
  private readonly pingTimeoutMs: number;

  constructor(
    readonly vaultUrl: string,
    credential: TokenCredential,
    options: KeyVaultSecretStoreOptions = {},
  ) {
    this.client = new SecretClient(vaultUrl, credential, options.clientOptions);
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.settleTimeoutMs = options.settleTimeoutMs ?? 30_000;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 10_000;
  }

  async get(name: string, version?: string): Promise<Secret | undefined> {
    assertSecretName(name);
    const latest = version === undefined || version === '';
    if (!latest && !VERSION.test(version)) return undefined;
    try {
      const secret = await this.client.getSecret(name, latest ? {} : { version });
      return { ...toProperties(secret.properties), value: secret.value ?? '' };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw this.failure('read', name, error, latest ? undefined : version);
    }
  }

  async set(name: string, value: string, options: SetSecretOptions = {}): Promise<SecretProperties> {
    assertSecretName(name);
    const deadline = Date.now() + this.settleTimeoutMs;
    for (;;) {
      try {
        const secret = await this.client.setSecret(name, value, {
          ...(options.contentType !== undefined && { contentType: options.contentType }),
          ...(options.tags && { tags: options.tags }),
          ...(options.expiresOn && { expiresOn: options.expiresOn }),
        });
        return toProperties(secret.properties);
      } catch (error) {
        const conflict = conflictOf(error);
        if (conflict === undefined || Date.now() > deadline) throw this.failure('write', name, error);
        if (conflict === DELETED_BUT_RECOVERABLE) {
          await this.recover(name, deadline);
        } else {
          // Being deleted or recovered: Key Vault says "retry later", and a recovery can still
          // answer this for a moment after it reports itself done (Azure/azure-sdk-for-net#31581).
          await sleep(this.pollIntervalMs);
        }
      }
    }
  }

  async delete(name: string): Promise<boolean> {
    assertSecretName(name);
    try {
      const poller = await this.client.beginDeleteSecret(name, {
        intervalInMs: this.pollIntervalMs,
        abortSignal: AbortSignal.timeout(this.settleTimeoutMs),
      });
      // Until the deletion completes, setting the same name again answers 409 ObjectIsBeingDeleted.
      await poller.pollUntilDone();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw this.failure('delete', name, error);
    }
  }

  /** Key Vault cannot filter by prefix, so this pages through every secret's properties. */
  async *list(prefix = ''): AsyncIterable<SecretListing> {
    const wanted = prefix.toLowerCase();
    try {
      for await (const properties of this.client.listPropertiesOfSecrets()) {
        if (!properties.name.toLowerCase().startsWith(wanted)) continue;
        const { version: _version, ...listing } = toProperties(properties);
        yield listing;
      }
    } catch (error) {
      throw this.failure('list', undefined, error);
    }
  }

  /** One page of at most one secret's properties: proves the vault answers and lets us read it. */
  async ping(): Promise<void> {
    try {
      const pages = this.client
        .listPropertiesOfSecrets({ abortSignal: AbortSignal.timeout(this.pingTimeoutMs) })
        .byPage({ maxPageSize: 1 });
      await pages.next();
    } catch (error) {
      throw this.failure('list', undefined, error);
    }
  }

  /** Brings a soft-deleted name back so it can take a new version; tolerates a concurrent recovery. */
  private async recover(name: string, deadline: number): Promise<void> {
    try {
      const poller = await this.client.beginRecoverDeletedSecret(name, {
        intervalInMs: this.pollIntervalMs,
        abortSignal: AbortSignal.timeout(Math.max(deadline - Date.now(), 1)),
      });
      await poller.pollUntilDone();
    } catch (error) {
      // 404: someone else recovered it already; 409: someone else is recovering it. Set again either way.
      const status = statusOf(error);
      if (status !== 404 && status !== 409) throw this.failure('recover', name, error);
    }
  }

  private failure(action: string, name: string | undefined, error: unknown, version?: string): KeyVaultSecretStoreError {
    const what = name === undefined ? `${action} secrets` : `${action} secret "${name}"`;
    const status = statusOf(error);
    const code = isRestError(error) ? error.code : undefined;
    const innerCode = innerCodeOf(error);
    // Key Vault's messages name the problem, never a value or a token; the request (whose body
    // holds the value on a write) stays behind with the SDK error, which is not attached.
    const detail = (error instanceof Error ? error.message : String(error)).replace(/\.\s*$/, '');
    const reason = [status, code, innerCode].filter((part) => part !== undefined).join(' ');
    const next =
      innerCode === SECRET_DISABLED && name !== undefined ? this.enableOrReplace(name, version) : nextStep(error);
    return new KeyVaultSecretStoreError(
      `Key Vault ${this.vaultUrl} could not ${what}${reason ? ` (${reason})` : ''}: ${detail}. ${next}`,
      status,
      code,
    );
  }

  /** Someone disabled the version in the vault (to withdraw a leaked credential, say): the connector cannot undo that on its own. */
  private enableOrReplace(name: string, version: string | undefined): string {
    const id = `${this.vaultUrl.replace(/\/+$/, '')}/secrets/${name}${version === undefined ? '' : `/${version}`}`;
    return (
      `${version === undefined ? 'Its latest version' : 'That version'} is disabled in the vault. ` +
      `If it should still be used, enable it (az keyvault secret set-attributes --id ${id} --enabled true); ` +
      'otherwise set a new value for the secret, which becomes its enabled latest version.'
    );
  }
}

/** The production store: the vault from configuration, the connector's own identity. */
export function createKeyVaultSecretStore(config: { vaultUrl: string }, credential: TokenCredential): KeyVaultSecretStore {
  return new KeyVaultSecretStore(config.vaultUrl, credential);
}

function toProperties(properties: KeyVaultSecretProperties): SecretProperties {
  return {
    name: properties.name,
    version: properties.version ?? '',
    enabled: properties.enabled !== false,
    tags: { ...properties.tags },
    ...(properties.contentType !== undefined && { contentType: properties.contentType }),
    ...(properties.createdOn && { createdOn: properties.createdOn }),
    ...(properties.updatedOn && { updatedOn: properties.updatedOn }),
    ...(properties.expiresOn && { expiresOn: properties.expiresOn }),
  };
}

function statusOf(error: unknown): number | undefined {
  return isRestError(error) ? error.statusCode : undefined;
}

/** The specific reason Key Vault puts in `error.innererror.code` (kept by the SDK in `details`). */
function innerCodeOf(error: unknown): string | undefined {
  if (!isRestError(error)) return undefined;
  const details = error.details as { error?: { innerError?: { code?: unknown } } } | undefined;
  const code = details?.error?.innerError?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The reason of a 409 that a write can wait out or resolve by recovering the name. */
function conflictOf(error: unknown): string | undefined {
  if (statusOf(error) !== 409) return undefined;
  const code = innerCodeOf(error);
  return code === DELETED_BUT_RECOVERABLE || code === BEING_DELETED || code === BEING_RECOVERED ? code : undefined;
}

function nextStep(error: unknown): string {
  const name = error instanceof Error ? error.name : '';
  if (name === 'AbortError') return 'Key Vault did not finish in time; the operation can be retried.';
  if (/Credential|Authentication/.test(name)) {
    return (
      "The connector's identity could not get a token for Key Vault: " +
      'check the managed identity (AZURE_CLIENT_ID) or sign in with az login.'
    );
  }
  switch (statusOf(error)) {
    case 401:
      return 'The vault rejected the token: check that the identity belongs to the vault\'s tenant (AZURE_CLIENT_ID, az login).';
    case 403:
      return 'Grant the connector\'s identity the "Key Vault Secrets Officer" role on the vault, and check its firewall.';
    case undefined:
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return 'Check KEY_VAULT_URL and that the vault is reachable from here; the operation can be retried.';
    default:
      return 'See the Key Vault error code above.';
  }
}
