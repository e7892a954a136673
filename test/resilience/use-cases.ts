import { randomUUID } from 'node:crypto';
import { buildReceiving, type ReceivingServices } from '../../src/composition.js';
import { AppHealthService } from '../../src/connection-health/app-health.js';
import { ConnectionHealthStore } from '../../src/connection-health/health-store.js';
import type { RefreshDeps, RefreshMessage } from '../../src/connection-health/refresh-connection.js';
import { TokenLifecycle } from '../../src/connection-health/token-lifecycle.js';
import type { ConnectionDeps } from '../../src/connections/connections.js';
import { listMailboxes } from '../../src/connections/mailboxes.js';
import type { Connection } from '../../src/domain/connection.js';
import { DEFAULT_REFRESH_POLICY } from '../../src/domain/connection-health.js';
import { messageRequestSchema, type OutboundMessage } from '../../src/domain/outbound-message.js';
import { DEFAULT_GOVERNOR_LIMITS } from '../../src/domain/send-governor.js';
import type { NewEvent } from '../../src/events/record-event.js';
import { AccessTokens } from '../../src/identity/access-tokens.js';
import { graphSender } from '../../src/mail/graph-sender.js';
import type { MailSender } from '../../src/mail/mail-transport.js';
import type { PollJob } from '../../src/receiving/poll-mailbox.js';
import { OutboxContent } from '../../src/sending/outbox-content.js';
import type { SendDeps } from '../../src/sending/send-message.js';
import { SendGovernor } from '../../src/sending/send-governor.js';
import { submitMessage, type SendJob } from '../../src/sending/submit-message.js';
import { PayloadStore } from '../../src/store/payload-store.js';
import type { PublishedMessage, QueuePublisher } from '../../src/store/queue-publisher.js';
import { CONTAINERS } from '../../src/store/storage-layout.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { RecordingMetrics } from '../../src/telemetry/metrics.js';
import type { ConnectEnvironment } from '../support/connect-environment.js';
import { crashingRepository, overlay, type Clock, type CrashPlan, type QueueModel } from './crash-points.js';

/**
 * The send, receive and refresh use-cases as the connector builds them, on a clock the test moves,
 * with their writes going through a crash plan and their queue messages into queue models instead
 * of Azure queues (where the local host's own workers would take them).
 */

export const quiet = createLogger({ level: 'error', sink: () => undefined });

/** What one instance of the app holds for tokens: the access tokens, the health rows and leases, the lifecycle. */
export interface IdentityInstance {
  tokens: AccessTokens;
  health: ConnectionHealthStore;
  lifecycle: TokenLifecycle;
  apps: AppHealthService;
  metrics: RecordingMetrics;
}

export function identityInstance(env: ConnectEnvironment, clock: Clock, plan: CrashPlan): IdentityInstance {
  const repositories = env.services.repositories;
  const metrics = new RecordingMetrics();
  const record = (event: NewEvent) => plan.effect('recordEvent', () => env.services.recordEvent(event));
  const policy = { ...DEFAULT_REFRESH_POLICY, degradedAfterMs: env.identity.policy.degradedAfterMs };
  const health = new ConnectionHealthStore({ health: crashingRepository(repositories.connectionHealth, 'health', plan), policy, now: clock.now, owner: `test-${randomUUID()}` });
  const apps = new AppHealthService({ appHealth: crashingRepository(repositories.appHealth, 'apphealth', plan), recordEvent: record, clientIdOf: () => env.clientId, logger: quiet, metrics, now: clock.now });
  const connections: ConnectionDeps = { ...env.services.api.connections, connections: crashingRepository(repositories.connections, 'connections', plan), recordEvent: record, now: clock.now };
  const lifecycle = new TokenLifecycle({
    connections,
    health,
    apps,
    async issueLink(connection, purpose) {
      const link = await env.identity.links.issue(connection.customerId, connection.id, purpose);
      return { url: link.url, expiresAt: link.expiresAt.toISOString() };
    },
    logger: quiet,
    metrics,
  });
  const secrets = env.services.secrets;
  const tokens = new AccessTokens({
    msal: env.identity.msal,
    secrets: { get: (name, version) => secrets.get(name, version), set: (name, value, options) => plan.effect('secret.set', () => secrets.set(name, value, options)) },
    leases: health,
    appGate: (appId) => apps.gate(appId),
    onFailure: (connection, failure) => lifecycle.failed(connection, failure),
    onSuccess: (connection, outcome) => lifecycle.succeeded(connection, outcome),
    metrics,
    logger: quiet,
    now: clock.now,
  });
  return { tokens, health, lifecycle, apps, metrics };
}

/** The refresh-connection queue's work for one invocation of `instance`; retries go to `queue`. */
export function refreshDeps(env: ConnectEnvironment, clock: Clock, plan: CrashPlan, queue: QueueModel<RefreshMessage>, instance = identityInstance(env, clock, plan)): RefreshDeps {
  return {
    connections: env.services.repositories.connections,
    health: instance.health,
    tokens: instance.tokens,
    lifecycle: instance.lifecycle,
    apps: instance.apps,
    queues: {
      publish: (_queue, payload, options) =>
        plan.effect('queue.refresh-connection', () => {
          queue.push(payload as RefreshMessage, options?.delaySeconds ?? 0);
          return Promise.resolve();
        }),
    },
    policy: { ...DEFAULT_REFRESH_POLICY, degradedAfterMs: env.identity.policy.degradedAfterMs },
    logger: quiet,
    metrics: instance.metrics,
    now: clock.now,
    random: () => 0.5,
  };
}

export interface SendParts {
  graph: MailSender;
  outbox: PayloadStore;
  uploads: PayloadStore;
  content: OutboxContent;
}

export function sendParts(env: ConnectEnvironment): SendParts {
  const outbox = new PayloadStore(env.services.storage.blobService, CONTAINERS.outbox);
  const uploads = new PayloadStore(env.services.storage.blobService, CONTAINERS.uploads);
  return { graph: graphSender({ graphUrl: env.identity.msal.app('default').cloud.graphUrl }), outbox, uploads, content: new OutboxContent(outbox, uploads) };
}

/** The send-mail queue's work: the hand-over to Graph, the outbox row and blobs, the governor row, the queue and events through `plan`. */
export function sendDeps(
  env: ConnectEnvironment,
  clock: Clock,
  plan: CrashPlan,
  queue: QueueModel<SendJob>,
  parts: SendParts,
  tokens: SendDeps['tokens'] = env.identity.accessTokens,
): SendDeps {
  const repositories = env.services.repositories;
  const graph: MailSender = {
    send: (target, message) => plan.effect('graph.send', () => parts.graph.send(target, message)),
    findSent: (target, id) => parts.graph.findSent(target, id),
  };
  const content = new OutboxContent(overlay(parts.outbox, { delete: (ref) => plan.effect('blob.delete', () => parts.outbox.delete(ref)) }), parts.uploads);
  // A governor wait (at most a second) passes on the test's clock.
  const sleep = (ms: number) => {
    clock.advance(ms);
    return Promise.resolve();
  };
  return {
    outbox: crashingRepository(repositories.outbox, 'outbox', plan),
    connections: repositories.connections,
    mailboxes: repositories.mailboxes,
    content,
    tokens,
    senders: () => ({ graph, smtp: graph }),
    governor: new SendGovernor({ state: crashingRepository(repositories.sendGovernor, 'governor', plan), limits: { ...DEFAULT_GOVERNOR_LIMITS, perMinute: 1000 }, now: clock.now, sleep }),
    enqueue: (job, delaySeconds) =>
      plan.effect('queue.send-mail', () => {
        queue.push(job, delaySeconds);
        return Promise.resolve();
      }),
    recordEvent: (event) => plan.effect('recordEvent', () => env.services.recordEvent(event)),
    logger: quiet,
    metrics: new RecordingMetrics(),
    now: clock.now,
    sleep,
  };
}

/** As the API stores a message (without queueing it), on the test's clock. */
export async function submit(env: ConnectEnvironment, clock: Clock, parts: SendParts, connection: Connection, request: Record<string, unknown>): Promise<OutboundMessage> {
  const repositories = env.services.repositories;
  const { message } = await submitMessage(
    {
      outbox: repositories.outbox,
      idempotencyKeys: repositories.idempotencyKeys,
      mailboxes: (c) => listMailboxes({ mailboxes: repositories.mailboxes }, c),
      content: parts.content,
      enqueue: () => Promise.resolve(),
      now: clock.now,
    },
    connection,
    messageRequestSchema.parse(request),
  );
  return message;
}

/**
 * The receive use-cases (a look at a mailbox) with the inbox rows, receive-state rows, blobs,
 * events and queue messages through `plan`, polling by delta (the sandbox's notifications would
 * reach the local host, not the test).
 */
export function receiving(env: ConnectEnvironment, clock: Clock, plan: CrashPlan, queue: QueueModel<PollJob>, accessTokens = env.identity.accessTokens): ReceivingServices {
  const repositories = env.services.repositories;
  const content = env.services.inboxContent;
  const queues: QueuePublisher = overlay(env.services.queues, {
    publish: (name: string, payload: unknown, options?: { delaySeconds?: number }) =>
      plan.effect(`queue.${name}`, (): Promise<PublishedMessage> => {
        queue.push(payload as PollJob, options?.delaySeconds ?? 0);
        return Promise.resolve({ messageId: randomUUID() });
      }),
  });
  return buildReceiving({
    config: env.services.config,
    repositories: {
      ...repositories,
      inbox: crashingRepository(repositories.inbox, 'inbox', plan),
      receiveState: crashingRepository(repositories.receiveState, 'receivestate', plan),
      graphSubscriptions: crashingRepository(repositories.graphSubscriptions, 'subscriptions', plan),
    },
    identity: { ...env.identity, accessTokens },
    content: overlay(content, { put: (name, raw) => plan.effect('blob.put', () => content.put(name, raw)) }),
    queues,
    recordEvent: (event) => plan.effect('recordEvent', () => env.services.recordEvent(event)),
    logger: quiet,
    metrics: new RecordingMetrics(),
    now: clock.now,
    notificationUrls: undefined,
  });
}
