import { decodeJwt } from 'jose';

/**
 * Whether the person who signed in holds a directory role that can grant organization-wide
 * consent. Entra lists a user's directory roles as role template ids in the `wids` claim of the
 * Graph access token it hands the connector. The connector redeemed that token itself at the
 * token endpoint, over TLS, so its claims are read, not verified (Graph tokens are not meant to be
 * validated by anyone but Graph).
 */

/** Role template ids: the same in every tenant. */
export const DIRECTORY_ROLES = {
  globalAdministrator: '62e90394-69f5-4237-9190-012177145e10',
  privilegedRoleAdministrator: 'e8611ab8-c189-46e8-94e1-60213ab1f814',
  cloudApplicationAdministrator: '158c047a-c907-4556-b7ef-446551a6b5f7',
  applicationAdministrator: '9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3',
} as const;

/** Who may grant what: Graph app roles need the privileged roles; other consent the application ones too. */
export const CONSENT_GRANTING_ROLES = {
  privileged: [DIRECTORY_ROLES.globalAdministrator, DIRECTORY_ROLES.privilegedRoleAdministrator],
  application: Object.values(DIRECTORY_ROLES),
} as const satisfies Record<string, readonly string[]>;

/** The directory role template ids in an access token, lower-cased; none when it is not a JWT or has no `wids`. */
export function directoryRolesOf(accessToken: string): string[] {
  try {
    const wids = decodeJwt(accessToken).wids;
    return Array.isArray(wids) ? wids.filter((role): role is string => typeof role === 'string').map((role) => role.toLowerCase()) : [];
  } catch {
    return [];
  }
}

export function canGrantConsent(accessToken: string, level: keyof typeof CONSENT_GRANTING_ROLES): boolean {
  const roles = directoryRolesOf(accessToken);
  return CONSENT_GRANTING_ROLES[level].some((role) => roles.includes(role));
}
