import { createHash } from 'node:crypto';
import { monotonicFactory } from 'ulid';

/**
 * Identifiers. Ids the connector makes are a type prefix and a ULID: unique without coordination,
 * and ordered by creation time, so a Table Storage partition lists them oldest first and a time
 * can be turned into a row-key bound ("events since 10:00").
 */

export type IdPrefix = 'con' | 'evt' | 'mbx' | 'whk' | 'msg' | 'att' | 'rcv';

const ulid = monotonicFactory();

export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  return `${prefix}_${ulid(now)}`;
}

/** The smallest id of this type created at or after `time`. */
export function idLowerBound(prefix: IdPrefix, time: Date): string {
  return `${prefix}_${encodeTime(time.getTime())}${'0'.repeat(16)}`;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * An id made from what a thing is rather than when it was made: the same parts give the same id,
 * so a received message found twice (a notification and a delta round, a resync) is one message.
 * 26 Crockford characters of a SHA-256, like a ULID in shape but with no time in it.
 */
export function derivedId(prefix: IdPrefix, parts: readonly string[]): string {
  const digest = createHash('sha256').update(parts.join('\u0000'), 'utf8').digest();
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += CROCKFORD[(value >>> (bits - 5)) & 31] ?? '0';
      bits -= 5;
    }
    value &= (1 << bits) - 1;
    if (out.length === 26) break;
  }
  return `${prefix}_${out}`;
}

function encodeTime(ms: number): string {
  let out = '';
  let rest = Math.max(0, Math.floor(ms));
  for (let i = 0; i < 10; i++) {
    out = (CROCKFORD[rest % 32] ?? '0') + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

export const ID_PATTERN: Record<IdPrefix, RegExp> = {
  con: /^con_[0-9A-HJKMNP-TV-Z]{26}$/,
  evt: /^evt_[0-9A-HJKMNP-TV-Z]{26}$/,
  mbx: /^mbx_[0-9A-HJKMNP-TV-Z]{26}$/,
  whk: /^whk_[0-9A-HJKMNP-TV-Z]{26}$/,
  msg: /^msg_[0-9A-HJKMNP-TV-Z]{26}$/,
  att: /^att_[0-9A-HJKMNP-TV-Z]{26}$/,
  rcv: /^rcv_[0-9A-HJKMNP-TV-Z]{26}$/,
};

/**
 * Customer ids are the vendor's own. Letters, digits and `._-`, starting with a letter or digit,
 * at most 128 characters: safe in URLs, Table Storage keys and secret names alike.
 */
export const CUSTOMER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** When an id the connector made was made (epoch milliseconds), or undefined for anything else. */
export function idTime(id: string): number | undefined {
  const match = /^[a-z]{3}_([0-9A-HJKMNP-TV-Z]{10})[0-9A-HJKMNP-TV-Z]{16}$/.exec(id);
  if (!match?.[1]) return undefined;
  let ms = 0;
  for (const char of match[1]) ms = ms * 32 + CROCKFORD.indexOf(char);
  return ms;
}
