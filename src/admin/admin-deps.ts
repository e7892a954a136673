import type { Services } from '../composition.js';
import type { AdminDeps } from './cli-support.js';

/**
 * What the admin CLI runs with, from the process's services: the same storage, secret store,
 * connect flow and connectivity checker as the functions, and their configuration (ALLOW_ROPC among it).
 */
export function adminDeps(services: Services, readPassword: () => Promise<string>): AdminDeps {
  const identity = services.identity;
  const checkConnection = services.api.checkConnection;
  return {
    repositories: services.repositories,
    webhookSecrets: services.webhookSecrets,
    replay: { events: services.repositories.events, queues: services.queues },
    allowPrivateNetworkUrls: services.config.allowPrivateNetworkUrls,
    now: () => new Date(),
    ...(identity && {
      connect: {
        signIn: {
          flow: identity.connect,
          msal: identity.msal,
          links: identity.links,
          logger: services.logger,
          allowRopc: services.config.identity?.allowRopc ?? false,
        },
        readPassword,
      },
    }),
    ...(checkConnection && { checkConnection }),
  };
}
