import { randomBytes } from 'node:crypto';

/**
 * Ids shaped like those Exchange hands out through Graph: URL-safe base64 of a store entry id,
 * whose first bytes (00 03 24 00) give every one its `AAMk` prefix. Graph's ids are opaque and
 * case-sensitive, so clients may only compare them; the sandbox's are either derived (folders)
 * or random (items).
 */

const ID_PREFIX = Buffer.from([0x00, 0x03, 0x24, 0x00]);

export function storeId(entry: Buffer): string {
  return Buffer.concat([ID_PREFIX, entry]).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/** A message's or attachment's id: as long as Exchange's (152 characters). */
export function newItemId(): string {
  return storeId(randomBytes(110));
}

/** Whether Exchange would take the value for an id at all (else 400 ErrorInvalidIdMalformed, rather than 404). */
export const looksLikeStoreId = (value: string) => /^A[AQ]Mk[A-Za-z0-9\-_+/]{20,}={0,2}$/.test(value);
