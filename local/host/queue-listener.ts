import type { DequeuedMessageItem, QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { RestError } from '@azure/storage-queue';
import type { HostSettings } from './host-json.js';
import type { RpcTypedData } from './core-types.js';
import type { HostLog } from './host-log.js';

/**
 * Storage queue triggers with the Functions host's semantics: poll with exponential back-off up
 * to maxPollingInterval, take up to batchSize messages at once and fetch more when fewer than
 * newBatchThreshold are in flight, hide a message for 10 minutes while it runs (renewed for long
 * runs), delete it on success, make it visible again after visibilityTimeout on failure, and after
 * maxDequeueCount failed attempts move it unchanged to `<queue>-poison`.
 */

export interface QueueInvocation {
  /** The message as the trigger binding receives it (the library parses JSON text). */
  data: RpcTypedData;
  triggerMetadata: Record<string, RpcTypedData>;
}

export interface QueueTriggerDefinition {
  functionName: string;
  queueName: string;
  run(invocation: QueueInvocation): Promise<void>;
}

const PROCESSING_VISIBILITY_SECONDS = 600;
const MIN_POLL_MS = 100;

export class QueueListener {
  private readonly stopped = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly queueService: QueueServiceClient,
    private readonly settings: HostSettings['queues'],
    private readonly log: HostLog,
  ) {}

  start(trigger: QueueTriggerDefinition): void {
    this.loops.push(this.poll(trigger));
  }

  /** Stops taking messages and waits for the ones already running. */
  async stop(): Promise<void> {
    this.stopped.abort();
    await Promise.all(this.loops);
    await Promise.allSettled([...this.inFlight]);
  }

  private async poll(trigger: QueueTriggerDefinition): Promise<void> {
    const queue = this.queueService.getQueueClient(trigger.queueName);
    const signal = this.stopped.signal;
    const mine = new Set<Promise<void>>();
    let delay = MIN_POLL_MS;
    while (!signal.aborted) {
      if (mine.size > this.settings.newBatchThreshold) {
        await Promise.race(mine);
        continue;
      }
      let messages: DequeuedMessageItem[] = [];
      try {
        const response = await queue.receiveMessages({
          numberOfMessages: this.settings.batchSize,
          visibilityTimeout: PROCESSING_VISIBILITY_SECONDS,
        });
        messages = response.receivedMessageItems;
      } catch (error) {
        // A queue that does not exist yet is an empty queue, as for the host.
        if (!(error instanceof RestError && error.statusCode === 404)) {
          this.log('warn', `Polling queue "${trigger.queueName}" failed`, error);
        }
      }
      if (messages.length === 0) {
        await sleep(delay, signal);
        delay = Math.min(delay * 2, this.settings.maxPollingIntervalMs);
        continue;
      }
      delay = MIN_POLL_MS;
      for (const message of messages) {
        const work = this.process(queue, trigger, message).finally(() => {
          mine.delete(work);
          this.inFlight.delete(work);
        });
        mine.add(work);
        this.inFlight.add(work);
      }
    }
  }

  private async process(queue: QueueClient, trigger: QueueTriggerDefinition, message: DequeuedMessageItem): Promise<void> {
    const poisonQueue = `${queue.name}-poison`;
    // As the host: a message that has already used up its attempts (a worker died mid-run) and one
    // that cannot be decoded go straight to the poison queue, without running the function.
    const text = this.decode(message.messageText);
    const unrunnable =
      message.dequeueCount > this.settings.maxDequeueCount
        ? `it was dequeued ${message.dequeueCount} times`
        : text === undefined
          ? 'it is not valid base64 (host.json messageEncoding is "base64")'
          : undefined;
    if (unrunnable || text === undefined) {
      this.log('warn', `Message ${message.messageId} moved to "${poisonQueue}" without running the function: ${unrunnable ?? ''}`);
      await this.settle(queue, message, message.popReceipt, 'poison');
      return;
    }

    let popReceipt = message.popReceipt;
    let renewing: Promise<unknown> = Promise.resolve();
    const renewal = setInterval(() => {
      renewing = queue
        .updateMessage(message.messageId, popReceipt, undefined, PROCESSING_VISIBILITY_SECONDS)
        .then((r) => {
          if (r.popReceipt) popReceipt = r.popReceipt;
        })
        .catch((error: unknown) => { this.log('warn', `Could not extend the visibility of a message on "${trigger.queueName}"`, error); });
    }, (PROCESSING_VISIBILITY_SECONDS * 1000) / 2);

    let outcome: 'delete' | 'retry' | 'poison' = 'delete';
    try {
      await trigger.run({ data: { string: text }, triggerMetadata: metadataOf(message, text) });
    } catch (error) {
      outcome = message.dequeueCount >= this.settings.maxDequeueCount ? 'poison' : 'retry';
      this.log(
        'error',
        `Function "${trigger.functionName}" failed on message ${message.messageId} (attempt ${message.dequeueCount} of ${this.settings.maxDequeueCount})`,
        error,
      );
    } finally {
      clearInterval(renewal);
    }
    // A renewal still under way would change the pop receipt the settlement needs.
    await renewing;
    await this.settle(queue, message, popReceipt, outcome);
    if (outcome === 'poison') this.log('warn', `Message ${message.messageId} moved to "${poisonQueue}" after ${message.dequeueCount} attempts`);
  }

  private async settle(
    queue: QueueClient,
    message: DequeuedMessageItem,
    popReceipt: string,
    outcome: 'delete' | 'retry' | 'poison',
  ): Promise<void> {
    try {
      if (outcome === 'retry') {
        await queue.updateMessage(message.messageId, popReceipt, undefined, Math.round(this.settings.visibilityTimeoutMs / 1000));
        return;
      }
      if (outcome === 'poison') {
        const poison = this.queueService.getQueueClient(`${queue.name}-poison`);
        await poison.createIfNotExists();
        // Unchanged text, and the Storage default time to live, as the host's own poison copy.
        await poison.sendMessage(message.messageText);
      }
      await queue.deleteMessage(message.messageId, popReceipt);
    } catch (error) {
      // The message becomes visible again when its 10 minutes run out; nothing is lost.
      this.log('warn', `Could not settle message ${message.messageId} on "${queue.name}"`, error);
    }
  }

  /** The message text the function receives, or undefined when it cannot be decoded. */
  private decode(text: string): string | undefined {
    if (this.settings.messageEncoding === 'none') return text;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
    return Buffer.from(text, 'base64').toString('utf8');
  }
}

function metadataOf(message: DequeuedMessageItem, text: string): Record<string, RpcTypedData> {
  const date = (d: Date) => ({ json: JSON.stringify(d.toISOString()) });
  return {
    QueueTrigger: { string: text },
    DequeueCount: { json: String(message.dequeueCount) },
    Id: { string: message.messageId },
    PopReceipt: { string: message.popReceipt },
    InsertionTime: date(message.insertedOn),
    ExpirationTime: date(message.expiresOn),
    NextVisibleTime: date(message.nextVisibleOn),
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
