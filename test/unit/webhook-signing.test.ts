import { createHmac } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { generateWebhookSecret, signWebhook, webhookSecretKey } from '../../src/events/webhook-signing.js';

describe('Standard Webhooks signing', () => {
  const body = JSON.stringify({ id: 'evt_01J0000000000000000000000A', type: 'connection.created', data: { note: 'Grüße ✉' } });
  const id = 'evt_01J0000000000000000000000A';

  it('is verified by the standardwebhooks package', () => {
    const secret = generateWebhookSecret();
    const headers = signWebhook({ id, timestamp: new Date(), body, secrets: [secret] });
    expect(headers['webhook-id']).toBe(id);
    expect(headers['webhook-timestamp']).toMatch(/^\d+$/);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
  });

  it('signs "{id}.{timestamp}.{body}" with the decoded secret, in whole seconds, as the package does', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const timestamp = new Date('2025-01-02T03:04:05.678Z');
    const headers = signWebhook({ id, timestamp, body, secrets: [secret] });
    expect(headers['webhook-timestamp']).toBe('1735787045');
    const expected = createHmac('sha256', Buffer.alloc(32, 7)).update(`${id}.1735787045.${body}`).digest('base64');
    expect(headers['webhook-signature']).toBe(`v1,${expected}`);
    expect(headers['webhook-signature']).toBe(new Webhook(secret).sign(id, timestamp, body));
  });

  it('carries one signature per active secret, and each secret verifies alone', () => {
    const current = generateWebhookSecret();
    const previous = generateWebhookSecret();
    const headers = signWebhook({ id, timestamp: new Date(), body, secrets: [current, previous] });
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(() => new Webhook(current).verify(body, { ...headers })).not.toThrow();
    expect(() => new Webhook(previous).verify(body, { ...headers })).not.toThrow();
    expect(() => new Webhook(generateWebhookSecret()).verify(body, { ...headers })).toThrow(WebhookVerificationError);
  });

  it('fails verification when the body, the timestamp or the id was changed', () => {
    const secret = generateWebhookSecret();
    const headers = signWebhook({ id, timestamp: new Date(), body, secrets: [secret] });
    const webhook = new Webhook(secret);
    expect(() => webhook.verify(body.replace('created', 'deleted'), { ...headers })).toThrow(/No matching signature/);
    expect(() => webhook.verify(`${body} `, { ...headers })).toThrow(/No matching signature/);
    const later = String(Number(headers['webhook-timestamp']) + 1);
    expect(() => webhook.verify(body, { ...headers, 'webhook-timestamp': later })).toThrow(/No matching signature/);
    expect(() => webhook.verify(body, { ...headers, 'webhook-id': `${id}B` })).toThrow(/No matching signature/);
  });

  it('is refused by receivers when the attempt is older than their tolerance', () => {
    const secret = generateWebhookSecret();
    const headers = signWebhook({ id, timestamp: new Date(Date.now() - 10 * 60_000), body, secrets: [secret] });
    expect(() => new Webhook(secret).verify(body, { ...headers })).toThrow(/too old/);
  });

  it('makes whsec_ secrets of 32 random bytes and accepts 24 to 64 bytes', () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(webhookSecretKey(secret)).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(secret);
    expect(webhookSecretKey(`whsec_${Buffer.alloc(24).toString('base64')}`)).toHaveLength(24);
    expect(webhookSecretKey(`whsec_${Buffer.alloc(64).toString('base64')}`)).toHaveLength(64);
    for (const bad of [
      `whsec_${Buffer.alloc(23).toString('base64')}`,
      `whsec_${Buffer.alloc(65).toString('base64')}`,
      Buffer.alloc(32).toString('base64'),
      'whsec_not base64!',
      'whsec_',
    ]) {
      expect(() => webhookSecretKey(bad)).toThrow(RangeError);
    }
  });

  it('never shows a secret in its errors', () => {
    const encoded = Buffer.alloc(16, 1).toString('base64');
    let message = '';
    try {
      webhookSecretKey(`whsec_${encoded}`);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/24 to 64 bytes/);
    expect(message).not.toContain(encoded);
  });

  it('refuses ids that would break the signed content, and an empty secret list', () => {
    const secrets = [generateWebhookSecret()];
    expect(() => signWebhook({ id: 'evt.1', timestamp: new Date(), body, secrets })).toThrow(RangeError);
    expect(() => signWebhook({ id: '', timestamp: new Date(), body, secrets })).toThrow(RangeError);
    expect(() => signWebhook({ id, timestamp: new Date(), body, secrets: [] })).toThrow(RangeError);
  });
});
