import type { Connection, SignInMethod } from '../domain/connection.js';
import { classifySignInError, errorFromMsal, errorLogFields, type MicrosoftError, type SignInErrorClass } from '../identity/microsoft-error.js';
import type { ConnectOutcome } from './connect-results.js';
import { refused, type MicrosoftReference, type OperatorSignInDeps, type SignInReport } from './operator-sign-in.js';

/**
 * Why an operator's sign-in did not connect, in words for the terminal, with the next step and
 * Microsoft's codes and request ids for support. Decided on error codes, never on Microsoft's
 * wording (microsoft-error.ts).
 */

/** What the connect flow's refusal means at the terminal. */
export function reportOutcome(outcome: ConnectOutcome, connection: Pick<Connection, 'id'>): SignInReport {
  switch (outcome.kind) {
    case 'wrong-account':
      return outcome.reason === 'other-user'
        ? refused(
            `${outcome.actual} signed in, but connection ${connection.id} belongs to ${outcome.expected}; nothing was changed.`,
            `Run the command again and sign in as ${outcome.expected}, or create a new connection for the other account.`,
          )
        : refused(
            `${outcome.actual} is not of the connection's Microsoft 365 tenant (${outcome.expected}); nothing was changed.`,
            'Sign in with an account of that tenant, or create a new connection for the other tenant.',
          );
    case 'link-invalid':
      return refused(`Connection ${connection.id} was disconnected or removed during the sign-in; nothing was stored.`, 'Create a new connection.');
    case 'sign-in-error':
      return refused('Microsoft\'s answer lacked who signed in (no tenant or user in the ID token); nothing was stored.', 'Try again; if it persists, check the app registration.', referenceOf(outcome.reference));
    default:
      return refused(`The sign-in ended with "${outcome.kind}"; nothing was stored.`, 'Try again, or send the customer a consent link.');
  }
}

/** Microsoft refused the sign-in: why, in words, and what to do. Nothing was stored. */
export async function reportMicrosoftError(deps: OperatorSignInDeps, connection: Connection, method: SignInMethod, error: MicrosoftError): Promise<SignInReport> {
  const kind = classifySignInError(error);
  const log = deps.logger.child({ customerId: connection.customerId, connectionId: connection.id });
  const fields = { ...errorLogFields(error), errorClass: kind, signInMethod: method };
  if (kind === 'app-misconfigured') log.error('connect: Microsoft refused the vendor app; check its registration and credential', fields);
  else log.info('connect: sign-in did not complete', fields);
  const reference = referenceOf(error);
  const explained = explainError(error, kind, method);
  if (kind !== 'admin-approval') return refused(explained.reason, explained.nextStep, reference);
  const link = await deps.links.issue(connection.customerId, connection.id, 'admin-grant');
  return refused(explained.reason, `${explained.nextStep}\n  ${link.url}`, reference);
}

/** Normalizes what msal throws while polling for a device code sign-in; undefined when msal did not throw it. */
export function deviceCodeError(thrown: unknown): MicrosoftError | undefined {
  const error = errorFromMsal(thrown);
  if (!error) return undefined;
  // msal-node reports the token endpoint's polling errors as post_request_failed, with the OAuth
  // error (authorization_declined, expired_token, bad_verification_code) as the message.
  const message = (thrown as { errorMessage?: unknown }).errorMessage;
  if (error.error === 'post_request_failed' && typeof message === 'string' && /^[a-z_]+$/.test(message)) return { ...error, error: message };
  // msal's own clock ran out before Microsoft said so.
  if (error.error === 'device_code_expired') return { ...error, error: 'expired_token' };
  return error;
}

const MFA_REQUIRED = new Set([50076, 50079, 50158]);

function explainError(error: MicrosoftError, kind: SignInErrorClass, method: SignInMethod): { reason: string; nextStep: string } {
  const again = 'Run the command again';
  if (error.error === 'authorization_declined' || kind === 'declined') {
    return { reason: 'The sign-in was declined on Microsoft\'s page; nothing was connected.', nextStep: `${again} when the user is ready to accept.` };
  }
  if (error.error === 'expired_token' || error.error === 'bad_verification_code') {
    return { reason: 'Nobody completed the sign-in before the code expired; nothing was connected.', nextStep: `${again} and enter the new code within its lifetime (15 minutes at Microsoft).` };
  }
  if (error.aadsts === 50126) {
    return { reason: 'Microsoft did not accept the username and password; nothing was connected.', nextStep: 'Check both and try again. Repeated failures can lock the account (Smart Lockout).' };
  }
  if (error.aadsts === 50034) {
    return { reason: 'Microsoft knows no such user in that directory; nothing was connected.', nextStep: 'Check the username (the user principal name, e.g. megan@contoso.com).' };
  }
  if (error.aadsts !== undefined && MFA_REQUIRED.has(error.aadsts)) {
    return { reason: 'The account must use multi-factor authentication, which a password sign-in cannot do; nothing was connected.', nextStep: 'Use --device-code instead.' };
  }
  switch (kind) {
    case 'admin-approval':
      return {
        reason:
          method === 'password'
            ? 'Nobody has granted the app\'s permissions for this user, and a password sign-in cannot ask for consent; nothing was connected.'
            : 'The organization does not let this user consent to the app\'s permissions; nothing was connected.',
        nextStep: `An administrator of the tenant grants them for the organization with this link (or the user connects once through a consent link), then ${again.toLowerCase()}:`,
      };
    case 'blocked':
      return {
        reason: 'The tenant\'s policy refused the sign-in (Conditional Access, a disabled account, or similar); nothing was connected.',
        nextStep: 'The tenant\'s administrator can find the reason in the Entra sign-in logs under the trace id below.',
      };
    case 'app-misconfigured':
      return {
        reason: 'Microsoft refused the vendor\'s app registration or its credential; nothing was connected.',
        nextStep:
          method === 'device-code'
            ? 'Check the app registration: device code needs "Allow public client flows" (Authentication blade) switched on.'
            : 'Check the app registration and its credential (ENTRA_* settings).',
      };
    case 'unavailable':
      return { reason: 'Microsoft is failing or throttling requests right now; nothing was connected.', nextStep: `${again} in a few minutes.` };
    default:
      return { reason: `Microsoft refused the sign-in (${error.error}${error.aadsts === undefined ? '' : `, AADSTS${error.aadsts}`}); nothing was connected.`, nextStep: `${again}; if it persists, look the code up in Microsoft's error reference.` };
  }
}

function referenceOf(source: { error?: string; oauthError?: string; aadsts?: number; traceId?: string; correlationId?: string }): MicrosoftReference {
  return {
    error: source.error ?? source.oauthError ?? 'unknown',
    ...(source.aadsts !== undefined && { aadsts: source.aadsts }),
    ...(source.traceId !== undefined && { traceId: source.traceId }),
    ...(source.correlationId !== undefined && { correlationId: source.correlationId }),
  };
}
