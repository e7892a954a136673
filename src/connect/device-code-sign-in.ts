import type { AuthenticationResult } from '@azure/msal-node';
import type { Connection } from '../domain/connection.js';
import { finishOperatorSignIn } from './finish-operator-sign-in.js';
import { deviceCodeError, reportMicrosoftError } from './operator-sign-in-errors.js';
import { refuseConnection, refused, signInTarget, type OperatorSignInDeps, type SignInReport } from './operator-sign-in.js';

/**
 * Device code sign-in (OAuth 2.0 device authorization grant) for a delegated connection, for ops
 * without a browser redirect to the connector: Microsoft hands out a code, a person enters it at
 * Microsoft's page on any device and signs in, and msal polls until they did, declined, or the
 * code expired. Device code is a public client flow (the app registration must allow public
 * client flows), so the connection's tokens are refreshed as a public client afterwards
 * (AccessTokens does, by the connection's signInMethod).
 */

/** What to tell the person who signs in: Microsoft's own sentence, and its parts. */
export interface DeviceCodePrompt {
  message: string;
  verificationUri: string;
  userCode: string;
  expiresInSeconds: number;
}

export async function signInWithDeviceCode(deps: OperatorSignInDeps, connection: Connection, show: (prompt: DeviceCodePrompt) => void): Promise<SignInReport> {
  const refusal = refuseConnection(connection);
  if (refusal) return refusal;
  const target = signInTarget(deps.msal, connection);
  const client = deps.msal.publicClient(connection.appId, target.tenant);
  deps.logger.child({ customerId: connection.customerId, connectionId: connection.id }).info('connect: device code sign-in started');
  let result: AuthenticationResult | null;
  try {
    result = await client.acquireTokenByDeviceCode({
      scopes: target.scopes,
      deviceCodeCallback: (response) => {
        show({ message: response.message, verificationUri: response.verificationUri, userCode: response.userCode, expiresInSeconds: response.expiresIn });
      },
    });
  } catch (thrown) {
    const error = deviceCodeError(thrown);
    if (!error) throw thrown;
    return reportMicrosoftError(deps, connection, 'device-code', error);
  }
  if (!result) return refused('Microsoft returned no tokens; nothing was connected.', 'Run the command again.');
  return finishOperatorSignIn(deps, connection, 'device-code', { result, client, target });
}
