import type { TokenCredential } from '@azure/identity';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { QueueServiceClient } from '@azure/storage-queue';
import { BlobServiceClient } from '@azure/storage-blob';
import type { StorageConfig } from '../config.js';

/** Clients for the one storage account the connector shares with its Functions host. */
export interface StorageClients {
  tableService: TableServiceClient;
  table(name: string): TableClient;
  queueService: QueueServiceClient;
  blobService: BlobServiceClient;
}

export function createStorageClients(
  config: StorageConfig,
  credential: () => TokenCredential,
): StorageClients {
  if (config.kind === 'connectionString') {
    const cs = config.connectionString;
    // Azurite and other loopback endpoints speak plain http; the Tables SDK refuses it unless told.
    const tableOptions = { allowInsecureConnection: config.developmentStorage || /TableEndpoint=http:/i.test(cs) };
    return {
      tableService: TableServiceClient.fromConnectionString(cs, tableOptions),
      table: (name) => TableClient.fromConnectionString(cs, name, tableOptions),
      queueService: QueueServiceClient.fromConnectionString(cs),
      blobService: BlobServiceClient.fromConnectionString(cs),
    };
  }
  const token = credential();
  return {
    tableService: new TableServiceClient(config.tableServiceUri, token),
    table: (name) => new TableClient(config.tableServiceUri, name, token),
    queueService: new QueueServiceClient(config.queueServiceUri, token),
    blobService: new BlobServiceClient(config.blobServiceUri, token),
  };
}
