import { getServices } from '../composition.js';
import type { ConnectRuntime } from './connect-http.js';

/** What the connect pages run with, from the process's services; undefined when no app registration is configured. */
export async function connectRuntime(): Promise<ConnectRuntime | undefined> {
  const services = await getServices();
  const identity = services.identity;
  if (!identity) return undefined;
  return {
    flow: identity.connect,
    results: identity.results,
    vendorName: identity.vendorName,
    formActions: async () => {
      const origins = await Promise.all(services.config.identity?.apps.map((app) => identity.browser.signInOrigin(app)) ?? []);
      return [...new Set(origins)];
    },
    logFor: (context) => services.logFor(context),
  };
}
