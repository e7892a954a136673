/**
 * Every table, queue and blob container the connector uses, in one place: `npm start` creates
 * them in Azurite, the deployment creates them in Azure, code refers to them by these names.
 * Tables and queues join the layout with the features that use them.
 */
export const CONTAINERS = {
  /** Payloads too large for a queue message (see QueuePublisher). */
  payloads: 'payloads',
} as const;

export interface StorageLayout {
  tables: readonly string[];
  queues: readonly string[];
  containers: readonly string[];
}

export const STORAGE_LAYOUT: StorageLayout = {
  tables: [],
  queues: [],
  containers: Object.values(CONTAINERS),
};
