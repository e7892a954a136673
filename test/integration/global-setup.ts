import type { TestProject } from 'vitest/node';
import { startAzuriteOnFreePorts } from '../../local/azurite.js';

/** One in-memory Azurite for the whole integration run, on free ports so `npm start` can run beside it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const azurite = await startAzuriteOnFreePorts();
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
