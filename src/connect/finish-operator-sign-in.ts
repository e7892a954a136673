import type { AuthenticationResult, PublicClientApplication } from '@azure/msal-node';
import type { Connection, SignInMethod } from '../domain/connection.js';
import { classifySignInError, errorFromMsal, errorLogFields } from '../identity/microsoft-error.js';
import type { Resource } from '../identity/scopes.js';
import { reportOutcome } from './operator-sign-in-errors.js';
import type { OperatorSignInDeps, SignInReport, SignInTarget } from './operator-sign-in.js';

/** The msal client that signed in: its in-memory cache holds this sign-in's tokens alone. */
export type SignedInClient = Pick<PublicClientApplication, 'getTokenCache' | 'acquireTokenSilent'>;

/** Hands Microsoft's answer to the connect flow's checks; reports the connection, or why it was refused. */
export async function finishOperatorSignIn(
  deps: OperatorSignInDeps,
  connection: Connection,
  method: SignInMethod,
  signedIn: { result: AuthenticationResult; client: SignedInClient; target: SignInTarget },
): Promise<SignInReport> {
  const { result, client, target } = signedIn;
  const finished = await deps.flow.finishDelegated(connection, result, client.getTokenCache().serialize(), method);
  const outcome = finished.outcome;
  if (outcome.kind !== 'connected') return reportOutcome(outcome, connection);
  const tenantId = outcome.tenant.id;
  const warning = target.other && (await otherResourceWarning(deps, connection, { result, client, tenantId, other: target.other }));
  return {
    kind: 'connected',
    account: outcome.account ?? result.account?.username ?? '',
    tenantId,
    permissions: outcome.permissions,
    mailboxes: outcome.mailboxes,
    warnings: warning === undefined ? [] : [warning],
  };
}

/**
 * The connection is connected; can it get a token for its other resource with the same refresh
 * token? If nobody granted those permissions, mail over that resource will fail: ops hear it now.
 */
async function otherResourceWarning(
  deps: OperatorSignInDeps,
  connection: Connection,
  input: { result: AuthenticationResult; client: SignedInClient; tenantId: string; other: { resource: Resource; scopes: string[] } },
): Promise<string | undefined> {
  const { result, client, tenantId, other } = input;
  if (!result.account) return undefined;
  const app = deps.msal.app(connection.appId);
  try {
    await client.acquireTokenSilent({ account: result.account, scopes: other.scopes, authority: deps.msal.authority(app, tenantId) });
    return undefined;
  } catch (thrown) {
    const error = errorFromMsal(thrown);
    if (!error) throw thrown;
    deps.logger.child({ customerId: connection.customerId, connectionId: connection.id }).warn('connect: no token for the connection\'s other resource', { ...errorLogFields(error), resource: other.resource });
    const name = other.resource === 'graph' ? 'Microsoft Graph' : 'Exchange Online';
    const why = classifySignInError(error) === 'admin-approval' ? 'nobody has granted them for this user' : `Microsoft refused (${error.error}${error.aadsts === undefined ? '' : `, AADSTS${error.aadsts}`})`;
    const adminGrant = await deps.links.issue(connection.customerId, connection.id, 'admin-grant');
    return (
      `No ${name} token: ${why}. The connection needs ${other.scopes.join(', ')}; until they are granted, what uses ${name} fails. ` +
      `An administrator can grant them for the organization with this link (or the user connects once through a consent link):\n  ${adminGrant.url}`
    );
  }
}
