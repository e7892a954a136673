import type { AuthenticationResult } from '@azure/msal-node';
import type { Connection } from '../domain/connection.js';
import { errorFromMsal } from '../identity/microsoft-error.js';
import { finishOperatorSignIn } from './finish-operator-sign-in.js';
import { reportMicrosoftError } from './operator-sign-in-errors.js';
import { refuseConnection, refused, signInTarget, type OperatorSignInDeps, type SignInReport } from './operator-sign-in.js';

/**
 * Resource owner password credentials (ROPC) for a delegated connection: the connector sends the
 * user's name and password to Microsoft itself. It gets around MFA (an account that must use MFA
 * cannot sign in this way at all) and defeats the point of Conditional Access and of consent
 * pages, so it is off unless ALLOW_ROPC=true, and every use is logged as a warning: it is for
 * test tenants and service accounts. The app signs in as the confidential client it is for the
 * browser flow, so the connection's tokens refresh the usual way afterwards.
 */

export interface PasswordSignInDeps extends OperatorSignInDeps {
  /** The ALLOW_ROPC setting. */
  allowRopc: boolean;
}

export interface PasswordCredentials {
  username: string;
  /** Asked only once every other check passed, so nobody types a password for nothing. */
  password(): Promise<string>;
}

export async function signInWithPassword(deps: PasswordSignInDeps, connection: Connection, credentials: PasswordCredentials): Promise<SignInReport> {
  if (!deps.allowRopc) {
    return refused(
      'Password sign-in (ROPC) is off: it gets around MFA and Conditional Access.',
      'Use --device-code. For a test tenant or a service account only, an administrator of the connector can set ALLOW_ROPC=true.',
    );
  }
  const refusal = refuseConnection(connection);
  if (refusal) return refusal;
  const log = deps.logger.child({ customerId: connection.customerId, connectionId: connection.id });
  log.warn('connect: password sign-in (ROPC) allowed by ALLOW_ROPC; it bypasses MFA and Conditional Access, and is for test tenants and service accounts only', {
    signInMethod: 'password',
  });
  const password = await credentials.password();
  if (password === '') return refused('The password was empty; nothing was connected.', 'Give the user\'s password.');
  const target = signInTarget(deps.msal, connection);
  const client = await deps.msal.delegated(connection.appId, target.tenant);
  let result: AuthenticationResult | null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- ROPC is deprecated on purpose; ALLOW_ROPC gates it (see above)
    result = await client.acquireTokenByUsernamePassword({ scopes: target.scopes, username: credentials.username, password });
  } catch (thrown) {
    const error = errorFromMsal(thrown);
    if (!error) throw thrown;
    return reportMicrosoftError(deps, connection, 'password', error);
  }
  if (!result) return refused('Microsoft returned no tokens; nothing was connected.', 'Try again.');
  return finishOperatorSignIn(deps, connection, 'password', { result, client, target });
}
