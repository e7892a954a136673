import type { StorageClients } from './storage-clients.js';
import { STORAGE_LAYOUT } from './storage-layout.js';

/** Creates whatever of the storage layout is missing; safe to run at every start. */
export async function provisionStorage(storage: StorageClients, layout = STORAGE_LAYOUT): Promise<void> {
  await Promise.all([
    ...layout.tables.map((name) => storage.tableService.createTable(name)),
    ...layout.queues.map((name) => storage.queueService.getQueueClient(name).createIfNotExists()),
    ...layout.containers.map((name) => storage.blobService.getContainerClient(name).createIfNotExists()),
  ]);
}
