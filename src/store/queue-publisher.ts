import { RestError, type QueueServiceClient } from '@azure/storage-queue';
import type { PayloadRef, PayloadStore } from './payload-store.js';

/**
 * Enqueues JSON work items the way the Functions queue trigger reads them: the JSON text,
 * base64-encoded (host.json messageEncoding "base64", the default). A payload whose encoded
 * message would pass the 64 KiB queue limit goes to Blob storage and the message carries a
 * reference that `resolveQueuePayload` follows.
 */

export const QUEUE_MESSAGE_LIMIT_BYTES = 64 * 1024;

/** The queue message that stands in for a payload kept in Blob storage. */
export interface BlobPayloadEnvelope {
  $payloadRef: PayloadRef;
}

export interface PublishOptions {
  /** Seconds before the message becomes visible (scheduled work). At most 7 days. */
  delaySeconds?: number;
  /** Seconds the message lives; -1 for never expiring. The Storage default is 7 days. */
  timeToLiveSeconds?: number;
}

export interface PublishedMessage {
  messageId: string;
  payloadRef?: PayloadRef;
}

export function encodeQueueMessage(payload: unknown): string {
  return Buffer.from(toJson(payload), 'utf8').toString('base64');
}

function toJson(payload: unknown): string {
  // JSON.stringify yields undefined for undefined, functions and symbols, whatever its type says.
  const json = JSON.stringify(payload) as string | undefined;
  if (json === undefined) throw new TypeError('Queue payload must be serializable to JSON');
  return json;
}

export class QueuePublisher {
  private readonly ensuredQueues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly queueService: QueueServiceClient,
    private readonly payloads: PayloadStore,
  ) {}

  async publish(queueName: string, payload: unknown, options: PublishOptions = {}): Promise<PublishedMessage> {
    const json = Buffer.from(toJson(payload), 'utf8');
    let text = json.toString('base64');
    let payloadRef: PayloadRef | undefined;
    if (text.length > QUEUE_MESSAGE_LIMIT_BYTES) {
      payloadRef = await this.payloads.put(json, {
        prefix: queueName,
        contentType: 'application/json',
      });
      text = encodeQueueMessage({ $payloadRef: payloadRef } satisfies BlobPayloadEnvelope);
    }
    const queue = this.queueService.getQueueClient(queueName);
    const send = () =>
      queue.sendMessage(text, {
        ...(options.delaySeconds !== undefined && { visibilityTimeout: options.delaySeconds }),
        ...(options.timeToLiveSeconds !== undefined && { messageTimeToLive: options.timeToLiveSeconds }),
      });
    let response;
    try {
      response = await send();
    } catch (error) {
      // Like the Functions queue output binding: a queue that does not exist yet is created.
      if (!(error instanceof RestError && error.statusCode === 404)) throw error;
      await this.ensureQueue(queueName);
      response = await send();
    }
    return { messageId: response.messageId, ...(payloadRef && { payloadRef }) };
  }

  private ensureQueue(queueName: string): Promise<unknown> {
    let ensured = this.ensuredQueues.get(queueName);
    if (!ensured) {
      ensured = this.queueService
        .getQueueClient(queueName)
        .createIfNotExists()
        .catch((error: unknown) => {
          this.ensuredQueues.delete(queueName);
          throw error;
        });
      this.ensuredQueues.set(queueName, ensured);
    }
    return ensured;
  }
}

export function isBlobPayloadEnvelope(message: unknown): message is BlobPayloadEnvelope {
  if (typeof message !== 'object' || message === null || !('$payloadRef' in message)) return false;
  const ref = message.$payloadRef;
  return (
    typeof ref === 'object' &&
    ref !== null &&
    typeof (ref as PayloadRef).container === 'string' &&
    typeof (ref as PayloadRef).name === 'string'
  );
}

/**
 * The payload a queue-triggered function was meant to get: the message itself, or the JSON
 * it points to in Blob storage. The blob stays until the caller deletes it after success, so a
 * retried message still finds it.
 */
export async function resolveQueuePayload(
  message: unknown,
  payloads: PayloadStore,
): Promise<{ payload: unknown; payloadRef?: PayloadRef }> {
  if (!isBlobPayloadEnvelope(message)) return { payload: message };
  const data = await payloads.get(message.$payloadRef);
  return { payload: JSON.parse(data.toString('utf8')) as unknown, payloadRef: message.$payloadRef };
}
