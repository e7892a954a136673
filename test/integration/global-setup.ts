import type { TestProject } from 'vitest/node';
import { startAzurite, type RunningAzurite } from '../../local/azurite.js';
import { freePort } from '../../local/free-port.js';

/** One in-memory Azurite for the whole integration run, on free ports so `npm start` can run beside it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const azurite = await startOnFreePorts();
  project.provide('storageConnectionString', azurite.connectionString);
  return async () => {
    await azurite.stop();
  };
}

/** A free port can be taken by someone else before Azurite binds it; pick again then. */
async function startOnFreePorts(attempts = 3): Promise<RunningAzurite> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startAzurite({ ports: { blob: await freePort(), queue: await freePort(), table: await freePort() } });
    } catch (error) {
      if (attempt >= attempts) throw error;
    }
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    storageConnectionString: string;
  }
}
