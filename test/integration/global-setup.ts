import type { TestProject } from 'vitest/node';
import { startAzurite } from '../../local/azurite.js';
import { freePort } from '../../local/free-port.js';

/** One in-memory Azurite for the whole integration run, on free ports so `npm start` can run beside it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const azurite = await startAzurite({
    ports: { blob: await freePort(), queue: await freePort(), table: await freePort() },
  });
  project.provide('storageConnectionString', azurite.connectionString);
  return async () => {
    await azurite.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    storageConnectionString: string;
  }
}
