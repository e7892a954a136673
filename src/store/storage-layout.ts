/**
 * Every table, queue and blob container the connector uses, in one place: `npm start` creates
 * them in Azurite, the deployment creates them in Azure, code refers to them by these names.
 */
export const CONTAINERS = {
  /** Payloads too large for a queue message (see QueuePublisher). */
  payloads: 'payloads',
} as const;

export const TABLES = {} as const satisfies Record<string, string>;

export const QUEUES = {} as const satisfies Record<string, string>;

export const STORAGE_LAYOUT = {
  tables: Object.values<string>(TABLES),
  queues: Object.values<string>(QUEUES),
  containers: Object.values<string>(CONTAINERS),
};
