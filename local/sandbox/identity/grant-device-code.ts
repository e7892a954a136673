import { aadsts } from './aadsts.js';
import type { GrantInput } from './token-endpoint.js';
import { userTokenResponse } from './user-token-response.js';

/**
 * grant_type=urn:ietf:params:oauth:grant-type:device_code: the client polls until the person has
 * entered the code and signed in (`authorization_pending`), declined (`authorization_declined`),
 * or the code expired (`expired_token`), the errors Entra's device code page lists.
 */
export async function deviceCodeGrant({ context, app, form, client }: GrantInput): Promise<Record<string, unknown>> {
  const value = form.get('device_code');
  if (!value) throw aadsts.missingParameter('device_code');
  const { state } = context;
  const record = state.data.deviceCodes.find((d) => d.deviceCode === value);
  if (!record || record.clientId !== app.clientId || record.status === 'redeemed') throw aadsts.deviceCodeUnknown();
  if (record.expiresAt <= context.now()) throw aadsts.deviceCodeExpired();
  if (record.status === 'declined') throw aadsts.authorizationDeclined();
  if (record.status === 'pending') throw aadsts.authorizationPending();
  const user = record.userId === undefined ? undefined : state.user(record.userId);
  const session = record.sessionId === undefined ? undefined : state.session(record.sessionId);
  if (!user || !session) throw aadsts.deviceCodeUnknown();
  record.status = 'redeemed';
  return userTokenResponse(context, {
    app,
    user,
    session,
    scope: record.scope,
    client,
    clientInfoRequested: form.get('client_info') === '1',
    rotateRefreshToken: false,
  });
}
