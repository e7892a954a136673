import type { ConnectionDeps } from '../connections/connections.js';
import type { HealthReport } from '../health/check-health.js';
import type { Repositories } from '../store/repositories.js';

/** What the API's handlers need; the composition root builds it. */
export interface ApiServices {
  repositories: Repositories;
  connections: ConnectionDeps;
  /** Re-delivers one event to its endpoints (all of them, or one). Returns the deliveries queued. */
  replayEvent(customerId: string, eventId: string, endpointId?: string): Promise<number | undefined>;
  /** Re-delivers every event of the customer since `since` whose delivery failed. */
  replayFailedEvents(customerId: string, since: Date): Promise<{ events: number; deliveries: number }>;
  /** Readiness of storage and the secret store, reused for a few seconds (see cachedHealthCheck). */
  checkHealth(): Promise<HealthReport>;
  now(): Date;
}
