import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The host.json settings the local host honours, with the Functions host's defaults for
 * anything the file leaves out.
 */
export interface HostSettings {
  routePrefix: string;
  /** How long an invocation may run (host.json functionTimeout; the Flex Consumption default is 30 minutes). */
  functionTimeoutMs: number;
  queues: {
    batchSize: number;
    newBatchThreshold: number;
    maxDequeueCount: number;
    /** Delay before a failed message becomes visible again. */
    visibilityTimeoutMs: number;
    maxPollingIntervalMs: number;
    messageEncoding: 'base64' | 'none';
  };
}

interface HostJson {
  version?: string;
  functionTimeout?: string;
  extensions?: {
    http?: { routePrefix?: string };
    queues?: {
      batchSize?: number;
      newBatchThreshold?: number;
      maxDequeueCount?: number;
      visibilityTimeout?: string;
      maxPollingInterval?: string;
      messageEncoding?: string;
    };
  };
}

export async function readHostSettings(appDir: string): Promise<HostSettings> {
  const file = join(appDir, 'host.json');
  let json: HostJson;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as HostJson;
  } catch (error) {
    throw new Error(`Cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (json.version !== '2.0') throw new Error(`${file}: "version" must be "2.0" (Functions runtime 4.x)`);
  const queues = json.extensions?.queues ?? {};
  const batchSize = queues.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 32) {
    throw new Error(`${file}: extensions.queues.batchSize must be an integer from 1 to 32`);
  }
  const encoding = (queues.messageEncoding ?? 'base64').toLowerCase();
  if (encoding !== 'base64' && encoding !== 'none') {
    throw new Error(`${file}: extensions.queues.messageEncoding must be "base64" or "none"`);
  }
  return {
    routePrefix: (json.extensions?.http?.routePrefix ?? 'api').replace(/^\/+|\/+$/g, ''),
    functionTimeoutMs: parseTimeSpan(json.functionTimeout ?? '00:30:00', 'functionTimeout'),
    queues: {
      batchSize,
      newBatchThreshold: queues.newBatchThreshold ?? Math.floor(batchSize / 2),
      maxDequeueCount: queues.maxDequeueCount ?? 5,
      visibilityTimeoutMs: parseTimeSpan(queues.visibilityTimeout ?? '00:00:00', 'extensions.queues.visibilityTimeout'),
      maxPollingIntervalMs: Math.max(
        100,
        parseTimeSpan(queues.maxPollingInterval ?? '00:01:00', 'extensions.queues.maxPollingInterval'),
      ),
      messageEncoding: encoding,
    },
  };
}

/** .NET TimeSpan text as host.json uses it: [d.]hh:mm:ss[.fff] */
export function parseTimeSpan(text: string, setting: string): number {
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$/.exec(text.trim());
  if (!match) throw new Error(`host.json ${setting}: "${text}" is not a time span like 00:00:30`);
  const [, days = '0', hours = '0', minutes = '0', seconds = '0', fraction = '0'] = match;
  return (
    ((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000 +
    Number(seconds) * 1000 +
    Math.round(Number(`0.${fraction}`) * 1000)
  );
}

/** Binding expressions like %QueueName% take their value from app settings, as in Azure. */
export function resolveAppSettings(value: string, env: NodeJS.ProcessEnv, what: string): string {
  return value.replace(/%([^%]+)%/g, (_, name: string) => {
    const setting = env[name];
    if (setting === undefined) throw new Error(`${what}: app setting "${name}" (referenced as %${name}%) is not set`);
    return setting;
  });
}
