/**
 * Where the connector keeps what must stay secret: app credentials, token caches, webhook
 * signing secrets. Key Vault in Azure; an encrypted file on a developer machine. Values leave
 * the store only into memory, never into Table Storage or logs.
 */

export interface SecretProperties {
  name: string;
  version: string;
  enabled: boolean;
  contentType?: string;
  tags: Record<string, string>;
  createdOn?: Date;
  updatedOn?: Date;
  expiresOn?: Date;
}

/** What a listing shows: Key Vault lists secrets, not versions, so there is no version id. */
export type SecretListing = Omit<SecretProperties, 'version'>;

export interface Secret extends SecretProperties {
  value: string;
}

export interface SetSecretOptions {
  contentType?: string;
  tags?: Record<string, string>;
  expiresOn?: Date;
}

export interface SecretStore {
  readonly kind: 'keyvault' | 'local';
  /** The latest version (or the given one); undefined when there is no such secret. */
  get(name: string, version?: string): Promise<Secret | undefined>;
  /** Stores a new version and returns its properties. */
  set(name: string, value: string, options?: SetSecretOptions): Promise<SecretProperties>;
  /** Deletes every version; false when there was nothing to delete. */
  delete(name: string): Promise<boolean>;
  /** Properties (never values) of each secret whose name starts with `prefix` (case-insensitive). */
  list(prefix?: string): AsyncIterable<SecretListing>;
  /** Throws when the store cannot be reached or read (health checks). */
  ping(): Promise<void>;
}

/**
 * Key Vault's rule, applied to both stores so a name that works locally works in Azure. Names are
 * case-insensitive in both.
 */
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export class InvalidSecretNameError extends RangeError {
  constructor(name: string) {
    super(`"${name}" is not a valid secret name: use 1-127 letters, digits and hyphens`);
    this.name = 'InvalidSecretNameError';
  }
}

export function assertSecretName(name: string): void {
  if (!SECRET_NAME.test(name)) throw new InvalidSecretNameError(name);
}
