import { buildReceiving, type ReceivingBuildDeps, type ReceivingServices } from '../../src/composition.js';
import type { StoredEvent } from '../../src/domain/events.js';
import type { MessageReceivedData } from '../../src/domain/inbound-message.js';
import type { Mailbox } from '../../src/domain/mailbox.js';
import type { ReceiveState } from '../../src/domain/receive-state.js';
import { keys } from '../../src/store/repositories.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { RecordingMetrics } from '../../src/telemetry/metrics.js';
import type { ConnectEnvironment } from './connect-environment.js';
import { waitFor } from './wait.js';

/**
 * What the receive tests share on top of the connect environment: the receive use-cases built as
 * the connector builds them (optionally with Graph told to post somewhere else), and the
 * message.received events a customer got.
 */

export interface ReceiveTestKit {
  receiving: ReceivingServices;
  metrics: RecordingMetrics;
  /** Looks at the mailbox now, whatever its due time. */
  poll(mailbox: Pick<Mailbox, 'customerId' | 'connectionId' | 'id'>): ReturnType<ReceivingServices['pollMailbox']>;
  state(mailbox: Pick<Mailbox, 'customerId' | 'connectionId' | 'id'>): Promise<ReceiveState | undefined>;
  /** The customer's message.received events, optionally only those of one Message-ID. */
  received(customerId: string, internetMessageId?: string): Promise<(StoredEvent & { data: MessageReceivedData })[]>;
  /** Waits for the first message.received event of that Message-ID. */
  receivedOnce(customerId: string, internetMessageId: string, timeoutMs?: number): Promise<StoredEvent & { data: MessageReceivedData }>;
}

export function receiveTestKit(env: ConnectEnvironment, options: Pick<ReceivingBuildDeps, 'notificationUrls' | 'wrapReceivers'> = {}): ReceiveTestKit {
  const metrics = new RecordingMetrics();
  const receiving = buildReceiving({
    config: env.services.config,
    repositories: env.services.repositories,
    identity: env.identity,
    content: env.services.inboxContent,
    queues: env.services.queues,
    recordEvent: (event) => env.services.recordEvent(event),
    logger: createLogger({ level: 'error', sink: () => undefined }),
    metrics,
    now: () => new Date(),
    ...options,
  });
  const kit: ReceiveTestKit = {
    receiving,
    metrics,
    poll: (mailbox) => receiving.pollMailbox({ customerId: mailbox.customerId, connectionId: mailbox.connectionId, mailboxId: mailbox.id, reason: 'manual' }),
    async state(mailbox) {
      return (await env.services.repositories.receiveState.get(keys.receiveState(mailbox.customerId, mailbox.connectionId, mailbox.id)))?.value;
    },
    async received(customerId, internetMessageId) {
      const events = (await env.services.repositories.events.all(customerId)).filter((event) => event.type === 'message.received') as (StoredEvent & { data: MessageReceivedData })[];
      return internetMessageId === undefined ? events : events.filter((event) => event.data.internetMessageId === internetMessageId);
    },
    async receivedOnce(customerId, internetMessageId, timeoutMs = 15_000) {
      const [event] = await waitFor(async () => {
        const events = await kit.received(customerId, internetMessageId);
        return events.length > 0 && events;
      }, timeoutMs);
      if (!event) throw new Error('no event');
      return event;
    },
  };
  return kit;
}

/** The mailbox of a connection with this address. */
export async function mailboxOf(env: ConnectEnvironment, connection: { customerId: string; id: string }, address: string): Promise<Mailbox> {
  const all = await env.services.repositories.mailboxes.all(connection.customerId, { prefix: keys.mailboxesOf(connection.id) });
  const found = all.find((mailbox) => mailbox.address.toLowerCase() === address.toLowerCase());
  if (!found) throw new Error(`no mailbox ${address}`);
  return found;
}
