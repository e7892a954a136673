import { parseArgs } from 'node:util';
import { dirname, join, relative, resolve } from 'node:path';
import tls from 'node:tls';
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
import { getServices } from '../src/composition.js';
import { prepareDemoConnections, type DemoLink } from './demo-connections.js';
import { DEFAULT_SANDBOX_PORTS, startSandboxDemo, type SandboxDemo } from './sandbox-demo.js';

/**
 * `npm start`: the connector on one machine with no Azure account. Starts Azurite (when the
 * settings point at development storage) and, unless a real Entra app is configured, the sandbox
 * identity platform with a demo tenant; creates the storage layout, runs the functions in the
 * local host, prints where everything is (with consent links to try), and stops all of it on Ctrl-C.
 */

const usage = `Usage: npm start -- [--port 7071] [--azurite-ports 10000,10001,10002] [--sandbox-ports 7072,7073] [--no-sandbox] [--data-dir .local] [--verbose]`;

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '7071' },
      'azurite-ports': { type: 'string' },
      'sandbox-ports': { type: 'string' },
      'no-sandbox': { type: 'boolean', default: false },
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
  let demo: SandboxDemo | undefined;
  let demoLinks: DemoLink[] = [];
  let host: LocalHost | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) {
      process.exit(code);
    }
    stopping = true;
    console.log('\nStopping…');
    await host?.stop().catch((error: unknown) => { consoleHostLog('error', 'The local host did not stop cleanly', error); });
    await demo?.stop();
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
    // A configured app (ENTRA_CLIENT_ID) means real Microsoft; otherwise the sandbox stands in.
    if (settings.values.ENTRA_CLIENT_ID === undefined && !args['no-sandbox']) {
      const [https, browser] = args['sandbox-ports'] ? parsePortList(args['sandbox-ports'], 2, '--sandbox-ports', 'https,browser', true) : [DEFAULT_SANDBOX_PORTS.https, DEFAULT_SANDBOX_PORTS.browser];
      demo = await startSandboxDemo({
        dataDir,
        ports: { https: https ?? 0, browser: browser ?? 0 },
        publicBaseUrl: settings.values.PUBLIC_BASE_URL ?? `http://localhost:${port}`,
        vendorName: settings.values.VENDOR_NAME ?? 'Sandbox vendor app',
      });
      Object.assign(settings.values, demo.settings);
      tls.setDefaultCACertificates([...tls.getCACertificates('default'), demo.sandbox.caPem]);
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
    if (demo) demoLinks = await prepareDemoConnections(demo, await getServices());

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
    ...(demo ? sandboxLines(demo, demoLinks, appDir) : ['Identity: Microsoft Entra ID (ENTRA_CLIENT_ID is set)']),
    '',
    'Press Ctrl-C to stop.',
    '',
  ];
  console.log(lines.join('\n'));
}

function sandboxLines(demo: SandboxDemo, links: DemoLink[], appDir: string): string[] {
  const { directory } = demo;
  const shown = (path: string) => (relative(appDir, path).startsWith('..') ? path : relative(appDir, path));
  return [
    '',
    `Sandbox identity platform (stands in for Microsoft; settings saved in ${shown(demo.settingsPath)}):`,
    `  Authority: ${demo.sandbox.httpsBase}/organizations (TLS from the local CA ${shown(demo.caCertificatePath)})`,
    `  Tenant:    Contoso, ${directory.domain} (${directory.tenantId})`,
    `  Sign in as ${directory.user} (a user) or ${directory.admin} (an administrator); shared mailbox ${directory.sharedMailbox}`,
    '',
    `Try connecting Contoso (customer "contoso"; links expire, a new one is printed on every start):`,
    ...links.map((link) => `  ${`${link.mode}:`.padEnd(13)} ${link.url}`),
  ];
}

function parsePorts(text: string): { blob: number; queue: number; table: number } {
  const [blob, queue, table] = parsePortList(text, 3, '--azurite-ports', 'blob,queue,table');
  return { blob: blob ?? 0, queue: queue ?? 0, table: table ?? 0 };
}

/** Ports from a comma-separated list; 0 (any free port) only where `anyAllowed`. */
function parsePortList(text: string, count: number, option: string, names: string, anyAllowed = false): number[] {
  const ports = text.split(',').map(Number);
  if (ports.length !== count || !ports.every((p) => Number.isInteger(p) && p >= (anyAllowed ? 0 : 1) && p < 65536)) {
    throw new Error(`${option}: "${text}" is not ${count} port numbers (${names}). ${usage}`);
  }
  return ports;
}

await main();
