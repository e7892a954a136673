import { getServices } from './composition.js';

export async function startConnector(): Promise<void> {
  const services = await getServices();
  services.logger.info('connector started', {
    storage: services.config.storage.kind,
    secretStore: services.secrets.kind,
    runningInAzure: services.config.runningInAzure,
  });
}
