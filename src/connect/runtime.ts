import { getServices } from '../composition.js';
import { checkAgain } from './check-again.js';
import type { ConnectRuntime } from './connect-http.js';

/** What the connect pages run with, from the process's services; undefined when no app registration is configured. */
export async function connectRuntime(): Promise<ConnectRuntime | undefined> {
  const services = await getServices();
  const identity = services.identity;
  const checkConnection = services.api.checkConnection;
  // Both come with an app registration; without one there are no connect pages.
  if (!identity || !checkConnection) return undefined;
  return {
    flow: identity.connect,
    results: identity.results,
    checkAgain: (resultId) => checkAgain({ results: identity.results, connections: services.repositories.connections, checkConnection }, resultId),
    vendorName: identity.vendorName,
    formActions: async () => {
      const origins = await Promise.all(services.config.identity?.apps.map((app) => identity.browser.signInOrigin(app)) ?? []);
      return [...new Set(origins)];
    },
    logFor: (context) => services.logFor(context),
  };
}
