import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalSecretStore } from '../../src/secrets/local-secret-store.js';
import { InvalidSecretNameError, type SecretListing } from '../../src/secrets/secret-store.js';

const VALUE = 'refresh-token-value-that-must-not-hit-the-disk';

interface StoreFileOnDisk {
  format: 2;
  secrets: Record<string, { name: string; versions: { version: string; ciphertext: string }[] }>;
}

describe('LocalSecretStore', () => {
  let directory: string;
  const noAzure = {};

  beforeEach(async () => {
    directory = join(await mkdtemp(join(tmpdir(), 'local-secret-store-')), 'secrets');
  });

  afterEach(async () => {
    await rm(join(directory, '..'), { recursive: true, force: true });
  });

  const dataPath = () => join(directory, 'secrets.json');
  const keyPath = () => join(directory, 'secret-store.key');
  const readData = async () => JSON.parse(await readFile(dataPath(), 'utf8')) as StoreFileOnDisk;

  async function collect(iterable: AsyncIterable<SecretListing>): Promise<SecretListing[]> {
    const items: SecretListing[] = [];
    for await (const item of iterable) items.push(item);
    return items;
  }

  it('returns what was stored, with its properties', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    const expiresOn = new Date('2030-01-02T03:04:05.000Z');
    const stored = await store.set('conn-1-refresh-token', VALUE, { contentType: 'text/plain', tags: { customer: 'c1' }, expiresOn });

    expect(stored).toMatchObject({ name: 'conn-1-refresh-token', enabled: true, contentType: 'text/plain', tags: { customer: 'c1' }, expiresOn });
    expect(stored.version).toMatch(/^[0-9a-f]{32}$/);
    expect(await store.get('conn-1-refresh-token')).toEqual({ ...stored, value: VALUE });
    expect(await store.get('never-set')).toBeUndefined();
  });

  it('keeps every version: the latest by default, an older one by its version', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    const first = await store.set('app-secret', 'first');
    const second = await store.set('app-secret', 'second');

    expect(await store.get('app-secret')).toMatchObject({ version: second.version, value: 'second' });
    expect(await store.get('app-secret', first.version)).toMatchObject({ version: first.version, value: 'first' });
    expect(await store.get('app-secret', 'f'.repeat(32))).toBeUndefined();
  });

  it('lists the latest properties of the secrets under a prefix, without values', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('conn-a-1', 'v1', { tags: { n: '1' } });
    await store.set('conn-a-2', 'v2');
    await store.set('conn-b-1', 'v3');
    const latest = await store.set('conn-a-1', 'v4', { tags: { n: '4' } });

    const listed = await collect(store.list('conn-a-'));
    expect(listed.map((p) => p.name).sort()).toEqual(['conn-a-1', 'conn-a-2']);
    expect(listed.find((p) => p.name === 'conn-a-1')).toMatchObject({ updatedOn: latest.updatedOn, tags: { n: '4' } });
    expect(listed.every((p) => !('value' in p) && !('version' in p))).toBe(true);
    expect(await collect(store.list())).toHaveLength(3);
  });

  it('deletes every version; deleting what is not there returns false', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    const old = await store.set('webhook-secret', 'one');
    await store.set('webhook-secret', 'two');

    expect(await store.delete('webhook-secret')).toBe(true);
    expect(await store.get('webhook-secret')).toBeUndefined();
    expect(await store.get('webhook-secret', old.version)).toBeUndefined();
    expect(await collect(store.list())).toEqual([]);
    expect(await store.delete('webhook-secret')).toBe(false);
  });

  it('treats names that are also Object.prototype members as ordinary names', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    expect(await store.get('constructor')).toBeUndefined();
    expect(await store.delete('toString')).toBe(false);
    await store.set('constructor', 'c');
    expect(await store.get('constructor')).toMatchObject({ value: 'c' });
    expect(await store.delete('constructor')).toBe(true);
  });

  it('writes no plaintext value to disk, and keeps its files owner-only', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('conn-1-refresh-token', VALUE);

    const onDisk = (await readFile(dataPath(), 'utf8')) + (await readFile(keyPath(), 'utf8'));
    expect(onDisk).not.toContain(VALUE);
    expect(onDisk).not.toContain(Buffer.from(VALUE).toString('base64'));
    expect((await stat(keyPath())).mode & 0o777).toBe(0o600);
    expect((await stat(dataPath())).mode & 0o777).toBe(0o600);
    expect((await stat(directory)).mode & 0o777).toBe(0o700);
  });

  it('refuses an altered ciphertext with an error that names the secret, not its value', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('app-secret', VALUE);
    const data = await readData();
    const stored = data.secrets['app-secret']?.versions[0];
    if (!stored) throw new Error('nothing stored');
    const bytes = Buffer.from(stored.ciphertext, 'base64');
    bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    stored.ciphertext = bytes.toString('base64');
    await writeFile(dataPath(), JSON.stringify(data));

    const error: unknown = await store.get('app-secret').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/Secret "app-secret" cannot be decrypted .*altered/);
    expect((error as Error).message).not.toContain(VALUE);
  });

  it('refuses a ciphertext moved to another secret name or version', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('victim', VALUE);
    await store.set('attacker', 'attacker-value');
    await store.set('attacker', 'attacker-value-2');
    const data = await readData();
    const [victim] = data.secrets.victim?.versions ?? [];
    const [older, newer] = data.secrets.attacker?.versions ?? [];
    if (!victim || !older || !newer || !data.secrets.victim) throw new Error('nothing stored');
    newer.ciphertext = victim.ciphertext;
    data.secrets.victim.versions = [{ ...older }];
    await writeFile(dataPath(), JSON.stringify(data));

    await expect(store.get('attacker')).rejects.toThrow(/Secret "attacker" cannot be decrypted/);
    await expect(store.get('victim')).rejects.toThrow(/Secret "victim" cannot be decrypted/);
  });

  it('shares one key between instances on the same folder, even when they start together', async () => {
    const stores = await Promise.all(Array.from({ length: 8 }, () => LocalSecretStore.open(directory, noAzure)));
    const [writer, ...readers] = stores;
    if (!writer) throw new Error('no store');
    await writer.set('shared', VALUE);
    for (const reader of readers) expect(await reader.get('shared')).toMatchObject({ value: VALUE });
    const reopened = await LocalSecretStore.open(directory, noAzure);
    expect(await reopened.get('shared')).toMatchObject({ value: VALUE });
  });

  it('treats names case-insensitively and keeps the case they were first given, as Key Vault does', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('Conn-A-Token', 'first');
    await store.set('conn-a-token', 'second');
    expect(await store.get('CONN-A-TOKEN')).toMatchObject({ name: 'Conn-A-Token', value: 'second' });
    expect((await collect(store.list('conn-a'))).map((s) => s.name)).toEqual(['Conn-A-Token']);
    expect(await store.delete('CONN-a-token')).toBe(true);
    expect(await store.get('Conn-A-Token')).toBeUndefined();
  });

  it('refuses to open in Azure, before touching the disk', async () => {
    await expect(LocalSecretStore.open(directory, { WEBSITE_INSTANCE_ID: 'instance-1' })).rejects.toThrow(
      /does not run in Azure.*SECRET_STORE=keyvault/,
    );
    await expect(stat(directory)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects invalid names as Key Vault would, as a rejected promise', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    for (const name of ['', 'under_score', 'with/slash', '__proto__', 'x'.repeat(128)]) {
      await expect(store.get(name)).rejects.toBeInstanceOf(InvalidSecretNameError);
      await expect(store.set(name, VALUE)).rejects.toBeInstanceOf(InvalidSecretNameError);
      await expect(store.delete(name)).rejects.toBeInstanceOf(InvalidSecretNameError);
    }
    await expect(stat(dataPath())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('pings while the file is readable, and fails with the path when it is not', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.ping();
    await writeFile(dataPath(), '{ not json');
    await expect(store.ping()).rejects.toThrow(new RegExp(`${dataPath()} is unreadable`));
  });
});
