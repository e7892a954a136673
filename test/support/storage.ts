import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createStorageClients, type StorageClients } from '../../src/store/storage-clients.js';

/** Clients for the run's Azurite (see test/integration/global-setup.ts). */
export function testStorage(): StorageClients {
  return createStorageClients(
    { kind: 'connectionString', connectionString: inject('storageConnectionString'), developmentStorage: false },
    () => {
      throw new Error('tests use the Azurite connection string, not a credential');
    },
  );
}

/** A name no other test uses: tables need letters and digits, queues and containers lowercase. */
export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}
