import type { ConnectionMode } from './connection.js';
import { quotePowerShell } from './exchange-setup.js';

/**
 * Why a connectivity probe failed, named from what the server answered or the network error, with
 * what it means and what the customer's administrator does about it. Exchange Online answers
 * different set-up mistakes with a few fixed texts (microsoft.md §4.3–§4.4); Graph with an HTTP
 * status and an error code (§5, §6). Decisions rest on those codes and fixed texts, never on the
 * rest of a message, which Microsoft may reword.
 */

export const PROBE_CAUSES = [
  'network_unreachable',
  'tls_failed',
  'smtp_auth_disabled',
  'authentication_unsuccessful',
  'not_connected',
  'exchange_service_principal_missing',
  'mailbox_permission_missing',
  'authentication_failed',
  'recipient_rejected',
  'consent_missing',
  'access_denied',
  'mailbox_not_found',
  'invalid_token',
  'throttled',
  'unavailable',
  'unknown',
] as const;
export type ProbeCause = (typeof PROBE_CAUSES)[number];

export type ProbeProtocol = 'imap' | 'pop3' | 'smtp' | 'graph';

/**
 * How far a mail protocol probe got: `connect` covers TCP, TLS and the greeting; `mailbox` is
 * anything after a successful login that reads the mailbox (IMAP SELECT, POP3 STAT); `send` is
 * SMTP's MAIL FROM, RCPT TO and DATA.
 */
export type ProbeStage = 'connect' | 'authenticate' | 'mailbox' | 'send';

export type ProbeResult<Detail = undefined> =
  | { ok: true; durationMs: number; detail?: Detail }
  | {
      ok: false;
      durationMs: number;
      cause: ProbeCause;
      /** The server's reply, credentials removed. */
      serverText?: string;
      /** Node's or the client library's error code (ECONNREFUSED, CERT_HAS_EXPIRED, EAUTH), when there was one. */
      errorCode?: string;
    };

export interface MailProbeFailure {
  stage: ProbeStage;
  /** Whose token it was: an app-only token refused means something else than a user's. */
  mode: ConnectionMode;
  /** Node's code for a network or TLS error, or the client library's own (ETIMEDOUT, ETLS, EAUTH). */
  errorCode?: string;
  /** The server's reply as sent, e.g. `535 5.7.139 Authentication unsuccessful, …` or `-ERR …`. */
  serverText?: string;
  /** The protocol command that failed, e.g. `RCPT TO`, when the client library names it. */
  command?: string;
}

export interface GraphProbeFailure {
  /** HTTP status, when Graph answered. */
  status?: number;
  /** `error.code` of Graph's JSON error, e.g. ErrorAccessDenied. */
  graphCode?: string;
  /** `error.message` of Graph's JSON error. */
  message?: string;
  /** Node's code when the request did not get an answer (ECONNREFUSED, TimeoutError, …). */
  errorCode?: string;
}

// Node's and the client libraries' codes for "could not reach the server" (imapflow:
// CONNECT_TIMEOUT, GREETING_TIMEOUT; nodemailer: EDNS; fetch: UND_ERR_CONNECT_TIMEOUT, TimeoutError).
const UNREACHABLE = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME', 'EHOSTUNREACH', 'EHOSTDOWN',
  'ENETUNREACH', 'ENETDOWN', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'ETIMEOUT', 'CONNECT_TIMEOUT', 'GREETING_TIMEOUT',
  'UPGRADE_TIMEOUT', 'EDNS', 'UND_ERR_CONNECT_TIMEOUT', 'TimeoutError',
]);
// The connection broke: before the greeting that is the network; later, a server that gave up.
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ECONNECTION', 'NoConnection', 'EConnectionClosed', 'UND_ERR_SOCKET']);
// OpenSSL's certificate verdicts (CERT_HAS_EXPIRED, SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …),
// Node's ERR_TLS_* and ERR_SSL_* (e.g. TLS spoken to a plain-text port), nodemailer's ETLS.
const TLS_FAILURE = /^(?:ERR_TLS_|ERR_SSL_)|CERT|SELF_SIGNED|^UNABLE_TO_(?:GET|VERIFY|DECRYPT|DECODE)_|^(?:HOSTNAME_MISMATCH|INVALID_CA|EPROTO|ETLS|ClosedAfterConnectTLS)$/;

function transportCause(errorCode: string | undefined, stage: ProbeStage): ProbeCause | undefined {
  if (errorCode === undefined) return undefined;
  if (TLS_FAILURE.test(errorCode)) return 'tls_failed';
  if (UNREACHABLE.has(errorCode)) return 'network_unreachable';
  if (DROPPED.has(errorCode)) return stage === 'connect' ? 'network_unreachable' : 'unavailable';
  return undefined;
}

// Exchange, once a token is accepted, when the identity has no access to the mailbox (IMAP; POP3 alike).
const NOT_CONNECTED = /authenticated but not connected/i;

/** A refused login: for an app-only token, Exchange does not know the app (New-ServicePrincipal). */
function refusedLogin(mode: ConnectionMode): ProbeCause {
  return mode === 'application' ? 'exchange_service_principal_missing' : 'authentication_failed';
}

export function imapProbeCause(failure: MailProbeFailure): ProbeCause {
  const text = failure.serverText ?? '';
  if (NOT_CONNECTED.test(text)) return 'not_connected';
  // Exchange: "BAD Request is throttled. Suggested Backoff Time: 92415 milliseconds"; imapflow: ETHROTTLE.
  if (failure.errorCode === 'ETHROTTLE' || /Request is throttled|\[LIMIT\]/i.test(text)) return 'throttled';
  if (/\[UNAVAILABLE\]|\[INUSE\]|Server Unavailable/i.test(text)) return 'unavailable';
  const transport = transportCause(failure.errorCode, failure.stage);
  if (transport) return transport;
  if (failure.stage === 'authenticate' || /\[AUTHENTICATIONFAILED\]|\[AUTHORIZATIONFAILED\]|AUTHENTICATE failed/i.test(text)) {
    return refusedLogin(failure.mode);
  }
  if (failure.stage === 'mailbox') return 'mailbox_permission_missing';
  return 'unknown';
}

export function pop3ProbeCause(failure: MailProbeFailure): ProbeCause {
  const text = failure.serverText ?? '';
  if (NOT_CONNECTED.test(text)) return 'not_connected';
  // RFC 2449 response codes.
  if (/\[LOGIN-DELAY\]/i.test(text)) return 'throttled';
  if (/\[SYS\/TEMP\]|\[IN-USE\]|Server Unavailable/i.test(text)) return 'unavailable';
  const transport = transportCause(failure.errorCode, failure.stage);
  if (transport) return transport;
  // Exchange: "-ERR Authentication failure: unknown user name or bad password."
  if (failure.stage === 'authenticate' || /\[AUTH\]|Authentication fail/i.test(text)) return refusedLogin(failure.mode);
  if (failure.stage === 'mailbox') return 'mailbox_permission_missing';
  return 'unknown';
}

export function smtpProbeCause(failure: MailProbeFailure): ProbeCause {
  const text = failure.serverText ?? '';
  const reply = Number(/^\d{3}/.exec(text)?.[0] ?? Number.NaN);
  if (/\b5\.7\.139\b/.test(text)) return 'smtp_auth_disabled';
  if (/\b5\.7\.3 Authentication unsuccessful/i.test(text) || (reply === 535 && /\b5\.7\.3\b/.test(text))) return 'authentication_unsuccessful';
  // Exchange refuses TLS 1.0 and 1.1 with 421 4.7.66.
  if (/\b4\.7\.66\b/.test(text)) return 'tls_failed';
  // Authenticated, but not allowed to send as this address: 550 5.7.60, 554 5.2.252 SendAsDenied.
  if (/\b5\.7\.60\b|\b5\.2\.252\b|SendAsDenied/i.test(text)) return 'mailbox_permission_missing';
  // Exchange's sending limits: "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
  // "554 5.2.0 …SubmissionQuotaExceededException".
  if (/throttl|limit exceeded|quota ?exceeded|too many|rate limit/i.test(text)) return 'throttled';
  const transport = transportCause(failure.errorCode, failure.stage);
  if (transport) return transport;
  if (reply >= 400 && reply < 500) return 'unavailable';
  if (failure.stage === 'authenticate' || failure.errorCode === 'EAUTH' || reply === 535 || /\b5\.7\.57\b/.test(text)) return 'authentication_failed';
  if (failure.stage === 'send') {
    if (failure.command === 'RCPT TO') return 'recipient_rejected';
    if (failure.command === 'MAIL FROM') return 'mailbox_permission_missing';
  }
  return 'unknown';
}

// Graph's codes for a mailbox that is not there, or not in Exchange Online (MailboxNotEnabledForRESTAPI:
// "The mailbox is either inactive, soft-deleted, or is hosted on-premise.").
const MAILBOX_NOT_FOUND = new Set([
  'ErrorInvalidUser', 'MailboxNotEnabledForRESTAPI', 'MailboxNotSupportedForRESTAPI', 'ErrorNonExistentMailbox',
  'ResourceNotFound', 'Request_ResourceNotFound',
]);

export function graphProbeCause(failure: GraphProbeFailure): ProbeCause {
  const { status, graphCode, message = '' } = failure;
  if (status === undefined) return transportCause(failure.errorCode, 'connect') ?? 'unknown';
  if (graphCode !== undefined && MAILBOX_NOT_FOUND.has(graphCode)) return 'mailbox_not_found';
  if (status === 401 || graphCode === 'InvalidAuthenticationToken') return 'invalid_token';
  if (status === 429 || graphCode === 'ApplicationThrottled' || /MailboxConcurrency/i.test(message)) return 'throttled';
  if (status === 403) {
    // An application access policy or RBAC for Applications scope that leaves the mailbox out
    // answers "Access to OData is disabled."; a token without the permission, "Access is denied."
    if (/OData is disabled|access policy/i.test(message)) return 'access_denied';
    if (graphCode === 'Authorization_RequestDenied' || graphCode === 'ErrorAccessDenied') return 'consent_missing';
    return 'access_denied';
  }
  if (status === 404) return 'mailbox_not_found';
  if (status >= 500) return 'unavailable';
  return 'unknown';
}

export interface ProbeCauseContext {
  protocol: ProbeProtocol;
  mode: ConnectionMode;
  /** The mailbox probed; the commands name it when given. */
  mailbox?: string;
  /** Where the probe went, e.g. `outlook.office365.com port 993`; the global cloud's endpoint when not given. */
  endpoint?: string;
}

export interface ProbeCauseDescription {
  /** What happened, in the customer administrator's words. */
  explanation: string;
  /** What to do about it, with the PowerShell to run where Exchange needs it. */
  nextStep: string;
}

const PROTOCOL_NAMES: Record<ProbeProtocol, string> = { imap: 'IMAP', pop3: 'POP3', smtp: 'SMTP', graph: 'Microsoft Graph' };
// Where the global cloud serves each protocol (microsoft.md §4.2); national clouds use their own hosts.
const ENDPOINTS: Record<ProbeProtocol, string> = {
  imap: 'outlook.office365.com port 993',
  pop3: 'outlook.office365.com port 995',
  smtp: 'smtp.office365.com port 587',
  graph: 'graph.microsoft.com port 443',
};
// The per-mailbox switch that turns a protocol off in Exchange Online.
const PROTOCOL_SWITCHES: Record<ProbeProtocol, string | undefined> = {
  imap: '-ImapEnabled $true',
  pop3: '-PopEnabled $true',
  smtp: '-SmtpClientAuthenticationDisabled $false',
  graph: undefined,
};
const SERVICE_PRINCIPAL = '<service principal object id>';
const SIGNED_IN_USER = '<signed-in user>';
const REGISTER_SERVICE_PRINCIPAL =
  `New-ServicePrincipal -AppId <app id> -ObjectId ${SERVICE_PRINCIPAL}, where the object id is the Enterprise application's ` +
  "(service principal's), not the app registration's; Get-ServicePrincipal | fl shows what is registered";
const SETUP_PAGE = "The connection's Exchange set-up page gives these commands with the real ids.";

interface Words {
  kind: ProbeProtocol;
  /** The protocol's name in prose. */
  protocol: string;
  /** The mailbox in prose. */
  address: string;
  /** The mailbox as a PowerShell argument. */
  mailbox: string;
  mode: ConnectionMode;
  endpoint: string;
}
type Describe = (words: Words) => ProbeCauseDescription;

function grantAccess(mailbox: string, mode: ConnectionMode, protocol: ProbeProtocol): string {
  const who = mode === 'application' ? SERVICE_PRINCIPAL : SIGNED_IN_USER;
  return protocol === 'smtp'
    ? `Add-RecipientPermission -Identity ${mailbox} -Trustee ${who} -AccessRights SendAs -Confirm:$false`
    : `Add-MailboxPermission -Identity ${mailbox} -User ${who} -AccessRights FullAccess`;
}

const DESCRIPTIONS: Record<ProbeCause, Describe> = {
  network_unreachable: ({ protocol, endpoint }) => ({
    explanation: `The connector could not reach the ${protocol} server: the host name did not resolve, the connection was refused, or the server did not answer in time.`,
    nextStep:
      `Check the ${protocol} host and port (${endpoint}) and that no firewall ` +
      'between the connector and Microsoft 365 blocks it. If they are right, try again in a few minutes.',
  }),
  tls_failed: ({ protocol }) => ({
    explanation:
      `The ${protocol} server was reached, but the TLS handshake failed: its certificate is not trusted, has expired or names another host, ` +
      'or the server does not speak TLS on this port.',
    nextStep:
      "Use the server's own host name (not an IP address or an alias its certificate does not list) and its TLS port. " +
      'A proxy or firewall that inspects TLS must let this host through unchanged.',
  }),
  smtp_auth_disabled: ({ mailbox }) => ({
    explanation:
      'Exchange Online accepted the token but refused SMTP AUTH: authenticated SMTP (SmtpClientAuthentication) is turned off for the ' +
      'organization or for this mailbox. Organizations with security defaults, and many created after January 2020, have it off.',
    nextStep:
      `An Exchange administrator turns it on for the mailbox: Set-CASMailbox -Identity ${mailbox} -SmtpClientAuthenticationDisabled $false ` +
      '(or for the whole organization: Set-TransportConfig -SmtpClientAuthenticationDisabled $false), then tries again after a few minutes.',
  }),
  authentication_unsuccessful: ({ mailbox, mode }) =>
    mode === 'application'
      ? {
          explanation:
            'Exchange Online refused the app\'s token for SMTP ("535 5.7.3 Authentication unsuccessful"). Usually the app\'s service principal ' +
            'is not registered in Exchange Online, or the app may not send as this mailbox.',
          nextStep: `An Exchange administrator runs ${REGISTER_SERVICE_PRINCIPAL}; then ${grantAccess(mailbox, mode, 'smtp')}. ${SETUP_PAGE}`,
        }
      : {
          explanation:
            'Exchange Online refused the token for SMTP ("535 5.7.3 Authentication unsuccessful"). Usually the token lacks the SMTP.Send ' +
            'permission or was issued for another resource, or the signed-in user may not send as this mailbox.',
          nextStep:
            `Reconnect so that the user consents to SMTP.Send. To send as a mailbox other than their own, the user needs Send As on it: ${grantAccess(mailbox, mode, 'smtp')}.`,
        },
  not_connected: ({ mailbox, mode }) =>
    mode === 'application'
      ? {
          explanation:
            'Exchange Online accepted the app\'s token, then answered "User is authenticated but not connected.": the app has no permission on ' +
            'this mailbox, or its service principal was registered with the wrong object id.',
          nextStep: `An Exchange administrator runs ${grantAccess(mailbox, mode, 'imap')}, and checks the registration: ${REGISTER_SERVICE_PRINCIPAL}. ${SETUP_PAGE}`,
        }
      : {
          explanation:
            'Exchange Online accepted the token, then answered "User is authenticated but not connected.": the signed-in user has no access to ' +
            'this mailbox (a shared mailbox needs Full Access), or the mailbox address is wrong.',
          nextStep: `Check the mailbox address. For a mailbox other than the user's own, an Exchange administrator runs ${grantAccess(mailbox, mode, 'imap')}.`,
        },
  exchange_service_principal_missing: ({ protocol }) => ({
    explanation:
      `Exchange Online refused the app's token for ${protocol}: the app's service principal is not registered in Exchange Online (or with the ` +
      `wrong object id), or the administrator's consent does not include ${protocol} access.`,
    nextStep: `An Exchange administrator runs ${REGISTER_SERVICE_PRINCIPAL}. If it is registered, grant the admin consent again. ${SETUP_PAGE}`,
  }),
  mailbox_permission_missing: ({ kind, protocol, address, mailbox, mode }) => ({
    explanation:
      kind === 'smtp'
        ? `Signed in, but the SMTP server refused to send as ${address}: the ${mode === 'application' ? 'app' : 'signed-in user'} may not send as this address.`
        : `Signed in, but the ${protocol} server refused to open ${address}: the ${mode === 'application' ? 'app' : 'signed-in user'} has no permission on it.`,
    nextStep: `An Exchange administrator runs ${grantAccess(mailbox, mode, kind)}.${mode === 'application' ? ` ${SETUP_PAGE}` : ''}`,
  }),
  authentication_failed: ({ kind, protocol, mailbox, mode }) => {
    const protocolSwitch = PROTOCOL_SWITCHES[kind];
    const enable = protocolSwitch === undefined ? '' : ` An Exchange administrator can check that ${protocol} is on for the mailbox: Set-CASMailbox -Identity ${mailbox} ${protocolSwitch}.`;
    return {
      explanation: `The ${protocol} server refused the token: it has expired or was revoked, was issued for another user or resource, or ${protocol} is turned off for this mailbox.`,
      nextStep:
        (mode === 'application'
          ? 'Try again; the connector gets a fresh token. If it fails again, check that the admin consent is still granted.'
          : 'Reconnect (the user signs in again) so that the connector gets a fresh token with the right permissions.') + enable,
    };
  },
  recipient_rejected: () => ({
    explanation: 'Signing in worked, but the server refused the recipient of the test message.',
    nextStep: "Check the test message's recipient address and try again.",
  }),
  consent_missing: ({ mode }) => ({
    explanation:
      'Microsoft Graph refused: the token does not carry the mail permission this needs (Mail.ReadWrite to read, Mail.Send to send), ' +
      "because consent was not granted or was withdrawn — or, for a mailbox other than the signed-in user's, the user has no access to it.",
    nextStep:
      mode === 'application'
        ? "An administrator grants the admin consent again with the connection's consent link; the Entra admin center lists what was granted under Enterprise applications → Permissions."
        : "Open the connection's consent link again and accept; where users may not consent, an administrator grants consent for the organization.",
  }),
  access_denied: ({ address, mailbox, mode }) =>
    mode === 'application'
      ? {
          explanation: `Microsoft Graph refused access to ${address}: an application access policy or an RBAC for Applications scope leaves this mailbox out.`,
          nextStep:
            `An Exchange administrator checks with Test-ApplicationAccessPolicy -Identity ${mailbox} -AppId <app id> (or Test-ServicePrincipalAuthorization ` +
            `-Identity ${SERVICE_PRINCIPAL} -Resource ${mailbox}) and adds the mailbox to the policy's group or scope.`,
        }
      : {
          explanation: `Microsoft Graph refused access to ${address}: the signed-in user has no access to it, or a policy blocks it.`,
          nextStep: `For a mailbox other than the user's own, an Exchange administrator runs ${grantAccess(mailbox, mode, 'graph')}.`,
        },
  mailbox_not_found: ({ address }) => ({
    explanation:
      `Microsoft Graph found no Exchange Online mailbox for ${address}: the address is wrong, the user has no Exchange Online licence, or ` +
      'the mailbox is on-premises, inactive or soft-deleted.',
    nextStep: 'Check the address (user principal name or primary SMTP address) and that the user has an Exchange Online licence. Mailboxes on-premises cannot be reached through Graph.',
  }),
  invalid_token: ({ mode }) => ({
    explanation: 'Microsoft Graph did not accept the token: it has expired or was revoked, or was issued for another resource or cloud.',
    nextStep:
      mode === 'application'
        ? 'Try again; the connector gets a fresh token. If it fails again, check that the app registration is in the cloud this tenant lives in.'
        : 'Reconnect (the user signs in again) so that the connector gets a fresh token.',
  }),
  throttled: () => ({
    explanation: 'Microsoft 365 is throttling this mailbox or app: too many requests or connections at once.',
    nextStep: 'Nothing needs changing: try again later. If it keeps happening, reduce the connections and requests other programs make to this mailbox.',
  }),
  unavailable: ({ protocol }) => ({
    explanation: `The ${protocol} service answered with a temporary failure.`,
    nextStep: 'Try again in a few minutes. If it continues, see Service health in the Microsoft 365 admin center.',
  }),
  unknown: ({ protocol }) => ({
    explanation: `The ${protocol} check failed in a way the connector does not recognise.`,
    nextStep: "Try again. If it fails again, pass the server's reply shown with this result to support.",
  }),
};

export function describeProbeCause(cause: ProbeCause, context: ProbeCauseContext): ProbeCauseDescription {
  const address = context.mailbox === 'me' ? undefined : context.mailbox;
  return DESCRIPTIONS[cause]({
    kind: context.protocol,
    protocol: PROTOCOL_NAMES[context.protocol],
    address: address ?? 'the mailbox',
    // Quoted so that a pasted command takes the address as one value, whatever it contains.
    mailbox: address === undefined ? "'<mailbox>'" : quotePowerShell(address),
    mode: context.mode,
    endpoint: context.endpoint ?? `Exchange Online in the global cloud: ${ENDPOINTS[context.protocol]}`,
  });
}
