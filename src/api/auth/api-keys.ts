import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, CustomerScope } from '../../domain/access.js';

/**
 * API keys: `m365c_<prefix>_<secret>`. The prefix finds the stored record and names the key in
 * logs and listings; the secret is 256 random bits, stored only as its SHA-256 hash (a slow hash
 * adds nothing for a secret this long). The key is shown once, when it is made.
 */

const KEY = /^m365c_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function generateApiKey(scope: CustomerScope, name: string | undefined, now: Date): { key: string; record: ApiKeyRecord } {
  const prefix = Array.from(randomBytes(12), (byte) => PREFIX_ALPHABET[byte % PREFIX_ALPHABET.length]).join('');
  const secret = randomBytes(32).toString('base64url');
  return {
    key: `m365c_${prefix}_${secret}`,
    record: {
      prefix,
      hash: hashSecret(secret),
      customerScope: scope,
      ...(name !== undefined && { name }),
      createdAt: now.toISOString(),
    },
  };
}

export function parseApiKey(text: string): { prefix: string; secret: string } | undefined {
  const match = KEY.exec(text.trim());
  return match?.[1] && match[2] ? { prefix: match[1], secret: match[2] } : undefined;
}

export function looksLikeApiKey(text: string): boolean {
  return text.trim().startsWith('m365c_');
}

/** True when `secret` is the one `record` was made for, and the key is not revoked. */
export function matchesApiKey(record: ApiKeyRecord, secret: string): boolean {
  const expected = Buffer.from(record.hash, 'hex');
  const actual = Buffer.from(hashSecret(secret), 'hex');
  return record.revokedAt === undefined && expected.length === actual.length && timingSafeEqual(expected, actual);
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}
