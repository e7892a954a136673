import { randomInt } from 'node:crypto';
import { AadstsError, aadsts, errorBody } from './aadsts.js';
import { authorityFromRef, authorityRef, directoryName, resolveAuthority } from './authority.js';
import { startSession } from './authorize-endpoint.js';
import { requestedDelegated } from './consent.js';
import { errorIdsFor, type SandboxContext } from './context.js';
import { htmlResponse, jsonResponse, type Handler } from './http.js';
import { deviceCodeDonePage, deviceCodeEntryPage } from './pages.js';
import { parseScopes } from './resources.js';
import type { DeviceCode } from './sandbox-state.js';
import type { Interactions } from './sign-in-flow.js';
import { opaqueToken } from './tokens.js';

/**
 * The device code flow (Entra's v2-oauth2-device-code page): POST /{tenant}/oauth2/v2.0/devicecode
 * hands out a device code for the client to poll with and a short user code for a person to enter
 * at `verification_uri` (here /devicelogin on the browser listener, Entra's is
 * https://microsoft.com/devicelogin). Entering the code leads to the usual account picker, then a
 * confirmation that names the app, which doubles as the consent page.
 */

const USER_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

function newUserCode(): string {
  return Array.from({ length: 9 }, () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]).join('');
}

export function deviceCodeEndpoint(context: SandboxContext): Handler {
  return (request) => {
    const ids = errorIdsFor(context, request);
    try {
      const authority = resolveAuthority(context.state, request.params[0] ?? '');
      const clientId = request.form.get('client_id');
      if (!clientId) throw aadsts.missingParameter('client_id');
      const app = context.state.app(clientId);
      if (!app) throw aadsts.applicationNotFound(clientId, directoryName(authority));
      if (authority.kind === 'consumers') throw aadsts.consumersNotSupported(app.clientId, app.displayName);
      const scope = request.form.get('scope');
      if (!scope) throw aadsts.missingParameter('scope');
      parseScopes(scope, directoryName(authority));
      const now = context.now();
      const record: DeviceCode = {
        deviceCode: opaqueToken(),
        userCode: newUserCode(),
        clientId: app.clientId,
        authority: authorityRef(authority),
        scope,
        issuedAt: now,
        expiresAt: now + context.lifetimes.deviceCodeSeconds * 1000,
        status: 'pending',
      };
      context.state.data.deviceCodes.push(record);
      const verificationUri = `${context.browserBase}/devicelogin`;
      return jsonResponse(200, {
        user_code: record.userCode,
        device_code: record.deviceCode,
        verification_uri: verificationUri,
        expires_in: context.lifetimes.deviceCodeSeconds,
        interval: context.lifetimes.deviceCodePollIntervalSeconds,
        message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${record.userCode} to authenticate.`,
      });
    } catch (error) {
      if (error instanceof AadstsError) return jsonResponse(error.status, errorBody(error, ids));
      throw error;
    }
  };
}

/** GET /devicelogin: where the person types the code. */
export function deviceLoginPage(context: SandboxContext): Handler {
  return () => htmlResponse(200, deviceCodeEntryPage({ action: `${context.browserBase}/devicelogin` }));
}

/** POST /devicelogin: the code was entered; on to signing in. */
export function deviceLoginSubmit(context: SandboxContext, interactions: Interactions): Handler {
  return (request) => {
    const entered = (request.form.get('otc') ?? '').replace(/[\s-]/g, '').toUpperCase();
    const now = context.now();
    const record = context.state.data.deviceCodes.find((d) => d.userCode === entered && d.status === 'pending' && d.expiresAt > now);
    const app = record && context.state.app(record.clientId);
    if (!record || !app) {
      const page = deviceCodeEntryPage({ action: `${context.browserBase}/devicelogin`, problem: "That code didn't work. Check the code and try again." });
      return htmlResponse(400, page);
    }
    const scopes = parseScopes(record.scope, '');
    const finished = (approved: boolean) => htmlResponse(200, deviceCodeDonePage({ appName: app.displayName, approved }));
    return interactions.begin({
      purpose: 'sign-in',
      authority: authorityFromRef(context.state, record.authority),
      app,
      requested: requestedDelegated(app, scopes),
      oidc: scopes.oidc,
      // The consent page doubles as Entra's "Are you trying to sign in to …?" confirmation.
      forceConsent: true,
      endings: {
        approved: (user) => {
          record.status = 'approved';
          record.userId = user.id;
          record.sessionId = startSession(context, user, app.clientId);
          return finished(true);
        },
        declined: () => {
          record.status = 'declined';
          return finished(false);
        },
        returned: () => {
          record.status = 'declined';
          return finished(false);
        },
      },
    });
  };
}
