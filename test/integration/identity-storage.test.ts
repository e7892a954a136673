import { generateKeyPair } from 'jose';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../../local/azurite.js';
import { openLocalCa } from '../../local/tls/local-ca.js';
import { loadConfig } from '../../src/config.js';
import { PayloadStore } from '../../src/store/payload-store.js';
import { QueuePublisher } from '../../src/store/queue-publisher.js';
import { createStorageClients } from '../../src/store/storage-clients.js';
import { TableRepository } from '../../src/store/table-repository.js';
import { TestTokenCredential } from '../support/test-token-credential.js';
import { uniqueName } from '../support/storage.js';

/**
 * Identity-based storage settings (AzureWebJobsStorage__*ServiceUri + managed identity), end to
 * end: Azurite over https checking OAuth bearer tokens stands in for the storage account, and a
 * test credential stands in for the managed identity.
 */
describe('identity-based storage', () => {
  let directory: string;
  let azurite: RunningAzurite;
  const defaultCas = tls.getCACertificates('default');

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'identity-storage-'));
    const ca = await openLocalCa(join(directory, 'ca'));
    const { certPem, keyPem } = await ca.issueServerCertificate(['127.0.0.1', 'localhost']);
    await writeFile(join(directory, 'cert.pem'), certPem);
    await writeFile(join(directory, 'key.pem'), keyPem);
    tls.setDefaultCACertificates([...defaultCas, ca.certPem]);
    azurite = await startAzuriteOnFreePorts({
      oauth: { certPath: join(directory, 'cert.pem'), keyPath: join(directory, 'key.pem') },
    });
  });

  afterAll(async () => {
    await azurite.stop();
    tls.setDefaultCACertificates(defaultCas);
    await rm(directory, { recursive: true, force: true });
  });

  const settings = () => ({
    AzureWebJobsStorage__tableServiceUri: `https://127.0.0.1:${azurite.ports.table}/devstoreaccount1`,
    AzureWebJobsStorage__queueServiceUri: `https://127.0.0.1:${azurite.ports.queue}/devstoreaccount1`,
    AzureWebJobsStorage__blobServiceUri: `https://127.0.0.1:${azurite.ports.blob}/devstoreaccount1`,
    AzureWebJobsStorage__credential: 'managedidentity',
    AzureWebJobsStorage__clientId: '7d4f0a4e-2f0b-4c55-9a8e-0c1b2d3e4f5a',
    HOME: directory,
  });

  it('reaches Tables, Queues and Blobs with bearer tokens for storage, never a key', async () => {
    const config = loadConfig(settings());
    if (config.storage.kind !== 'identity') throw new Error('expected identity-based storage');
    expect(config.storage.credential).toEqual({ kind: 'managedIdentity', clientId: '7d4f0a4e-2f0b-4c55-9a8e-0c1b2d3e4f5a' });
    const { privateKey } = await generateKeyPair('RS256');
    const credential = new TestTokenCredential(privateKey, { homeTenantId: '3f7a1c2e-5b6d-4e8f-9a0b-1c2d3e4f5a6b' });
    const storage = createStorageClients(config.storage, () => credential);

    const table = uniqueName('identity');
    await storage.tableService.createTable(table);
    const repo = new TableRepository(storage.table(table), {
      toProperties: (v: { n: number }) => ({ n: v.n }),
      fromProperties: (p) => ({ n: Number(p.n) }),
    });
    await repo.create({ partitionKey: 'p', rowKey: 'r' }, { n: 7 });
    expect((await repo.get({ partitionKey: 'p', rowKey: 'r' }))?.value).toEqual({ n: 7 });

    const payloads = new PayloadStore(storage.blobService, uniqueName('identity-'));
    const queue = uniqueName('identity-');
    const published = await new QueuePublisher(storage.queueService, payloads).publish(queue, { big: 'x'.repeat(70_000) });
    if (!published.payloadRef) throw new Error('expected the payload in Blob storage');
    expect((await payloads.get(published.payloadRef)).length).toBeGreaterThan(70_000);
    const { receivedMessageItems } = await storage.queueService.getQueueClient(queue).receiveMessages();
    expect(receivedMessageItems).toHaveLength(1);

    expect(credential.requests.length).toBeGreaterThan(0);
    expect(new Set(credential.requests.flatMap((r) => r.scopes))).toEqual(new Set(['https://storage.azure.com/.default']));
  });

  it('is refused when the identity presents a token for another resource', async () => {
    const config = loadConfig(settings());
    if (config.storage.kind !== 'identity') throw new Error('expected identity-based storage');
    const { privateKey } = await generateKeyPair('RS256');
    const honest = new TestTokenCredential(privateKey, { homeTenantId: '3f7a1c2e-5b6d-4e8f-9a0b-1c2d3e4f5a6b' });
    // A credential that answers every request with a Key Vault token.
    const wrongAudience = { getToken: () => honest.getToken('https://vault.azure.net/.default') };
    const storage = createStorageClients(config.storage, () => wrongAudience);
    // Storage answers an authentication failure with 403 AuthenticationFailed, as Azure does.
    await expect(storage.queueService.getQueueClient(uniqueName('refused-')).create()).rejects.toMatchObject({ statusCode: 403 });
  });
});
