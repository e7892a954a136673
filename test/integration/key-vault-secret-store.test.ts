import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { TokenCredential } from '@azure/identity';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import { generateKeyPair } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openLocalCa } from '../../local/tls/local-ca.js';
import {
  createKeyVaultSecretStore,
  KeyVaultSecretStore,
  KeyVaultSecretStoreError,
} from '../../src/secrets/key-vault-secret-store.js';
import { InvalidSecretNameError, type SecretListing } from '../../src/secrets/secret-store.js';
import {
  KEY_VAULT_API_VERSION,
  startKeyVaultServer,
  type KeyVaultServer,
  type KeyVaultServerOptions,
} from '../support/key-vault-server.js';
import { TestTokenCredential } from '../support/test-token-credential.js';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

const VAULT_TENANT = randomUUID();
const VAULT_SCOPE = 'https://vault.azure.net/.default';

describe('KeyVaultSecretStore through the real SecretClient, against a local Key Vault', () => {
  let directory: string;
  let caDirectory: string;
  let identity: KeyPair;
  let defaultCas: string[];
  const servers: KeyVaultServer[] = [];

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'key-vault-store-'));
    caDirectory = join(directory, 'ca');
    const ca = await openLocalCa(caDirectory);
    // Trust our CA the way the connector's process would, and only inside this test file's worker.
    defaultCas = tls.getCACertificates('default');
    tls.setDefaultCACertificates([...defaultCas, ca.certPem]);
    identity = await generateKeyPair('RS256');
  });

  afterEach(async () => {
    // The ping test stops its vault itself; stopping it again only reports that it is not running.
    await Promise.all(servers.splice(0).map((server) => server.stop().catch(() => undefined)));
  });

  afterAll(async () => {
    tls.setDefaultCACertificates(defaultCas);
    await rm(directory, { recursive: true, force: true });
  });

  async function vault(options: Partial<KeyVaultServerOptions> = {}): Promise<KeyVaultServer> {
    const server = await startKeyVaultServer({ tenantId: VAULT_TENANT, identityKey: identity.publicKey, caDirectory, ...options });
    servers.push(server);
    return server;
  }

  /** The identity's home tenant differs from the vault's, so only a token for the challenge's tenant works. */
  function credentialFor(keys: KeyPair = identity): TestTokenCredential {
    return new TestTokenCredential(keys.privateKey, { homeTenantId: randomUUID() });
  }

  function storeFor(server: KeyVaultServer, credential: TokenCredential, clientOptions: SecretClientOptions = {}): KeyVaultSecretStore {
    return new KeyVaultSecretStore(server.url, credential, {
      clientOptions: { disableChallengeResourceVerification: true, ...clientOptions },
      pollIntervalMs: 10,
    });
  }

  function served(server: KeyVaultServer, from = 0): string[] {
    return server.requests.slice(from).map((r) => `${r.method} ${r.path} ${r.authorization} ${r.status}`);
  }

  async function collect(iterable: AsyncIterable<SecretListing>): Promise<SecretListing[]> {
    const items: SecretListing[] = [];
    for await (const item of iterable) items.push(item);
    return items;
  }

  it('answers the first call with a challenge, then authenticates once with a token for the challenge tenant', async () => {
    const server = await vault();
    const credential = credentialFor();
    const store = storeFor(server, credential);

    await store.set('challenge-first', 'value-1');
    expect(served(server)).toEqual([
      'PUT /secrets/challenge-first missing 401',
      'PUT /secrets/challenge-first accepted 200',
    ]);
    expect(credential.requests).toEqual([{ scopes: [VAULT_SCOPE], tenantId: VAULT_TENANT }]);

    await store.get('challenge-first');
    await collect(store.list());
    await store.ping();
    expect(served(server, 2).every((line) => line.includes(' accepted 200'))).toBe(true);
    expect(credential.requests).toHaveLength(1);
    expect(new Set(server.requests.map((r) => r.apiVersion))).toEqual(new Set([KEY_VAULT_API_VERSION]));
  });

  it('keeps versions: get returns the latest, or an older one by its version, with its properties', async () => {
    const server = await vault();
    const store = storeFor(server, credentialFor());
    const expiresOn = new Date('2031-02-03T04:05:06.000Z');

    const first = await store.set('app-credential', 'first-value', {
      contentType: 'text/plain',
      tags: { customer: 'c1' },
      expiresOn,
    });
    const second = await store.set('app-credential', 'second-value');

    expect(first.version).toMatch(/^[0-9a-f]{32}$/);
    expect(second.version).not.toBe(first.version);
    expect(await store.get('app-credential')).toMatchObject({ name: 'app-credential', version: second.version, value: 'second-value' });
    const older = await store.get('app-credential', first.version);
    expect(older).toMatchObject({
      name: 'app-credential',
      version: first.version,
      value: 'first-value',
      enabled: true,
      contentType: 'text/plain',
      tags: { customer: 'c1' },
      expiresOn,
    });
    expect(older?.createdOn).toBeInstanceOf(Date);

    expect(await store.get('never-set')).toBeUndefined();
    expect(await store.get('app-credential', 'f'.repeat(32))).toBeUndefined();
    const before = server.requests.length;
    expect(await store.get('app-credential', '../secrets')).toBeUndefined();
    expect(server.requests).toHaveLength(before);
  });

  it('lists the properties of the secrets under a prefix, across pages, never their values', async () => {
    const server = await vault({ pageSize: 2 });
    const store = storeFor(server, credentialFor());
    for (const name of ['conn-a-1', 'conn-a-2', 'conn-b-1', 'conn-a-3', 'other']) {
      await store.set(name, `value-of-${name}`, { tags: { name } });
    }
    await store.set('conn-a-2', 'value-of-conn-a-2-again', { tags: { name: 'conn-a-2', revision: '2' } });

    const listed = await collect(store.list('conn-a-'));
    expect(listed.map((p) => p.name)).toEqual(['conn-a-1', 'conn-a-2', 'conn-a-3']);
    expect(listed.map((p) => p.tags)).toEqual([{ name: 'conn-a-1' }, { name: 'conn-a-2', revision: '2' }, { name: 'conn-a-3' }]);
    expect(JSON.stringify(listed)).not.toMatch(/value-of/);
    // Key Vault lists secrets, not versions: its items carry no version id.
    expect(listed.every((p) => !('version' in p))).toBe(true);
    expect((await collect(store.list('CONN-A-'))).map((p) => p.name)).toEqual(['conn-a-1', 'conn-a-2', 'conn-a-3']);
    expect((await collect(store.list())).map((p) => p.name)).toHaveLength(5);
    expect(served(server).filter((line) => line.startsWith('GET /secrets ')).length).toBeGreaterThan(2);
  });

  it('deletes every version and waits until Key Vault has finished; a missing name deletes as false', async () => {
    const server = await vault({ pendingPolls: 2 });
    const store = storeFor(server, credentialFor());
    const { version } = await store.set('webhook-secret', 'whsec-1');
    await store.set('webhook-secret', 'whsec-2');

    const from = server.requests.length;
    expect(await store.delete('webhook-secret')).toBe(true);
    expect(served(server, from)).toEqual([
      'DELETE /secrets/webhook-secret accepted 200',
      'GET /deletedsecrets/webhook-secret accepted 404',
      'GET /deletedsecrets/webhook-secret accepted 404',
      'GET /deletedsecrets/webhook-secret accepted 200',
    ]);
    expect(await store.get('webhook-secret')).toBeUndefined();
    expect(await store.get('webhook-secret', version)).toBeUndefined();
    expect(await collect(store.list('webhook-'))).toEqual([]);
    expect(await store.delete('webhook-secret')).toBe(false);
    expect(await store.delete('never-existed')).toBe(false);
  });

  it('re-creates a deleted name by recovering it first, as when a connection is removed and added again', async () => {
    const server = await vault({ pendingPolls: 1 });
    const store = storeFor(server, credentialFor());
    const old = await store.set('conn-42-refresh-token', 'old-token');
    await store.delete('conn-42-refresh-token');

    const from = server.requests.length;
    const renewed = await store.set('conn-42-refresh-token', 'new-token');
    expect(served(server, from)).toEqual([
      'PUT /secrets/conn-42-refresh-token accepted 409',
      'GET /secrets/conn-42-refresh-token/ accepted 404',
      'POST /deletedsecrets/conn-42-refresh-token/recover accepted 200',
      'GET /secrets/conn-42-refresh-token/ accepted 404',
      'GET /secrets/conn-42-refresh-token/ accepted 200',
      'PUT /secrets/conn-42-refresh-token accepted 200',
    ]);
    expect(await store.get('conn-42-refresh-token')).toMatchObject({ version: renewed.version, value: 'new-token' });
    // Purge protection: the recovery brings the old versions back too.
    expect(await store.get('conn-42-refresh-token', old.version)).toMatchObject({ value: 'old-token' });
  });

  it('retries a write that still meets "being recovered" after the recovery reported itself done', async () => {
    const server = await vault({ lingeringRecoveryConflicts: 2 });
    const store = storeFor(server, credentialFor());
    await store.set('conn-7-token-cache', 'cache-1');
    await store.delete('conn-7-token-cache');

    await store.set('conn-7-token-cache', 'cache-2');
    expect(served(server).filter((line) => line.startsWith('PUT ') && line.endsWith(' 409'))).toHaveLength(3);
    expect(await store.get('conn-7-token-cache')).toMatchObject({ value: 'cache-2' });
  });

  it('says that a disabled secret is disabled and how to use it again, instead of asking for a role', async () => {
    const server = await vault();
    const credential = credentialFor();
    const store = storeFor(server, credential);
    // An operator disables a version in the vault, e.g. to withdraw a leaked credential.
    const operator = new SecretClient(server.url, credential, { disableChallengeResourceVerification: true });
    const older = await store.set('app-credential', 'older-value');
    const { properties: disabled } = await operator.setSecret('app-credential', 'withdrawn-value', { enabled: false });
    const disabledVersion = disabled.version ?? '';

    const error: unknown = await store.get('app-credential').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyVaultSecretStoreError);
    const failure = error as KeyVaultSecretStoreError;
    expect(failure).toMatchObject({ statusCode: 403, code: 'Forbidden' });
    expect(failure.message).toBe(
      `Key Vault ${server.url} could not read secret "app-credential" (403 Forbidden SecretDisabled): ` +
        'Operation get is not allowed on a disabled secret. Its latest version is disabled in the vault. ' +
        `If it should still be used, enable it (az keyvault secret set-attributes --id ${server.url}/secrets/app-credential --enabled true); ` +
        'otherwise set a new value for the secret, which becomes its enabled latest version.',
    );
    await expect(store.get('app-credential', disabledVersion)).rejects.toThrow(
      `That version is disabled in the vault. If it should still be used, enable it (az keyvault secret set-attributes --id ${server.url}/secrets/app-credential/${disabledVersion} --enabled true)`,
    );
    // Only the disabled version is out of reach; lists show it as disabled.
    expect(await store.get('app-credential', older.version)).toMatchObject({ value: 'older-value' });
    expect(await collect(store.list('app-credential'))).toMatchObject([{ name: 'app-credential', enabled: false }]);

    // Both ways out work: enabling the version, or setting a new value.
    await operator.updateSecretProperties('app-credential', disabledVersion, { enabled: true });
    expect(await store.get('app-credential')).toMatchObject({ version: disabledVersion, value: 'withdrawn-value', enabled: true });
    await operator.updateSecretProperties('app-credential', disabledVersion, { enabled: false });
    const renewed = await store.set('app-credential', 'new-value');
    expect(await store.get('app-credential')).toMatchObject({ version: renewed.version, value: 'new-value', enabled: true });
  });

  it('deletes a disabled secret and re-creates its name, although Key Vault will not show it while it is disabled', async () => {
    const server = await vault({ pendingPolls: 1 });
    const credential = credentialFor();
    const store = storeFor(server, credential);
    const operator = new SecretClient(server.url, credential, { disableChallengeResourceVerification: true });
    await operator.setSecret('webhook-secret', 'withdrawn', { enabled: false });

    const from = server.requests.length;
    expect(await store.delete('webhook-secret')).toBe(true);
    const renewed = await store.set('webhook-secret', 'renewed');
    // The SDK's pollers take the 403 for "done": the secret is there, just not readable.
    expect(served(server, from)).toEqual([
      'DELETE /secrets/webhook-secret missing 401',
      'DELETE /secrets/webhook-secret accepted 200',
      'GET /deletedsecrets/webhook-secret accepted 404',
      'GET /deletedsecrets/webhook-secret accepted 403',
      'PUT /secrets/webhook-secret accepted 409',
      'GET /secrets/webhook-secret/ accepted 404',
      'POST /deletedsecrets/webhook-secret/recover accepted 200',
      'GET /secrets/webhook-secret/ accepted 404',
      'GET /secrets/webhook-secret/ accepted 403',
      'PUT /secrets/webhook-secret accepted 200',
    ]);
    expect(await store.get('webhook-secret')).toMatchObject({ version: renewed.version, value: 'renewed' });
  });

  it('rejects invalid names before sending anything', async () => {
    const server = await vault();
    const credential = credentialFor();
    const store = storeFor(server, credential);
    for (const name of ['', 'under_score', 'with/slash', 'dot.ted', 'x'.repeat(128), 'ünïcode']) {
      await expect(store.get(name)).rejects.toBeInstanceOf(InvalidSecretNameError);
      await expect(store.set(name, 'value')).rejects.toBeInstanceOf(InvalidSecretNameError);
      await expect(store.delete(name)).rejects.toBeInstanceOf(InvalidSecretNameError);
    }
    expect(server.requests).toEqual([]);
    expect(credential.requests).toEqual([]);
  });

  it('fails with a clear error, free of tokens and values, when the vault does not trust the token', async () => {
    const server = await vault();
    const stranger = credentialFor(await generateKeyPair('RS256'));
    const store = storeFor(server, stranger);

    const error: unknown = await store.set('app-secret', 'do-not-leak-this-value').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyVaultSecretStoreError);
    const failure = error as KeyVaultSecretStoreError;
    expect(failure.statusCode).toBe(401);
    expect(failure.code).toBe('Unauthorized');
    expect(failure.message).toContain('could not write secret "app-secret"');
    expect(failure.message).toContain('rejected the token');
    expect(failure.cause).toBeUndefined();
    expect(stranger.issued.length).toBeGreaterThan(0);
    const everything = `${failure.message}\n${failure.stack ?? ''}\n${JSON.stringify(failure)}`;
    for (const token of stranger.issued) expect(everything).not.toContain(token);
    expect(everything).not.toContain('do-not-leak-this-value');
    expect(served(server)).toEqual([
      'PUT /secrets/app-secret missing 401',
      'PUT /secrets/app-secret rejected 401',
    ]);
  });

  it.each([
    {
      token: "for the identity's home tenant instead of the vault's",
      credential: (): TokenCredential => {
        const inner = credentialFor();
        return { getToken: (scopes, options) => inner.getToken(scopes, { ...options, tenantId: undefined }) };
      },
    },
    {
      token: 'for another resource',
      credential: (): TokenCredential => {
        const inner = credentialFor();
        return { getToken: (_scopes, options) => inner.getToken('https://storage.azure.com/.default', options) };
      },
    },
    {
      token: 'that has expired',
      credential: (): TokenCredential => new TestTokenCredential(identity.privateKey, { homeTenantId: VAULT_TENANT, lifetimeSeconds: -120 }),
    },
  ])('is refused a token $token', async ({ credential }) => {
    const server = await vault();
    const error: unknown = await storeFor(server, credential()).get('app-secret').catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'KeyVaultSecretStoreError', statusCode: 401, code: 'Unauthorized' });
    expect(served(server)).toEqual(['GET /secrets/app-secret/ missing 401', 'GET /secrets/app-secret/ rejected 401']);
  });

  it('pings a reachable vault, and fails the ping once the vault is gone', async () => {
    const server = await vault();
    // The SDK retries a refused connection with back-off; one attempt shows the same failure sooner.
    const store = storeFor(server, credentialFor(), { retryOptions: { maxRetries: 0 } });
    await store.ping();
    expect(served(server).at(-1)).toBe('GET /secrets accepted 200');

    await server.stop();
    const error: unknown = await store.ping().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyVaultSecretStoreError);
    // A kept-alive connection to the stopped vault resets; a new one is refused.
    expect((error as Error).message).toMatch(/could not list secrets \((ECONNREFUSED|ECONNRESET)\).*reachable/s);
  });

  it('builds the production store without test options, so a vault outside vault.azure.net is refused', async () => {
    const server = await vault();
    const store = createKeyVaultSecretStore({ vaultUrl: server.url }, credentialFor());
    expect(store.kind).toBe('keyvault');
    await expect(store.get('anything')).rejects.toThrow(/challenge resource 'vault\.azure\.net' does not match/);
  });
});
