import type { StorageClients } from '../../src/store/storage-clients.js';

/**
 * Everything a storage account holds, as comparable text: every table entity (by table, partition
 * and row key, with its ETag), every queue's message count and every blob (by container and name,
 * with its ETag). Two snapshots taken around a request say whether it stored anything;
 * `allEntities` reads the entities themselves.
 */

export type StorageSnapshot = Map<string, string>;

/** The Functions host's own bookkeeping (timer schedule status), not the app's data. */
const HOST_CONTAINERS = new Set(['azure-webjobs-hosts', 'azure-webjobs-secrets']);

export async function snapshotStorage(storage: StorageClients): Promise<StorageSnapshot> {
  const snapshot: StorageSnapshot = new Map();
  const [tables, queues, containers] = await Promise.all([
    names(storage.tableService.listTables(), (table) => table.name),
    names(storage.queueService.listQueues(), (queue) => queue.name),
    names(storage.blobService.listContainers(), (container) => (HOST_CONTAINERS.has(container.name) ? undefined : container.name)),
  ]);
  await Promise.all([
    ...tables.map(async (name) => {
      for await (const entity of storage.table(name).listEntities({ queryOptions: { select: ['PartitionKey', 'RowKey'] } })) {
        snapshot.set(`table ${name} ${entity.partitionKey} ${entity.rowKey}`, entity.etag);
      }
    }),
    // Nothing takes messages off the queues while a snapshot matters (the tests switch their functions off): the count tells.
    ...queues.map(async (name) => {
      snapshot.set(`queue ${name}`, String((await storage.queueService.getQueueClient(name).getProperties()).approximateMessagesCount ?? 0));
    }),
    ...containers.map(async (name) => {
      for await (const blob of storage.blobService.getContainerClient(name).listBlobsFlat()) snapshot.set(`blob ${name} ${blob.name}`, blob.properties.etag);
    }),
  ]);
  return snapshot;
}

async function names<T>(items: AsyncIterable<T>, name: (item: T) => string | undefined): Promise<string[]> {
  const found: string[] = [];
  for await (const item of items) {
    const value = name(item);
    if (value) found.push(value);
  }
  return found;
}

/** What changed between two snapshots: "+ key" added, "- key" removed, "~ key" changed. */
export function storageChanges(before: StorageSnapshot, after: StorageSnapshot): string[] {
  const changes: string[] = [];
  for (const [key, value] of after) {
    const was = before.get(key);
    if (was === undefined) changes.push(`+ ${key}`);
    else if (was !== value) changes.push(`~ ${key}`);
  }
  for (const key of before.keys()) if (!after.has(key)) changes.push(`- ${key}`);
  return changes.sort();
}

/** Every entity of every table, with its properties as Table Storage returns them. */
export async function allEntities(storage: StorageClients): Promise<{ table: string; entity: Record<string, unknown> }[]> {
  const found: { table: string; entity: Record<string, unknown> }[] = [];
  for await (const table of storage.tableService.listTables()) {
    if (!table.name) continue;
    for await (const entity of storage.table(table.name).listEntities()) found.push({ table: table.name, entity: { ...entity } });
  }
  return found;
}
