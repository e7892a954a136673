import { ImapFlow, type Logger, type StatusObject } from 'imapflow';
import { errorFields } from './error-fields.js';
import {
  ReceiveAttemptError,
  type ImapFolderCursor,
  type ImapFolderResult,
  type ImapPollRequest,
  type ImapReceiver,
  type MailServerAddress,
  type ReceiveFailureKind,
  type ReceiveTarget,
} from './mail-receiver.js';
import { withinDeadline } from './deadline.js';
import { SinkFailed, codeOf, handOver, isNetworkCode, scrubbed } from './receive-session.js';

/**
 * Receiving over IMAP with XOAUTH2 (microsoft.md §4.2): one session per look at a mailbox, over
 * implicit TLS (outlook.office365.com:993). Polling many mailboxes must stay cheap for Exchange,
 * which limits sessions and commands per mailbox (§6.4), so a folder where nothing arrived costs
 * one STATUS and nothing else; only a folder with news is opened, read-only (EXAMINE), and its
 * new messages are listed in one UID FETCH and downloaded one by one as the sink asks for them.
 */

/** The parts of a message its fingerprint is made of, as the envelope gives them. */
export interface ImapMessageIdentity {
  /** The Message-ID header, angle brackets and all. */
  messageId?: string | undefined;
  /** RFC822.SIZE. */
  size?: number | undefined;
  /** The Date header: a Date when it parsed, its text when it did not. */
  date?: Date | string | undefined;
}

/**
 * `imap:<Message-ID>|<RFC822.SIZE>|<Date header, ISO>`: what stays the same when a folder is
 * renumbered (a new UIDVALIDITY), so the sink recognises the messages it already has. A message
 * without a Message-ID or a Date header gets an empty part there, and a Date that does not parse
 * is kept as written. Two such messages of the same size then share a fingerprint, and the sink
 * keeps only the first; Exchange gives every message it accepts a Message-ID, so that takes mail
 * that reached the mailbox some other way (an APPEND, an import).
 */
export function imapFingerprint(message: ImapMessageIdentity): string {
  const { date } = message;
  const when = date instanceof Date ? (Number.isNaN(date.getTime()) ? '' : date.toISOString()) : (date?.trim() ?? '');
  return `imap:${message.messageId?.trim() ?? ''}|${message.size ?? ''}|${when}`;
}

/** A message listed for the sink: its UID and what its fingerprint is made of. */
interface Listed extends ImapMessageIdentity {
  uid: number;
}

const DAY_MS = 86_400_000;
// UIDNEXT and UIDVALIDITY say whether anything arrived; HIGHESTMODSEQ is sent only where the server offers CONDSTORE.
const STATUS_QUERY = { uidNext: true, uidValidity: true, messages: true, highestModseq: true } as const;

export function imapReceiver(server: MailServerAddress): ImapReceiver {
  return { poll: (request) => poll(server, request) };
}

async function poll(server: MailServerAddress, request: ImapPollRequest): Promise<ImapFolderResult[]> {
  const refusals = refusalRecorder();
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: true,
    ...(server.tls?.ca !== undefined && { tls: { ca: server.tls.ca } }),
    auth: { user: request.target.mailbox, accessToken: request.target.accessToken },
    logger: refusals.logger,
    connectionTimeout: server.timeoutMs,
    greetingTimeout: server.timeoutMs,
    socketTimeout: server.timeoutMs,
    // IDLE would hold the session open between commands; a look is over as soon as its work is.
    disableAutoIdle: true,
  });
  // A failure is also emitted as 'error'; the rejected promise is what counts here.
  client.on('error', () => undefined);
  // The folder being looked at, so that a failure names it.
  const at: { folder?: string } = {};
  try {
    return await withinDeadline(
      server.timeoutMs,
      async () => {
        await client.connect();
        const results: ImapFolderResult[] = [];
        for (const folder of request.folders) {
          at.folder = folder.path;
          results.push(await lookAt(client, refusals, request, folder));
        }
        at.folder = undefined;
        await client.logout();
        return results;
      },
      () => {
        client.close();
      },
      'The look at the mailbox',
    );
  } catch (error) {
    client.close();
    if (error instanceof SinkFailed) throw error.error;
    throw imapFailure(error, request.target, at.folder);
  }
}

async function lookAt(client: ImapFlow, refusals: RefusalRecorder, request: ImapPollRequest, folder: ImapPollRequest['folders'][number]): Promise<ImapFolderResult> {
  const { path, cursor } = folder;
  const status = await answered(refusals, `STATUS ${path}`, () => client.status(path, STATUS_QUERY));
  const { uidValidity, uidNext } = status;
  if (uidValidity === undefined || uidNext === undefined) throw new Error(`The IMAP server's STATUS of ${path} lacks UIDVALIDITY or UIDNEXT.`);
  const quiet = { found: 0, resynced: false, more: false };
  if (!cursor) return { path, cursor: { uidValidity: String(uidValidity), lastUid: uidNext - 1, ...modseqOf(status) }, ...quiet };
  if (cursor.uidValidity === String(uidValidity) && uidNext <= cursor.lastUid + 1) {
    return { path, cursor: { uidValidity: cursor.uidValidity, lastUid: cursor.lastUid, ...modseqOf(status) }, ...quiet };
  }

  // Read-only, so that looking changes no \Seen or \Recent flag.
  const mailbox = await client.mailboxOpen(path, { readOnly: true });
  const opened = String(mailbox.uidValidity);
  const resynced = opened !== cursor.uidValidity;
  const { messages, more } = resynced ? await receivedSince(client, refusals, request) : await listedAfter(client, cursor.lastUid, request.limit);
  let lastUid = resynced ? 0 : cursor.lastUid;
  for (const message of messages) {
    await handOver(request.sink, {
      folder: path,
      fingerprint: imapFingerprint(message),
      ...(message.size !== undefined && { size: message.size }),
      raw: () => download(client, request.target, path, message.uid),
    });
    lastUid = message.uid;
  }
  // Whatever UIDs lie below UIDNEXT and were not listed are gone (or, after a resync, older than
  // its window): the next look starts above them, so it is idle again.
  if (!more) lastUid = Math.max(lastUid, mailbox.uidNext - 1);
  const cursorAfter: ImapFolderCursor = { uidValidity: opened, lastUid, ...modseqOf(mailbox.highestModseq === undefined ? status : mailbox) };
  return { path, cursor: cursorAfter, found: messages.length, resynced, more };
}

/** The messages above `lastUid`, oldest first, at most `limit`. */
async function listedAfter(client: ImapFlow, lastUid: number, limit: number): Promise<{ messages: Listed[]; more: boolean }> {
  // "n:*" also names the newest message when its UID is below n (RFC 3501 §6.4.8), so it is filtered out.
  const listed = (await list(client, `${lastUid + 1}:*`)).filter((message) => message.uid > lastUid);
  return { messages: listed.slice(0, limit), more: listed.length > limit };
}

/**
 * After a UIDVALIDITY change every UID is new, so the cursor cannot say what was read: the
 * messages that arrived within `resyncDays` are offered again, oldest first, and the sink drops
 * those it has by their fingerprints. A resync cut short by `limit` goes on from the last UID
 * offered as an ordinary look would, which may offer messages older than the window that were
 * renumbered after it; the sink drops those it has too.
 */
async function receivedSince(client: ImapFlow, refusals: RefusalRecorder, request: ImapPollRequest): Promise<{ messages: Listed[]; more: boolean }> {
  const since = new Date(Date.now() - request.resyncDays * DAY_MS);
  const uids = await answered(refusals, 'UID SEARCH SINCE', () => client.search({ since }, { uid: true }));
  const wanted = [...uids].sort((a, b) => a - b).slice(0, request.limit);
  return { messages: wanted.length === 0 ? [] : await list(client, wanted.join(',')), more: uids.length > wanted.length };
}

/** UID, size, Message-ID and Date of the messages in `uids`, by UID. */
async function list(client: ImapFlow, uids: string): Promise<Listed[]> {
  const listed: Listed[] = [];
  // imapflow runs no other command until the iteration ends, so the sink is called afterwards.
  for await (const message of client.fetch(uids, { uid: true, size: true, envelope: true }, { uid: true })) {
    listed.push({ uid: message.uid, size: message.size, messageId: message.envelope?.messageId, date: message.envelope?.date });
  }
  return listed.sort((a, b) => a.uid - b.uid);
}

async function download(client: ImapFlow, target: ReceiveTarget, path: string, uid: number): Promise<Buffer> {
  let message;
  try {
    message = await client.fetchOne(String(uid), { source: true }, { uid: true });
  } catch (error) {
    throw imapFailure(error, target, path);
  }
  if (message && message.source) return message.source;
  throw new ReceiveAttemptError({ transport: 'imap', kind: 'not_found', detail: `Message UID ${uid} is no longer in ${path}; it was deleted or moved after it was listed.` });
}

function modseqOf(source: Pick<StatusObject, 'highestModseq'>): { highestModseq?: string } {
  return source.highestModseq === undefined ? {} : { highestModseq: String(source.highestModseq) };
}

interface RefusalRecorder {
  logger: Logger;
  clear(): void;
  last(): Error | undefined;
}

/**
 * imapflow answers some refusals (STATUS, SEARCH) with `false` and only logs the server's reply.
 * This logger keeps the last error it was given, so that a throttled or refused STATUS is named
 * for what it is, and writes nothing anywhere.
 */
function refusalRecorder(): RefusalRecorder {
  let last: Error | undefined;
  const keep = (entry: unknown) => {
    const { err } = errorFields(entry);
    if (err instanceof Error) last = err;
  };
  const ignore = () => undefined;
  return {
    logger: { debug: ignore, info: ignore, warn: keep, error: keep },
    clear: () => {
      last = undefined;
    },
    last: () => last,
  };
}

async function answered<T>(refusals: RefusalRecorder, command: string, run: () => Promise<T | false | undefined>): Promise<T> {
  refusals.clear();
  const result = await run();
  if (result !== false && result !== undefined) return result;
  throw refusals.last() ?? new Error(`The IMAP server refused ${command}.`);
}

// Exchange, once a token is accepted, when the identity may not open the mailbox (microsoft.md §4.3).
const NOT_CONNECTED = /authenticated but not connected/i;
// Exchange: "BAD Request is throttled. Suggested Backoff Time: 92415 milliseconds".
const THROTTLED = /Request is throttled/i;
// Temporary refusals (RFC 5530): not the token's fault, so not an authentication failure.
const TEMPORARY_CODES = new Set(['UNAVAILABLE', 'SERVERBUG', 'INUSE']);
const AUTHENTICATION_CODES = new Set(['AUTHENTICATIONFAILED', 'AUTHORIZATIONFAILED', 'EXPIRED']);

export function imapFailure(error: unknown, target: ReceiveTarget, folder?: string): ReceiveAttemptError {
  if (error instanceof ReceiveAttemptError) return error;
  const fields = errorFields(error);
  const code = codeOf(error);
  const responseCode = typeof fields.serverResponseCode === 'string' ? fields.serverResponseCode.toUpperCase() : undefined;
  const said = serverText(fields);
  let kind: ReceiveFailureKind;
  if (NOT_CONNECTED.test(said)) kind = 'not_connected';
  else if (code === 'ETHROTTLE' || THROTTLED.test(said) || responseCode === 'LIMIT') kind = 'throttled';
  else if (code === 'NotFound' || fields.mailboxMissing === true || responseCode === 'NONEXISTENT') kind = 'not_found';
  else if (responseCode !== undefined && TEMPORARY_CODES.has(responseCode)) kind = 'server';
  else if (fields.authenticationFailed === true || (responseCode !== undefined && AUTHENTICATION_CODES.has(responseCode))) kind = 'authentication';
  else if (isNetworkCode(code)) kind = 'network';
  else kind = 'server';
  const retryAfterMs = typeof fields.throttleReset === 'number' ? fields.throttleReset : Number(/Backoff Time[:=\s]+(\d+)/i.exec(said)?.[1] ?? Number.NaN);
  const failureCode = responseCode ?? code;
  return new ReceiveAttemptError({
    transport: 'imap',
    kind,
    ...(failureCode !== undefined && { code: failureCode }),
    ...(kind === 'throttled' && Number.isFinite(retryAfterMs) && { retryAfterSeconds: Math.ceil(retryAfterMs / 1000) }),
    detail: scrubbed(folder === undefined ? said : `${folder}: ${said}`, target),
  });
}

/** imapflow's failures carry the tagged reply ("2 NO [AUTHENTICATIONFAILED] …"), or its text, and the BYE that ended a session. */
function serverText(fields: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof fields.response === 'string') parts.push(fields.response.replace(/^[A-Za-z0-9.]+ (?=(?:OK|NO|BAD|BYE)\b)/i, ''));
  else if (typeof fields.responseText === 'string') parts.push(`${typeof fields.responseStatus === 'string' ? fields.responseStatus : ''} ${fields.responseText}`.trim());
  else if (typeof fields.message === 'string') parts.push(fields.message);
  if (typeof fields.reason === 'string') parts.push(`BYE ${fields.reason}`);
  return parts.join(' / ') || 'The IMAP session failed without saying why.';
}
