import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../atomic-file.js';
import { isRunningInAzure } from '../azure-environment.js';
import { acquireFileLock } from '../file-lock.js';
import {
  assertSecretName,
  type Secret,
  type SecretListing,
  type SecretProperties,
  type SecretStore,
  type SetSecretOptions,
} from './secret-store.js';

/**
 * The secret store for `npm start`: one JSON file of AES-256-GCM encrypted versions, with the key
 * in a separate file generated on first run (both in a folder outside the repository, owner-only).
 * Each ciphertext is bound to its secret name and version, so moving ciphertexts around inside
 * the file fails decryption instead of returning the wrong secret. Names are case-insensitive and
 * keep the case they were first given, as in Key Vault. It refuses to run in Azure, where Key
 * Vault is the only place for secrets.
 *
 * Several processes may use one folder at once (`npm start` beside an admin CLI, two clones on the
 * default folder), so every read-modify-write of the file holds a lock file in the folder.
 */

export interface LocalSecretStoreOptions {
  /** How long a write waits for another process to release the lock before it fails. Default 10 s. */
  lockTimeoutMs?: number;
  /**
   * A lock older than this is taken as left behind by a process that died, even when its process
   * cannot be checked (another machine, a reused pid). A write holds the lock for milliseconds. Default 30 s.
   */
  staleLockMs?: number;
}

interface StoredVersion {
  version: string;
  iv: string;
  tag: string;
  ciphertext: string;
  createdOn: string;
  contentType?: string;
  tags: Record<string, string>;
  expiresOn?: string;
}

interface StoredSecret {
  /** The name as first set; lookups use the lower-case key. */
  name: string;
  versions: StoredVersion[];
}

interface StoreFile {
  format: 2;
  secrets: Record<string, StoredSecret>;
}

const KEY_FILE = 'secret-store.key';
const DATA_FILE = 'secrets.json';
const LOCK_FILE = 'secrets.json.lock';

export class LocalSecretStore implements SecretStore {
  readonly kind = 'local';
  /**
   * Serializes this instance's read-modify-write cycles before they reach the lock file, so that
   * they do not contend with each other for it.
   */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lockTimeoutMs: number;
  private readonly staleLockMs: number;

  private constructor(
    private readonly directory: string,
    private readonly key: Buffer,
    options: LocalSecretStoreOptions,
  ) {
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.staleLockMs = options.staleLockMs ?? 30_000;
  }

  static async open(
    directory: string,
    env: NodeJS.ProcessEnv = process.env,
    options: LocalSecretStoreOptions = {},
  ): Promise<LocalSecretStore> {
    if (isRunningInAzure(env)) {
      throw new Error(
        'The local secret store keeps secrets on disk and does not run in Azure. Set SECRET_STORE=keyvault and KEY_VAULT_URL.',
      );
    }
    await mkdir(directory, { recursive: true, mode: 0o700 });
    return new LocalSecretStore(directory, await loadOrCreateKey(join(directory, KEY_FILE)), options);
  }

  async get(name: string, version?: string): Promise<Secret | undefined> {
    assertSecretName(name);
    const secret = secretOf(await this.read(), name);
    const stored = version ? secret?.versions.find((v) => v.version === version) : secret?.versions.at(-1);
    if (!secret || !stored) return undefined;
    return { ...toProperties(secret.name, stored), value: this.decrypt(name, stored) };
  }

  // set and delete are async so that an invalid name rejects like any other failure, not throws synchronously.
  async set(name: string, value: string, options: SetSecretOptions = {}): Promise<SecretProperties> {
    assertSecretName(name);
    return await this.mutate((file) => {
      const version = randomBytes(16).toString('hex');
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.key, iv);
      cipher.setAAD(additionalData(name, version));
      const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
      const stored: StoredVersion = {
        version,
        iv: iv.toString('base64'),
        tag: cipher.getAuthTag().toString('base64'),
        ciphertext: ciphertext.toString('base64'),
        createdOn: new Date().toISOString(),
        tags: { ...options.tags },
        ...(options.contentType !== undefined && { contentType: options.contentType }),
        ...(options.expiresOn && { expiresOn: options.expiresOn.toISOString() }),
      };
      const secret = secretOf(file, name) ?? { name, versions: [] };
      secret.versions.push(stored);
      file.secrets[name.toLowerCase()] = secret;
      return toProperties(secret.name, stored);
    });
  }

  async delete(name: string): Promise<boolean> {
    assertSecretName(name);
    return await this.mutate((file) => {
      const existed = secretOf(file, name) !== undefined;
      file.secrets = Object.fromEntries(Object.entries(file.secrets).filter(([key]) => key !== name.toLowerCase()));
      return existed;
    });
  }

  async *list(prefix = ''): AsyncIterable<SecretListing> {
    const file = await this.read();
    for (const [key, secret] of Object.entries(file.secrets)) {
      const latest = secret.versions.at(-1);
      if (!latest || !key.startsWith(prefix.toLowerCase())) continue;
      const { version: _version, ...listing } = toProperties(secret.name, latest);
      yield listing;
    }
  }

  async ping(): Promise<void> {
    await this.read();
  }

  private decrypt(name: string, stored: StoredVersion): string {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(stored.iv, 'base64'));
      decipher.setAAD(additionalData(name, stored.version));
      decipher.setAuthTag(Buffer.from(stored.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(stored.ciphertext, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(
        `Secret "${name}" cannot be decrypted with ${join(this.directory, KEY_FILE)}: the key file was replaced or the data was altered.`,
      );
    }
  }

  private async read(): Promise<StoreFile> {
    try {
      const parsed = JSON.parse(await readFile(join(this.directory, DATA_FILE), 'utf8')) as { format?: unknown; secrets?: unknown };
      if (parsed.format !== 2 || typeof parsed.secrets !== 'object' || parsed.secrets === null) throw new Error('unknown format');
      return parsed as StoreFile;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { format: 2, secrets: {} };
      throw new Error(`The local secret store file ${join(this.directory, DATA_FILE)} is unreadable: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  private mutate<T>(change: (file: StoreFile) => T): Promise<T> {
    const next = this.queue.then(async () => {
      const release = await acquireFileLock(join(this.directory, LOCK_FILE), {
        timeoutMs: this.lockTimeoutMs,
        staleMs: this.staleLockMs,
        holder: `The local secret store in ${this.directory}`,
      });
      try {
        const file = await this.read();
        const result = change(file);
        await writeFileAtomically(join(this.directory, DATA_FILE), JSON.stringify(file, null, 1), 0o600);
        return result;
      } finally {
        await release();
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

}

/** Own entries only: valid secret names include "constructor" and "toString", which every object inherits. */
function secretOf(file: StoreFile, name: string): StoredSecret | undefined {
  const key = name.toLowerCase();
  return Object.hasOwn(file.secrets, key) ? file.secrets[key] : undefined;
}

/** Binds a ciphertext to the secret (case-insensitively, as names are) and the version it belongs to. */
function additionalData(name: string, version: string): Buffer {
  return Buffer.from(`${name.toLowerCase()}/${version}`);
}

function toProperties(name: string, stored: StoredVersion): SecretProperties {
  return {
    name,
    version: stored.version,
    enabled: true,
    tags: { ...stored.tags },
    createdOn: new Date(stored.createdOn),
    updatedOn: new Date(stored.createdOn),
    ...(stored.contentType !== undefined && { contentType: stored.contentType }),
    ...(stored.expiresOn && { expiresOn: new Date(stored.expiresOn) }),
  };
}

/**
 * Reads the key, or creates it. The new key is written completely to a private file first and
 * then linked into place: link fails when the key exists, so two processes starting together
 * both end up with whichever key was linked first, and nobody reads a half-written file.
 */
async function loadOrCreateKey(path: string): Promise<Buffer> {
  try {
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    if (key.length !== 32) throw new Error(`${path} does not hold a 256-bit key`);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32);
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, `${key.toString('base64')}\n`, { mode: 0o600 });
  try {
    await link(temporary, path);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return await loadOrCreateKey(path);
    throw error;
  } finally {
    await unlink(temporary);
  }
}
