import { parseArgs } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.js';
import { createAzureCredential } from '../src/identity/azure-credential.js';
import { provisionStorage } from '../src/store/provision-storage.js';
import { createStorageClients } from '../src/store/storage-clients.js';
import { redactText } from '../src/telemetry/redact.js';
import { startAzurite, DEFAULT_AZURITE_PORTS, type RunningAzurite } from './azurite.js';
import { consoleFunctionLog, consoleHostLog } from './host/console-log.js';
import { startLocalHost, type LocalHost } from './host/host.js';
import { readLocalSettings } from '../src/local-settings.js';

/**
 * `npm start`: the connector on one machine with no Azure account. Starts Azurite (when the
 * settings point at development storage), creates the storage layout, runs the functions in the
 * local host, prints where everything is, and stops all of it on Ctrl-C.
 */

const usage = `Usage: npm start -- [--port 7071] [--azurite-ports 10000,10001,10002] [--data-dir .local] [--verbose]`;

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '7071' },
      'azurite-ports': { type: 'string' },
      'data-dir': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (args.help) {
    console.log(usage);
    return;
  }
  const appDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const dataDir = resolve(appDir, args['data-dir'] ?? '.local');
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${args.port}" is not a port number. ${usage}`);

  const settings = await readLocalSettings(appDir, process.env);
  let azurite: RunningAzurite | undefined;
  let host: LocalHost | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) {
      process.exit(code);
    }
    stopping = true;
    console.log('\nStopping…');
    await host?.stop().catch((error: unknown) => { consoleHostLog('error', 'The local host did not stop cleanly', error); });
    await azurite?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    if (/^\s*UseDevelopmentStorage\s*=\s*true/i.test(settings.values.AzureWebJobsStorage ?? '')) {
      const ports = args['azurite-ports'] ? parsePorts(args['azurite-ports']) : DEFAULT_AZURITE_PORTS;
      azurite = await startAzurite({ ports, location: join(dataDir, 'azurite') });
      settings.values.AzureWebJobsStorage = azurite.connectionString;
    }
    Object.assign(process.env, settings.values);
    // The connector validates the same settings again when the app starts; doing it here first
    // stops npm start before anything else runs, and gives the storage to provision.
    const { storage: storageConfig } = loadConfig(process.env);
    const storage = createStorageClients(storageConfig, () => {
      if (storageConfig.kind !== 'identity') throw new Error('connection-string storage needs no credential');
      return createAzureCredential(storageConfig.credential);
    });
    try {
      await provisionStorage(storage);
    } catch (error) {
      if (azurite) throw error;
      consoleHostLog('warn', 'Could not create the storage layout in the configured account (the health check will say what is missing)', error);
    }

    host = await startLocalHost({
      appDir,
      port,
      log: consoleHostLog,
      functionLog: consoleFunctionLog({ verbose: args.verbose }),
    });
  } catch (error) {
    console.error(`\nnpm start failed: ${redactText(error instanceof Error ? error.message : String(error))}`);
    await stop(1);
    return;
  }

  const baseUrl = host.baseUrl;
  const lines = [
    '',
    `m365-connector is running locally${settings.source ? ` (settings: ${settings.source})` : ' (embedded local defaults; copy local.settings.sample.json to local.settings.json to change them)'}`,
    '',
    'Functions:',
    ...host.functions.map((f) =>
      f.trigger === 'http'
        ? `  ${f.name.padEnd(24)} [${(f.methods ?? []).join(',') || 'ANY'}] ${baseUrl}${f.detail}`
        : `  ${f.name.padEnd(24)} ${f.trigger === 'timer' ? 'timer' : 'queue'}: ${f.detail}`,
    ),
    '',
    azurite
      ? `Storage: Azurite (blob ${azurite.ports.blob}, queue ${azurite.ports.queue}, table ${azurite.ports.table}), data in ${join(dataDir, 'azurite')}`
      : 'Storage: from AzureWebJobsStorage',
    `Health:  ${host.baseUrl}/api/health`,
    `API:     ${host.baseUrl}/api/openapi.json (make a key: npm run connector -- keys create --all)`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ];
  console.log(lines.join('\n'));
}

function parsePorts(text: string): { blob: number; queue: number; table: number } {
  const [blob, queue, table] = text.split(',').map(Number);
  if (![blob, queue, table].every((p) => Number.isInteger(p) && p !== undefined && p > 0 && p < 65536)) {
    throw new Error(`--azurite-ports: "${text}" is not three port numbers (blob,queue,table). ${usage}`);
  }
  return { blob: blob ?? 0, queue: queue ?? 0, table: table ?? 0 };
}

await main();
