import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { freePorts, isPortFree, waitForPort } from './free-port.js';

/**
 * Azurite, the Azure Storage emulator, started from node_modules as a child process: the
 * Table, Queue and Blob services the connector and the local host use on a developer machine.
 */

/** Azurite's documented development account (public, not a secret). */
export const DEV_ACCOUNT = 'devstoreaccount1';
export const DEV_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuritePorts {
  blob: number;
  queue: number;
  table: number;
}

/** The ports `UseDevelopmentStorage=true` points at. */
export const DEFAULT_AZURITE_PORTS: AzuritePorts = { blob: 10000, queue: 10001, table: 10002 };

export interface AzuriteOptions {
  ports?: AzuritePorts;
  /** Folder for Azurite's data; omitted means in memory, gone when it stops. */
  location?: string;
  /** Megabytes of blob/queue content kept in memory when not persisting. */
  memoryLimitMb?: number;
  /** Azurite's own log lines (otherwise discarded). */
  onOutput?: (line: string) => void;
  /**
   * Serve https with this certificate and accept OAuth bearer tokens (Azurite's "basic" check:
   * issuer, audience and lifetime, not the signature): how identity-based storage settings are
   * exercised without Azure.
   */
  oauth?: { certPath: string; keyPath: string };
}

export interface RunningAzurite {
  ports: AzuritePorts;
  connectionString: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function azuriteConnectionString(ports: AzuritePorts, protocol: 'http' | 'https' = 'http'): string {
  const base = `${protocol}://127.0.0.1`;
  return [
    `DefaultEndpointsProtocol=${protocol}`,
    `AccountName=${DEV_ACCOUNT}`,
    `AccountKey=${DEV_ACCOUNT_KEY}`,
    `BlobEndpoint=${base}:${ports.blob}/${DEV_ACCOUNT}`,
    `QueueEndpoint=${base}:${ports.queue}/${DEV_ACCOUNT}`,
    `TableEndpoint=${base}:${ports.table}/${DEV_ACCOUNT}`,
  ].join(';');
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<RunningAzurite> {
  const ports = options.ports ?? DEFAULT_AZURITE_PORTS;
  for (const service of ['blob', 'queue', 'table'] as const) {
    const port = ports[service];
    if (!(await isPortFree(port))) {
      throw new Error(`Port ${port} for Azurite's ${service} service is already in use (another Azurite or npm start running?).`);
    }
  }
  const require = createRequire(import.meta.url);
  const entry = join(dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'azurite.js');
  const args = [
    entry,
    '--blobHost', '127.0.0.1', '--blobPort', String(ports.blob),
    '--queueHost', '127.0.0.1', '--queuePort', String(ports.queue),
    '--tableHost', '127.0.0.1', '--tablePort', String(ports.table),
    // The Storage SDKs move to new service versions faster than Azurite releases.
    '--skipApiVersionCheck',
    '--disableTelemetry',
  ];
  if (options.location) {
    mkdirSync(options.location, { recursive: true });
    args.push('--location', options.location);
  } else {
    args.push('--inMemoryPersistence', '--extentMemoryLimit', String(options.memoryLimitMb ?? 512));
  }
  if (!options.onOutput) args.push('--silent');
  if (options.oauth) args.push('--oauth', 'basic', '--cert', options.oauth.certPath, '--key', options.oauth.keyPath);

  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { exited: false };
  let output = '';
  const forward = (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-4000);
    for (const line of text.split('\n')) if (line.trim()) options.onOutput?.(line);
  };
  child.stdout.on('data', forward);
  child.stderr.on('data', forward);
  const exit = new Promise<void>((resolve) => child.once('exit', () => { state.exited = true; resolve(); }));

  try {
    await Promise.race([
      Promise.all([waitForPort(ports.blob), waitForPort(ports.queue), waitForPort(ports.table)]),
      exit.then(() => { throw new Error(`Azurite exited during start-up:\n${output}`); }),
    ]);
  } catch (error) {
    if (!state.exited) child.kill('SIGKILL');
    throw error;
  }

  return {
    ports,
    connectionString: azuriteConnectionString(ports, options.oauth ? 'https' : 'http'),
    process: child,
    async stop() {
      if (state.exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/**
 * Azurite on ports the OS reports free, for tests and parallel runs. A free port can still be taken
 * by someone else before Azurite binds it; then it picks again.
 */
export async function startAzuriteOnFreePorts(options: Omit<AzuriteOptions, 'ports'> = {}, attempts = 3): Promise<RunningAzurite> {
  for (let attempt = 1; ; attempt++) {
    const [blob = 0, queue = 0, table = 0] = await freePorts(3);
    try {
      return await startAzurite({ ...options, ports: { blob, queue, table } });
    } catch (error) {
      if (attempt >= attempts) throw error;
    }
  }
}
