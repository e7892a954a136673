import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/, spec/standard-webhooks.md in
 * github.com/standard-webhooks/standard-webhooks), so a vendor verifies our webhooks with any of
 * its libraries:
 * - `webhook-id`: the event id, the same on every retry and replay, so the receiver can dedupe;
 * - `webhook-timestamp`: unix seconds of this attempt, which receivers check against replays;
 * - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per active
 *   secret, space-separated, so a receiver switching secrets during rotation finds one it knows.
 * Symmetric secrets are presented as `whsec_` + base64 of 24 to 64 random bytes; the HMAC key is
 * the decoded bytes.
 */

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const NEW_SECRET_BYTES = 32;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

export interface WebhookToSign {
  /** Must not contain '.', which delimits the signed content. */
  id: string;
  /** When this attempt is made; sent as whole seconds. */
  timestamp: Date;
  /** The exact text sent as the body (UTF-8): a re-serialized body would not verify. */
  body: string;
  /** Every active secret, current first. */
  secrets: readonly string[];
}

export function generateWebhookSecret(random: (size: number) => Buffer = randomBytes): string {
  return WEBHOOK_SECRET_PREFIX + random(NEW_SECRET_BYTES).toString('base64');
}

/** The HMAC key of a `whsec_` secret; RangeError for anything else (the message never shows the secret). */
export function webhookSecretKey(secret: string): Buffer {
  const encoded = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : undefined;
  if (encoded === undefined || encoded === '' || !BASE64.test(encoded)) {
    throw new RangeError(`A webhook signing secret must be "${WEBHOOK_SECRET_PREFIX}" followed by base64`);
  }
  const key = Buffer.from(encoded, 'base64');
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES) {
    throw new RangeError(`A webhook signing secret must hold ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes`);
  }
  return key;
}

export function signWebhook(input: WebhookToSign): WebhookHeaders {
  if (input.id === '' || input.id.includes('.')) {
    throw new RangeError('A webhook id must be non-empty and must not contain "."');
  }
  if (input.secrets.length === 0) throw new RangeError('A webhook needs at least one signing secret');
  const timestamp = String(Math.floor(input.timestamp.getTime() / 1000));
  const content = `${input.id}.${timestamp}.${input.body}`;
  const signatures = input.secrets.map(
    (secret) => `v1,${createHmac('sha256', webhookSecretKey(secret)).update(content, 'utf8').digest('base64')}`,
  );
  return { 'webhook-id': input.id, 'webhook-timestamp': timestamp, 'webhook-signature': signatures.join(' ') };
}
