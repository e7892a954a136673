import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileIfExists } from './read-file-if-exists.js';

/**
 * App settings for a local run, the way Core Tools assembles them: the process environment wins,
 * then the Values of local.settings.json, then the connector's embedded local defaults (Azurite
 * and the local secret store), so `npm start` needs no file at all.
 */

export const LOCAL_DEFAULTS: Readonly<Record<string, string>> = {
  FUNCTIONS_WORKER_RUNTIME: 'node',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  SECRET_STORE: 'local',
  LOG_LEVEL: 'info',
};

/** Written by `npm start` into its data folder when it runs the sandbox identity platform. */
export const SANDBOX_SETTINGS_FILE = 'sandbox.settings.json';

export interface LocalSettings {
  values: Record<string, string>;
  /** local.settings.json when it was found. */
  source: string | undefined;
  /** The sandbox's CA certificate (PEM), when its settings were applied: trust it for HTTPS. */
  sandboxCaPem?: string;
}

export interface LocalSettingsOptions {
  /**
   * Also apply the settings of the sandbox `npm start` runs with this data folder, below
   * local.settings.json, unless a real app (ENTRA_CLIENT_ID) is configured.
   */
  sandboxDataDir?: string;
}

export async function readLocalSettings(appDir: string, env: NodeJS.ProcessEnv, options: LocalSettingsOptions = {}): Promise<LocalSettings> {
  const path = join(appDir, 'local.settings.json');
  let fileValues: Record<string, string> = {};
  let source: string | undefined;
  try {
    const text = await readFileIfExists(path);
    if (text !== undefined) {
      const parsed = JSON.parse(text) as { IsEncrypted?: boolean; Values?: Record<string, unknown> };
      if (parsed.IsEncrypted) throw new Error('encrypted local.settings.json files are not supported; set "IsEncrypted": false');
      fileValues = Object.fromEntries(
        Object.entries(parsed.Values ?? {}).map(([name, value]) => [name, typeof value === 'string' ? value : JSON.stringify(value)]),
      );
      source = path;
    }
  } catch (error) {
    throw new Error(`Cannot use ${path}: ${(error as Error).message}`, { cause: error });
  }
  const fromEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const configured = { ...fileValues, ...fromEnv };
  const sandbox = options.sandboxDataDir === undefined || configured.ENTRA_CLIENT_ID !== undefined ? undefined : await readSandboxSettings(options.sandboxDataDir);
  return {
    values: { ...defaultsBesides(configured), ...sandbox?.values, ...configured },
    source,
    ...(sandbox && { sandboxCaPem: sandbox.caPem }),
  };
}

/**
 * The local defaults, less those that would contradict what is configured: pointing the CLI at a
 * deployed environment (storage by service URI or account name, Key Vault) must not also get
 * Azurite and the local secret store.
 */
function defaultsBesides(configured: Record<string, string>): Record<string, string> {
  const defaults: Record<string, string> = { ...LOCAL_DEFAULTS };
  if (Object.keys(configured).some((name) => name.startsWith('AzureWebJobsStorage__'))) delete defaults.AzureWebJobsStorage;
  if (configured.KEY_VAULT_URL !== undefined) delete defaults.SECRET_STORE;
  return defaults;
}

async function readSandboxSettings(dataDir: string): Promise<{ values: Record<string, string>; caPem: string } | undefined> {
  const path = join(dataDir, SANDBOX_SETTINGS_FILE);
  const text = await readFileIfExists(path);
  if (text === undefined) return undefined;
  const parsed = JSON.parse(text) as { Values?: Record<string, string>; caCertificatePath?: string };
  if (!parsed.Values || !parsed.caCertificatePath) throw new Error(`${path} is not a sandbox settings file; delete it and run npm start again`);
  return { values: parsed.Values, caPem: await readFile(parsed.caCertificatePath, 'utf8') };
}
