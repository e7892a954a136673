import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

/**
 * Sandbox users' passwords, for the password grant (ROPC). Only a salted scrypt hash is kept, so
 * the state file `npm start` writes and the control API's answers never hold a password, even a
 * test one an operator might reuse elsewhere.
 */

const KEY_LENGTH = 32;

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('base64url')}$${scryptSync(password, salt, KEY_LENGTH).toString('base64url')}`;
}

/** False for a user without a password: Entra refuses such a sign-in the same way as a wrong password. */
export function passwordMatches(stored: string | undefined, presented: string): boolean {
  const [scheme, salt, hash] = stored?.split('$') ?? [];
  if (scheme !== 'scrypt' || salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64url');
  if (expected.length !== KEY_LENGTH) return false;
  return timingSafeEqual(expected, scryptSync(presented, Buffer.from(salt, 'base64url'), KEY_LENGTH));
}
