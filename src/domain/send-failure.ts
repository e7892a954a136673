import type { SendError } from './outbound-message.js';

/**
 * What a failed send attempt means (microsoft.md §4.3, §5.1, §6): retry soon, retry after the
 * delay Microsoft named, give up with the reason, or wait for the connection. Decided on status
 * codes and Exchange's enhanced status codes, never on wording alone; the exceptions are Exchange's
 * submission-quota replies, which are 5xx in form and throttling in meaning.
 */

/** The parts of a Graph error answer the decision rests on. */
export interface GraphFailureSignal {
  transport: 'graph';
  status: number;
  /** Graph's `error.code`, e.g. ErrorAccessDenied, ApplicationThrottled. */
  code?: string;
  message?: string;
  retryAfterSeconds?: number;
  /** The request that failed was the one that sends (sendMail, send), not a preparation step. */
  sending: boolean;
}

/** The parts of an SMTP failure (nodemailer's error) the decision rests on. */
export interface SmtpFailureSignal {
  transport: 'smtp';
  /** The server's reply code, when it replied. */
  responseCode?: number;
  /** The server's reply text, e.g. "550 5.1.1 User unknown". */
  response?: string;
  /** nodemailer's error code: ECONNECTION, ETIMEDOUT, ESOCKET, EAUTH, EENVELOPE, EMESSAGE… */
  code?: string;
  /** The SMTP command in progress ("DATA" once the message itself was on its way). */
  command?: string;
}

/** No answer at all: the connection failed or timed out. */
export interface NetworkFailureSignal {
  transport: 'network';
  code?: string;
  message: string;
  /** The request that sends had been made when it failed, so Microsoft may have the message. */
  sending: boolean;
}

export type SendFailureSignal = GraphFailureSignal | SmtpFailureSignal | NetworkFailureSignal;

export interface SendFailure {
  error: SendError;
  retryAfterSeconds?: number;
  /** Microsoft may have accepted the message: look in Sent Items before sending it again. */
  outcomeUnknown: boolean;
}

/** Exchange's replies to a mailbox over its submission rate or concurrency, whatever their class. */
const SMTP_THROTTLING = /SubmissionQuotaExceeded|thread limit exceeded|concurrent connections limit|MessageRateLimit|too many (messages|connections)|rate limit/i;
/** When an SMTP server throttles without saying for how long. */
const SMTP_THROTTLE_DELAY_SECONDS = 60;
/** When Graph answers 429 without Retry-After (microsoft.md §6.1: back off exponentially; this is the first step). */
const GRAPH_THROTTLE_DELAY_SECONDS = 30;

export function classifySendFailure(signal: SendFailureSignal): SendFailure {
  switch (signal.transport) {
    case 'graph':
      return graphFailure(signal);
    case 'smtp':
      return smtpFailure(signal);
    case 'network':
      return {
        error: { class: 'transient', code: 'network_error', message: `The connection to Microsoft failed: ${signal.code ?? signal.message}.` },
        outcomeUnknown: signal.sending,
      };
  }
}

function graphFailure(signal: GraphFailureSignal): SendFailure {
  const { status } = signal;
  const code = signal.code ?? `http_${String(status)}`;
  const said = signal.message ? ` Graph said: "${signal.message}"` : '';
  if (status === 429 || (status === 503 && signal.retryAfterSeconds !== undefined)) {
    return {
      error: { class: 'throttled', code, message: `Microsoft is throttling this mailbox (HTTP ${String(status)}).${said}` },
      retryAfterSeconds: signal.retryAfterSeconds ?? GRAPH_THROTTLE_DELAY_SECONDS,
      outcomeUnknown: false,
    };
  }
  if (status >= 500 || status === 408) {
    // A gateway error says nothing about whether Exchange took the message before it failed.
    return { error: { class: 'transient', code, message: `Microsoft Graph failed (HTTP ${String(status)}).${said}` }, outcomeUnknown: signal.sending && status !== 503 };
  }
  if (status === 401) {
    return { error: { class: 'transient', code, message: `Microsoft Graph refused the access token; the next attempt gets a new one.${said}` }, outcomeUnknown: false };
  }
  const permanent = (message: string, nextStep?: string): SendFailure => ({
    error: { class: 'permanent', code, message: `${message}${said}`, ...(nextStep !== undefined && { nextStep }) },
    outcomeUnknown: false,
  });
  if (code === 'ErrorSendAsDenied') {
    return permanent('The mailbox may not send as the From address.', "An Exchange administrator grants Send As: Add-RecipientPermission -Identity <from address> -Trustee <mailbox or app> -AccessRights SendAs.");
  }
  if (code === 'ErrorAccessDenied' || status === 403) {
    return permanent(
      'Microsoft refused access to the mailbox.',
      "Check that the permission (Mail.Send) is granted and that no application access policy or RBAC for Applications scope excludes this mailbox; run the connection check.",
    );
  }
  if (status === 404) return permanent('Microsoft does not know this mailbox (or it has no Exchange Online mailbox).', 'Check the mailbox address; remove it from the connection if it is gone.');
  if (status === 413) return permanent('The message is too large for Microsoft Graph.', 'Send smaller attachments, or fewer at once.');
  if (code === 'ErrorInvalidRecipients') return permanent('A recipient is not a valid address.', 'Correct the recipients and send again.');
  return permanent(`Microsoft Graph refused the message (HTTP ${String(status)}).`);
}

function smtpFailure(signal: SmtpFailureSignal): SendFailure {
  const reply = signal.response ?? '';
  const enhanced = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(reply)?.[0];
  const replyCode = signal.responseCode;
  const code = replyCode !== undefined ? `smtp_${String(replyCode)}${enhanced ? `_${enhanced}` : ''}` : `smtp_${(signal.code ?? 'error').toLowerCase()}`;
  const said = reply ? ` The server said: "${reply.slice(0, 300)}"` : '';
  if (replyCode === undefined) {
    // nodemailer names a dropped or timed-out session "CONN" whatever it was doing, so only a
    // failure to connect at all (refused, no such host, TLS) proves the message never left.
    const handedOver = signal.command === 'DATA' || signal.command === 'MESSAGE' || ['ETIMEDOUT', 'ESOCKET', 'ECONNRESET', 'EPIPE'].includes(signal.code ?? '');
    return {
      error: { class: 'transient', code, message: `The SMTP connection failed (${signal.code ?? 'no reply'}${signal.command ? ` during ${signal.command}` : ''}).` },
      outcomeUnknown: handedOver,
    };
  }
  if (SMTP_THROTTLING.test(reply) || (replyCode < 500 && enhanced?.startsWith('4.7.') === true)) {
    return {
      error: { class: 'throttled', code, message: `Exchange is throttling this mailbox's submissions.${said}` },
      retryAfterSeconds: SMTP_THROTTLE_DELAY_SECONDS,
      outcomeUnknown: false,
    };
  }
  if (replyCode >= 400 && replyCode < 500) {
    return { error: { class: 'transient', code, message: `The SMTP server deferred the message.${said}` }, outcomeUnknown: false };
  }
  const permanent = (message: string, nextStep?: string): SendFailure => ({
    error: { class: 'permanent', code, message: `${message}${said}`, ...(nextStep !== undefined && { nextStep }) },
    outcomeUnknown: false,
  });
  if (enhanced === '5.7.139') {
    return permanent(
      'SMTP AUTH is disabled for the tenant or the mailbox.',
      'An Exchange administrator enables it for the mailbox: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false (security defaults also disable it); or send through Graph instead.',
    );
  }
  if (enhanced === '5.7.3' || replyCode === 535) {
    return permanent(
      'Exchange refused the sign-in to SMTP with the connection\'s token.',
      'For app-only access the app\'s service principal must be registered in Exchange (New-ServicePrincipal) and hold Send As or FullAccess on the mailbox; run the connection check, which names the cause.',
    );
  }
  if (enhanced === '5.1.1' || enhanced === '5.1.10' || enhanced === '5.1.0') return permanent('A recipient does not exist.', 'Correct the recipient address.');
  if (enhanced === '5.7.60' || /SendAsDenied/i.test(reply)) {
    return permanent('The mailbox may not send as the From address.', 'An Exchange administrator grants Send As on the From address.');
  }
  if (enhanced === '5.3.4' || replyCode === 552) return permanent('The message is larger than the mailbox may send.', 'Send smaller attachments.');
  return permanent('The SMTP server refused the message.');
}

/** Back-off between attempts that failed for a transient reason: 1, 2, 5, 10, 20, 30 minutes, then hourly. */
const RETRY_DELAYS_MS = [60_000, 120_000, 300_000, 600_000, 1_200_000, 1_800_000, 3_600_000];

export function retryDelayMs(failedAttempts: number, random: () => number = Math.random): number {
  const base = RETRY_DELAYS_MS[Math.min(failedAttempts, RETRY_DELAYS_MS.length) - 1] ?? RETRY_DELAYS_MS[0] ?? 60_000;
  // ±10 %, so messages that failed together do not all come back together.
  return Math.round(base * (0.9 + 0.2 * random()));
}

/** How long a message waits for a connection that needs a person (reconnect, consent) before it looks again. */
export const CONNECTION_RECHECK_MS = 5 * 60_000;
/** How long a message is tried for before it fails. */
export const DEFAULT_SEND_RETRY_WINDOW_MS = 24 * 3_600_000;
