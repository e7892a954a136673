import { describe, expect, it } from 'vitest';
import { canGrantConsent, DIRECTORY_ROLES, directoryRolesOf } from '../../src/identity/admin-roles.js';

/** An unsigned JWT with these claims: only the payload matters here. */
function token(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.c2ln`;
}

const USER = 'b79fbf4d-3ef9-4689-8143-76b194e85509';

describe('directory roles of the signed-in person', () => {
  it('reads wids, and finds none in a token without it or in something that is not a JWT', () => {
    expect(directoryRolesOf(token({ wids: [DIRECTORY_ROLES.globalAdministrator.toUpperCase(), USER, 7] }))).toEqual([DIRECTORY_ROLES.globalAdministrator, USER]);
    expect(directoryRolesOf(token({ scp: 'User.Read' }))).toEqual([]);
    expect(directoryRolesOf('1.AQ-opaque')).toEqual([]);
  });

  it('lets Global and Privileged Role Administrators grant anything, application administrators only what is not a Graph app role', () => {
    const as = (role: string) => token({ wids: [role, USER] });
    expect(canGrantConsent(as(DIRECTORY_ROLES.globalAdministrator), 'privileged')).toBe(true);
    expect(canGrantConsent(as(DIRECTORY_ROLES.privilegedRoleAdministrator), 'privileged')).toBe(true);
    expect(canGrantConsent(as(DIRECTORY_ROLES.cloudApplicationAdministrator), 'privileged')).toBe(false);
    expect(canGrantConsent(as(DIRECTORY_ROLES.cloudApplicationAdministrator), 'application')).toBe(true);
    expect(canGrantConsent(as(DIRECTORY_ROLES.applicationAdministrator), 'application')).toBe(true);
    expect(canGrantConsent(token({ wids: [USER] }), 'application')).toBe(false);
    expect(canGrantConsent(token({}), 'application')).toBe(false);
  });
});
