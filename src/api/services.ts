import type { InboundMessage } from '../domain/inbound-message.js';
import { z } from 'zod';
import type { ConnectionDeps } from '../connections/connections.js';
import type { AppProblem, Connection } from '../domain/connection.js';
import type { ExchangeSetup } from '../domain/exchange-setup.js';
import type { ExchangeSetupOptions } from '../connect/connection-exchange-setup.js';
import type { LinkPurpose } from '../domain/sign-in-state.js';
import type { HealthReport } from '../health/check-health.js';
import type { CheckOptions } from '../connectivity/check-connection.js';
import type { ConnectionCheck } from '../domain/connection-check.js';
import type { Repositories } from '../store/repositories.js';
import type { MessageRequest, OutboundMessage } from '../domain/outbound-message.js';

/**
 * Makes the link a customer's user or admin opens to connect a pending connection. The connect
 * flow provides it; until it is configured there is none, and connections are created without a
 * link rather than with a made-up one.
 */
export interface ConsentLinkIssuer {
  /** connect: the user (delegated) or admin (application) connects; admin-grant: an admin approves a delegated connection's permissions for the organization. */
  issue(connection: Connection, purpose?: LinkPurpose): Promise<ConsentLink>;
}

export const consentLinkSchema = z
  .object({
    url: z.url().meta({ description: 'Send this to the customer\'s user (delegated) or admin (application).' }),
    expiresAt: z.iso.datetime(),
  })
  .meta({ id: 'ConsentLink' });
export type ConsentLink = z.infer<typeof consentLinkSchema>;

/** What the API's handlers need; the composition root builds it. */
export interface ApiServices {
  repositories: Repositories;
  connections: ConnectionDeps;
  consentLinks: ConsentLinkIssuer | undefined;
  /** The Exchange PowerShell of an application connection; throws ExchangeSetupUnavailable when it has none. */
  exchangeSetup(connection: Connection, options?: ExchangeSetupOptions): Promise<ExchangeSetup>;
  /** Removes a connection's tokens from the secret store (disconnect). */
  forgetTokens(connectionId: string): Promise<void>;
  /** The app registration new connections use unless they name another. */
  defaultAppId: string;
  /** Every configured app registration's id. */
  appIds: readonly string[];
  /** Re-delivers one event to its endpoints. Returns the deliveries queued, or undefined for no such event. */
  replayEvent(customerId: string, eventId: string): Promise<number | undefined>;
  /** Re-delivers every event of the customer since `since` whose delivery failed or is stuck (over an hour past due). */
  replayFailedEvents(customerId: string, since: Date): Promise<{ events: number; deliveries: number }>;
  /** Readiness of storage and the secret store, reused for a few seconds (see cachedHealthCheck). */
  checkHealth(): Promise<HealthReport>;
  /** The connectivity checker; undefined until an app registration is configured. */
  checkConnection: ((connection: Connection, options: CheckOptions) => Promise<ConnectionCheck>) | undefined;
  /** What is wrong with an app registration as a whole (its credential refused), if anything; cached briefly. */
  appProblem(appId: string): Promise<AppProblem | undefined>;
  sending: {
    /** Checks, keeps and queues a message; `created: false` for a repeat of an Idempotency-Key. Throws MessageRejectedError. */
    submit(connection: Connection, request: MessageRequest, idempotencyKey: string | undefined): Promise<{ message: OutboundMessage; created: boolean }>;
    upload(connection: Connection, bytes: Buffer, contentType: string): Promise<{ id: string; size: number; contentType: string; expiresAt: string }>;
  };
  /** A received message's MIME, or undefined once retention deleted it. */
  receivedContent(message: InboundMessage): Promise<Buffer | undefined>;
  now(): Date;
}
