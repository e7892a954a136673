import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { glob, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FunctionRegistry, installCoreApi, type RegisteredFunction } from './core-api.js';
import type { RpcLogLevel, RpcTypedData } from './core-types.js';
import type { HostLog } from './host-log.js';
import { readHostSettings, resolveAppSettings } from './host-json.js';
import { DEFAULT_BODY_LIMIT_BYTES, httpRoutes, startHttpListener } from './http-listener.js';
import { invoke, type InvocationLogger } from './invoke.js';
import { QueueListener } from './queue-listener.js';
import { TimerScheduler } from './timer-scheduler.js';

/**
 * Runs a Functions app's registrations without Azure Functions Core Tools: loads the entry
 * files named by package.json "main" through the worker's module contract, runs the app's
 * start hooks, then serves its HTTP, timer and storage-queue triggers.
 */

export interface LocalHostOptions {
  /** The function app folder: package.json and host.json live here. */
  appDir: string;
  /** HTTP port; 0 picks a free one. */
  port: number;
  /** App settings: connection strings and %setting% values. Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** The host's own messages. */
  log?: HostLog;
  /** Log lines written by functions (context.log) and the host's per-invocation messages. */
  functionLog?: InvocationLogger;
  /** Names the timer schedule status blobs, as the host id does in Azure. */
  hostId?: string;
  /** Entry files instead of package.json "main" (tests load the TypeScript sources). */
  main?: string;
}

export interface FunctionSummary {
  name: string;
  trigger: 'http' | 'timer' | 'queue';
  /** Route (with prefix) for HTTP, schedule for timers, queue name for queues. */
  detail: string;
  methods?: string[];
}

export interface LocalHost {
  port: number;
  baseUrl: string;
  functions: FunctionSummary[];
  stop(): Promise<void>;
}

const quiet: HostLog = () => undefined;

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const env = options.env ?? process.env;
  const log = options.log ?? quiet;
  const functionLog = options.functionLog ?? (() => undefined);
  const appDir = resolve(options.appDir);

  const registry = installCoreApi((level, category, message) => {
    functionLog({ functionName: '', invocationId: '', level, category, message });
  });
  await loadEntryPoints(appDir, registry, options.main);
  registry.lock();
  if (!registry.programmingModel) {
    throw new Error('The app registered no programming model: its entry files must import @azure/functions.');
  }
  await registry.programmingModel.getCapabilities?.({});
  await registry.runHooks('appStart', { hookData: {}, appHookData: registry.appHookData, functionAppDirectory: appDir });

  const settings = await readHostSettings(appDir);
  // As the Functions host: app setting AzureWebJobs.<name>.Disabled=true keeps a function from running.
  const functions = [...registry.functions.values()].filter((fn) => !isDisabled(env[`AzureWebJobs.${fn.metadata.name}.Disabled`]));
  const summaries: FunctionSummary[] = [];

  const run = async (fn: RegisteredFunction, reason: string, inputName: string, data: RpcTypedData, triggerMetadata: Record<string, RpcTypedData>) => {
    const invocationId = crypto.randomUUID();
    const name = fn.metadata.name;
    const started = performance.now();
    const system = (level: RpcLogLevel, message: string) => {
      functionLog({ functionName: name, invocationId, level, category: 'system', message });
    };
    system('information', `Executing 'Functions.${name}' (Reason='${reason}', Id=${invocationId})`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const response = await Promise.race([
        invoke(registry, fn, { inputData: [{ name: inputName, data }], triggerMetadata }, functionLog, invocationId),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            // The host would now restart the worker; here the handler runs on, but its outcome no longer counts.
            reject(new Error(`Timeout value of ${formatTimeSpan(settings.functionTimeoutMs)} exceeded by function 'Functions.${name}' (Id: '${invocationId}')`));
          }, settings.functionTimeoutMs);
        }),
      ]);
      system('information', `Executed 'Functions.${name}' (Succeeded, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms)`);
      return response;
    } catch (error) {
      system('error', `Executed 'Functions.${name}' (Failed, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms): ${describe(error)}`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };

  const timerFunctions: RegisteredFunction[] = [];
  const queueFunctions: RegisteredFunction[] = [];
  for (const fn of functions) {
    const type = FunctionRegistry.triggerOf(fn.metadata).binding.type?.toLowerCase();
    if (type === 'timertrigger') timerFunctions.push(fn);
    else if (type === 'queuetrigger') queueFunctions.push(fn);
    else if (type !== 'httptrigger') {
      throw new Error(`Function "${fn.metadata.name}" uses a ${String(type)} trigger, which the local host does not run.`);
    }
  }

  const connection = (fn: RegisteredFunction): string => {
    const binding = FunctionRegistry.triggerOf(fn.metadata).binding;
    const setting = typeof binding.connection === 'string' && binding.connection !== '' ? binding.connection : 'AzureWebJobsStorage';
    const value = env[setting];
    if (!value) {
      throw new Error(`Function "${fn.metadata.name}": the local host needs a storage connection string in app setting "${setting}" (UseDevelopmentStorage=true for Azurite).`);
    }
    return value;
  };

  // Timer schedule status lives where the Functions host keeps it: container azure-webjobs-hosts.
  const statusContainer =
    timerFunctions.length > 0 && env.AzureWebJobsStorage
      ? BlobServiceClient.fromConnectionString(env.AzureWebJobsStorage).getContainerClient('azure-webjobs-hosts')
      : undefined;
  await statusContainer?.createIfNotExists();
  const scheduler = new TimerScheduler(statusContainer, options.hostId ?? 'local', log);
  for (const fn of timerFunctions) {
    const { name: inputName, binding } = FunctionRegistry.triggerOf(fn.metadata);
    const schedule = resolveAppSettings(typeof binding.schedule === 'string' ? binding.schedule : '', env, `Timer "${fn.metadata.name}" schedule`);
    scheduler.start({
      functionName: fn.metadata.name,
      schedule,
      runOnStartup: binding.runOnStartup === true,
      useMonitor: typeof binding.useMonitor === 'boolean' ? binding.useMonitor : undefined,
      run: async (info) => {
        await run(fn, info.IsPastDue ? 'Timer fired later than scheduled' : 'Timer fired', inputName, { json: JSON.stringify(info) }, {});
      },
    });
    summaries.push({ name: fn.metadata.name, trigger: 'timer', detail: schedule });
  }

  const listeners = new Map<string, QueueListener>();
  for (const fn of queueFunctions) {
    const { name: inputName, binding } = FunctionRegistry.triggerOf(fn.metadata);
    const queueName = resolveAppSettings(typeof binding.queueName === 'string' ? binding.queueName : '', env, `Queue trigger "${fn.metadata.name}" queueName`);
    if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(queueName)) {
      throw new Error(`Function "${fn.metadata.name}": "${queueName}" is not a valid queue name (3-63 lowercase letters, digits and single hyphens).`);
    }
    const cs = connection(fn);
    let listener = listeners.get(cs);
    if (!listener) {
      listener = new QueueListener(QueueServiceClient.fromConnectionString(cs), settings.queues, log);
      listeners.set(cs, listener);
    }
    listener.start({
      functionName: fn.metadata.name,
      queueName,
      run: async ({ data, triggerMetadata }) => {
        await run(fn, `New queue message detected on '${queueName}'`, inputName, data, triggerMetadata);
      },
    });
    summaries.push({ name: fn.metadata.name, trigger: 'queue', detail: queueName });
  }

  const routes = httpRoutes(functions);
  const http = await startHttpListener({
    routes,
    routePrefix: settings.routePrefix,
    port: options.port,
    bodyLimitBytes: Number(env.FUNCTIONS_REQUEST_BODY_SIZE_LIMIT ?? DEFAULT_BODY_LIMIT_BYTES),
    log,
    invoke: (fn, triggerName, request) =>
      run(fn, `This function was programmatically called via the host APIs.`, triggerName, { http: request }, {}),
  });
  for (const route of routes) {
    summaries.push({
      name: route.fn.metadata.name,
      trigger: 'http',
      detail: `/${[settings.routePrefix, route.route.template].filter((p) => p !== '').join('/')}`,
      methods: [...route.methods],
    });
  }

  return {
    port: http.port,
    baseUrl: `http://localhost:${http.port}`,
    functions: summaries,
    async stop() {
      await http.close();
      await scheduler.stop();
      await Promise.all([...listeners.values()].map((l) => l.stop()));
      await registry.runHooks('appTerminate', { hookData: {}, appHookData: registry.appHookData });
    },
  };
}

async function loadEntryPoints(appDir: string, registry: FunctionRegistry, main: string | undefined): Promise<void> {
  const packageJson = JSON.parse(await readFile(join(appDir, 'package.json'), 'utf8')) as { main?: string };
  const pattern = main ?? packageJson.main ?? 'index.js';
  const files: string[] = [];
  for await (const file of glob(pattern, { cwd: appDir })) files.push(file);
  if (files.length === 0) {
    throw new Error(`package.json "main" is "${pattern}", which matches no file in ${appDir}. Run the build first (npm run build).`);
  }
  for (const file of files.sort()) {
    const path = join(appDir, file);
    registry.currentEntryPoint = path;
    try {
      await import(pathToFileURL(path).href);
    } catch (error) {
      throw new Error(`Worker was unable to load entry point "${file}": ${describe(error)}`, { cause: error });
    } finally {
      registry.currentEntryPoint = undefined;
    }
  }
}

function formatTimeSpan(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isDisabled(setting: string | undefined): boolean {
  return setting !== undefined && ['true', '1'].includes(setting.trim().toLowerCase());
}
