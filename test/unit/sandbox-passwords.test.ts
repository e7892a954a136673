import { describe, expect, it } from 'vitest';
import { hashPassword, passwordMatches } from '../../local/sandbox/identity/user-passwords.js';

describe('sandbox user passwords', () => {
  it('keeps a salted hash that matches the password only', () => {
    const stored = hashPassword('correct horse');
    expect(stored).toMatch(/^scrypt\$[\w-]+\$[\w-]{43}$/);
    expect(stored).not.toContain('horse');
    expect(hashPassword('correct horse')).not.toBe(stored);
    expect(passwordMatches(stored, 'correct horse')).toBe(true);
    expect(passwordMatches(stored, 'correct horse ')).toBe(false);
    expect(passwordMatches(stored, '')).toBe(false);
  });

  it('refuses every password of a user without one, and a damaged hash', () => {
    expect(passwordMatches(undefined, '')).toBe(false);
    expect(passwordMatches('plain', 'plain')).toBe(false);
    expect(passwordMatches('scrypt$c2FsdA$short', 'x')).toBe(false);
  });
});
