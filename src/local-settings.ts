import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

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

export interface LocalSettings {
  values: Record<string, string>;
  /** local.settings.json when it was found. */
  source: string | undefined;
}

export async function readLocalSettings(appDir: string, env: NodeJS.ProcessEnv): Promise<LocalSettings> {
  const path = join(appDir, 'local.settings.json');
  let fileValues: Record<string, string> = {};
  let source: string | undefined;
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as { IsEncrypted?: boolean; Values?: Record<string, unknown> };
    if (parsed.IsEncrypted) throw new Error('encrypted local.settings.json files are not supported; set "IsEncrypted": false');
    fileValues = Object.fromEntries(
      Object.entries(parsed.Values ?? {}).map(([name, value]) => [name, typeof value === 'string' ? value : JSON.stringify(value)]),
    );
    source = path;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`Cannot use ${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  const fromEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  return { values: { ...LOCAL_DEFAULTS, ...fileValues, ...fromEnv }, source };
}
