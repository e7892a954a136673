import { getServices } from '../composition.js';
import type { ApiRuntime } from './http-adapter.js';
import type { ApiServices } from './services.js';

/** What the API's HTTP functions run with, from the process's services. */
export async function apiRuntime(): Promise<ApiRuntime<ApiServices>> {
  const services = await getServices();
  return { services: services.api, authenticate: services.authenticate, logFor: (context) => services.logFor(context) };
}
