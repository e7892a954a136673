import { ImapFlow } from 'imapflow';
import { decodeJwt } from 'jose';
import nodemailer from 'nodemailer';
import type { ConnectionMode } from '../domain/connection.js';
import {
  graphProbeCause,
  imapProbeCause,
  pop3ProbeCause,
  smtpProbeCause,
  type MailProbeFailure,
  type ProbeCause,
  type ProbeResult,
  type ProbeStage,
} from '../domain/connectivity.js';
import { REDACTED, redactText } from '../telemetry/redact.js';
import { errorFields, fetchErrorCode, type ErrorFields } from './error-fields.js';
import { withinDeadline } from './deadline.js';
import { Pop3Client } from './pop3-client.js';

/**
 * One look at each way the connector reaches a mailbox, the way it will use it: sign in with the
 * token, touch the mailbox without changing it, leave. A failure comes back named
 * (domain/connectivity), never thrown, with the server's words minus anything credential-like.
 * Each probe uses the transport Exchange Online offers: IMAP and POP3 over implicit TLS (993,
 * 995), SMTP submission with STARTTLS (587), Graph over https.
 */

export interface MailProbeInput {
  host: string;
  port: number;
  /** Trust anchors for the server's certificate; the system's CAs when left out. */
  tls?: { ca?: string };
  /** The mailbox to open, as XOAUTH2's `user=`: for a shared mailbox its address, whoever's token it is. */
  user: string;
  accessToken: string;
  /** For the whole probe, from connecting to logging out. */
  timeoutMs: number;
  /** Whose token it is; read from the token's claims when left out. */
  mode?: ConnectionMode;
}

export interface SmtpProbeInput extends MailProbeInput {
  /** Also send one plain test message from `user` to this address. */
  testMessageTo?: string;
  /** Names the sender in the test message: "Connectivity test from <vendorName>". */
  vendorName?: string;
}

export interface GraphProbeInput {
  /** Graph's origin in the tenant's cloud, e.g. https://graph.microsoft.com */
  graphUrl: string;
  /** An address, or 'me' for the signed-in user's own mailbox. */
  mailbox: string;
  accessToken: string;
  /** Read the inbox (the mailbox receives through Graph); otherwise only look the mailbox's user up. */
  receive: boolean;
  timeoutMs?: number;
}

export interface ImapProbeDetail {
  /** Messages in the INBOX. */
  messages: number;
}

export interface Pop3ProbeDetail {
  messages: number;
  octets: number;
}

export interface SmtpProbeDetail {
  /** The Message-ID of the test message the server accepted. */
  testMessageId: string;
  /** The server's reply to it, which names its queue id. */
  serverResponse: string;
}

export interface GraphProbeDetail {
  /** The inbox folder's id, or the user's. */
  id: string;
  displayName?: string;
}

const DEFAULT_GRAPH_TIMEOUT_MS = 30_000;
const MAX_SERVER_TEXT = 500;

export async function probeImap(input: MailProbeInput): Promise<ProbeResult<ImapProbeDetail>> {
  const started = performance.now();
  const client = new ImapFlow({
    host: input.host,
    port: input.port,
    secure: true,
    ...(input.tls?.ca !== undefined && { tls: { ca: input.tls.ca } }),
    auth: { user: input.user, accessToken: input.accessToken },
    logger: false,
    connectionTimeout: input.timeoutMs,
    greetingTimeout: input.timeoutMs,
    socketTimeout: input.timeoutMs,
    disableAutoIdle: true,
  });
  // A failure is also emitted as 'error'; the rejected promise is what counts here.
  client.on('error', () => undefined);
  // Where the probe is; the work below moves it on, the failure handling reads it.
  const at: { stage: ProbeStage } = { stage: 'connect' };
  try {
    const detail = await withinDeadline(
      input.timeoutMs,
      async () => {
        await client.connect();
        at.stage = 'mailbox';
        // Read-only (EXAMINE), so the probe changes no \Recent or \Seen flag.
        const mailbox = await client.mailboxOpen('INBOX', { readOnly: true });
        await client.logout();
        return { messages: mailbox.exists };
      },
      () => {
        client.close();
      },
      'The probe',
    );
    return { ok: true, durationMs: since(started), detail };
  } catch (error) {
    const fields = errorFields(error);
    let stage = at.stage;
    if (stage === 'connect' && (fields.authenticationFailed === true || /\bAUTHENTICATE\b/i.test(String(fields.executedCommand)))) stage = 'authenticate';
    // Exchange answers a login it cannot connect to a mailbox with OK, then BAD to what follows.
    if (stage === 'connect' && client.authenticated !== false) stage = 'mailbox';
    client.close();
    const failure = mailFailure(input, stage, fields, imapServerText(fields));
    return failed(started, imapProbeCause(failure), failure);
  }
}

export async function probePop3(input: MailProbeInput): Promise<ProbeResult<Pop3ProbeDetail>> {
  const started = performance.now();
  let client: Pop3Client | undefined;
  const at: { stage: ProbeStage } = { stage: 'connect' };
  try {
    const detail = await withinDeadline(
      input.timeoutMs,
      async () => {
        client = await Pop3Client.connect({ host: input.host, port: input.port, tls: input.tls ?? {}, timeoutMs: input.timeoutMs });
        at.stage = 'authenticate';
        await client.authenticateXoauth2(input.user, input.accessToken);
        at.stage = 'mailbox';
        const { count, size } = await client.stat();
        await client.quit();
        return { messages: count, octets: size };
      },
      () => client?.close(),
      'The probe',
    );
    return { ok: true, durationMs: since(started), detail };
  } catch (error) {
    client?.close();
    const fields = errorFields(error);
    const failure = mailFailure(input, at.stage, fields, typeof fields.serverText === 'string' ? fields.serverText : undefined);
    return failed(started, pop3ProbeCause(failure), failure);
  }
}

export async function probeSmtp(input: SmtpProbeInput): Promise<ProbeResult<SmtpProbeDetail>> {
  const started = performance.now();
  const transport = nodemailer.createTransport({
    host: input.host,
    port: input.port,
    secure: false,
    // Never send the token over a connection that did not upgrade to TLS.
    requireTLS: true,
    ...(input.tls?.ca !== undefined && { tls: { ca: input.tls.ca } }),
    auth: { type: 'OAuth2', user: input.user, accessToken: input.accessToken },
    connectionTimeout: input.timeoutMs,
    greetingTimeout: input.timeoutMs,
    socketTimeout: input.timeoutMs,
    logger: false,
    debug: false,
  });
  const at: { stage: ProbeStage } = { stage: 'connect' };
  try {
    const detail = await withinDeadline(
      input.timeoutMs,
      async () => {
        await transport.verify();
        if (input.testMessageTo === undefined) return undefined;
        at.stage = 'send';
        const vendor = singleLine(input.vendorName ?? '');
        const info = await transport.sendMail({
          from: input.user,
          to: input.testMessageTo,
          subject: vendor ? `Connectivity test from ${vendor}` : 'Connectivity test',
          text: [
            `This is a connectivity test${vendor ? ` from ${vendor}` : ''}.`,
            `It checks that mail can be sent from ${input.user} over SMTP.`,
            'Nothing needs doing; you can delete it.',
            '',
          ].join('\r\n'),
        });
        return { testMessageId: info.messageId, serverResponse: redactText(info.response) };
      },
      () => {
        transport.close();
      },
      'The probe',
    );
    return { ok: true, durationMs: since(started), ...(detail && { detail }) };
  } catch (error) {
    transport.close();
    const fields = errorFields(error);
    const command = typeof fields.command === 'string' ? fields.command : undefined;
    const failure: MailProbeFailure = {
      ...mailFailure(input, smtpStage(command, at.stage), fields, typeof fields.response === 'string' ? fields.response : undefined),
      ...(command !== undefined && { command }),
    };
    return failed(started, smtpProbeCause(failure), failure);
  }
}

export async function probeGraph(input: GraphProbeInput): Promise<ProbeResult<GraphProbeDetail>> {
  const started = performance.now();
  const base = input.graphUrl.replace(/\/+$/, '');
  const owner = input.mailbox === 'me' ? 'me' : `users/${encodeURIComponent(input.mailbox)}`;
  const url = input.receive ? `${base}/v1.0/${owner}/mailFolders/inbox?$select=id,displayName` : `${base}/v1.0/${owner}?$select=id`;
  let response: Response;
  let body: string;
  try {
    response = await fetch(url, {
      headers: { authorization: `Bearer ${input.accessToken}`, accept: 'application/json' },
      // A redirect would carry the token to wherever it points.
      redirect: 'error',
      signal: AbortSignal.timeout(input.timeoutMs ?? DEFAULT_GRAPH_TIMEOUT_MS),
    });
    body = await response.text();
  } catch (error) {
    const errorCode = fetchErrorCode(error);
    return failed(started, graphProbeCause(errorCode === undefined ? {} : { errorCode }), errorCode === undefined ? {} : { errorCode });
  }
  const json = parseJson(body);
  if (response.ok) {
    const { id, displayName } = (json ?? {}) as { id?: unknown; displayName?: unknown };
    if (typeof id !== 'string') return failed(started, 'unknown', { serverText: serverWords(`HTTP ${response.status} ${body}`, [input.accessToken]) });
    return { ok: true, durationMs: since(started), detail: { id, ...(typeof displayName === 'string' && { displayName }) } };
  }
  const { code, message } = ((json as { error?: unknown } | undefined)?.error ?? {}) as { code?: unknown; message?: unknown };
  const graphCode = typeof code === 'string' ? code : undefined;
  const graphMessage = typeof message === 'string' ? message : undefined;
  const cause = graphProbeCause({ status: response.status, ...(graphCode !== undefined && { graphCode }), ...(graphMessage !== undefined && { message: graphMessage }) });
  // Only Graph's words are scrubbed: a code like InvalidAuthenticationToken followed by ":" reads as a credential's name to the redactor.
  const said = graphCode === undefined ? serverWords(body, [input.accessToken]) : `${graphCode}: ${serverWords(graphMessage ?? '', [input.accessToken])}`;
  return failed(started, cause, { serverText: `HTTP ${response.status} ${said}`.trim() });
}



function mailFailure(input: MailProbeInput, stage: ProbeStage, fields: ErrorFields, serverText: string | undefined): MailProbeFailure {
  // nodemailer keeps Node's own code (ECONNREFUSED) as originalCode under its own (ESOCKET).
  const code = typeof fields.originalCode === 'string' ? fields.originalCode : fields.code;
  const xoauth2 = Buffer.from(`user=${input.user}\x01auth=Bearer ${input.accessToken}\x01\x01`).toString('base64');
  const redacted = serverText === undefined || serverText.trim() === '' ? undefined : serverWords(serverText, [xoauth2, input.accessToken]);
  return {
    stage,
    mode: input.mode ?? modeOfToken(input.accessToken),
    ...(typeof code === 'string' && { errorCode: code }),
    ...(redacted !== undefined && { serverText: redacted }),
  };
}

function failed<D>(started: number, cause: ProbeCause, details: { serverText?: string; errorCode?: string }): ProbeResult<D> {
  return {
    ok: false,
    durationMs: since(started),
    cause,
    ...(details.serverText !== undefined && { serverText: details.serverText }),
    ...(details.errorCode !== undefined && { errorCode: details.errorCode }),
  };
}

/** imapflow's failures carry the tagged reply ("2 NO [AUTHENTICATIONFAILED] …"), and the BYE that ended a session. */
function imapServerText(fields: ErrorFields): string | undefined {
  const parts: string[] = [];
  if (typeof fields.response === 'string') parts.push(fields.response.replace(/^[A-Za-z0-9.]+ (?=(?:OK|NO|BAD|BYE)\b)/i, ''));
  else if (typeof fields.responseText === 'string') parts.push(`${typeof fields.responseStatus === 'string' ? fields.responseStatus : ''} ${fields.responseText}`.trim());
  if (typeof fields.reason === 'string') parts.push(`BYE ${fields.reason}`);
  return parts.length > 0 ? parts.join(' / ') : undefined;
}

/** Which part of the session a nodemailer error comes from, by the SMTP command it names. */
function smtpStage(command: string | undefined, current: ProbeStage): ProbeStage {
  if (command === undefined || command === 'API') return current;
  if (command.startsWith('AUTH')) return 'authenticate';
  if (['CONN', 'EHLO', 'HELO', 'LHLO', 'STARTTLS'].includes(command)) return 'connect';
  return 'send';
}


/** Entra puts `scp` in a user's token and only `roles` in an app-only one. */
function modeOfToken(accessToken: string): ConnectionMode {
  try {
    const claims = decodeJwt(accessToken);
    return claims.scp === undefined && (claims.idtyp === 'app' || Array.isArray(claims.roles)) ? 'application' : 'delegated';
  } catch {
    // Not a JWT the connector can read: nothing says it is an app's.
    return 'delegated';
  }
}

/**
 * A server's reply as it may be shown: the credentials sent removed by value, should a server ever
 * echo them (whatever shape a token has), then anything else credential-like by its shape.
 */
function serverWords(text: string, secrets: readonly string[]): string {
  let words = text.trim();
  for (const secret of secrets) if (secret !== '') words = words.replaceAll(secret, REDACTED);
  return clip(redactText(words));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function singleLine(text: string): string {
  return text.replace(/[\p{Cc}\s]+/gu, ' ').trim();
}

function clip(text: string): string {
  return text.length > MAX_SERVER_TEXT ? `${text.slice(0, MAX_SERVER_TEXT)}…` : text;
}

function since(started: number): number {
  return Math.round(performance.now() - started);
}
