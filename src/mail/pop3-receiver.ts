import { errorFields } from './error-fields.js';
import {
  ReceiveAttemptError,
  type MailServerAddress,
  type Pop3Cursor,
  type Pop3PollRequest,
  type Pop3PollResult,
  type Pop3Receiver,
  type ReceiveFailureKind,
  type ReceiveTarget,
} from './mail-receiver.js';
import { Pop3Client, type Pop3Uid } from './pop3-client.js';
import { withinDeadline } from './deadline.js';
import { SinkFailed, codeOf, handOver, isNetworkCode, scrubbed } from './receive-session.js';

/**
 * Receiving over POP3 with XOAUTH2 (microsoft.md §4.2), over implicit TLS (outlook.office365.com:995).
 * POP3 has no folders and no "since": a message is new when it comes after the newest one the
 * cursor remembers, by UIDL. A maildrop where nothing arrived costs STAT and one single-message
 * UIDL; only then is the whole maildrop listed. Messages are deleted only when the connection asks
 * for it, each once the sink has it, and the server commits that only on QUIT: a look that fails
 * deletes nothing.
 */

/** The folder name found messages carry: POP3 reads the INBOX only. */
export const POP3_FOLDER = 'POP3';
/** The cursor keeps this many UIDLs, so it finds its place when the newest ones were deleted. */
const POP3_RECENT_KEPT = 10;

/**
 * The messages of `listing` (maildrop order, oldest first) that come after the newest message of
 * `recent` still in it. When none of `recent` is left, nothing says where the last look ended and
 * every message is new; the sink drops those it has by their fingerprints.
 */
export function newPop3Messages(listing: readonly Pop3Uid[], recent: readonly string[]): Pop3Uid[] {
  const position = new Map(listing.map((message, index) => [message.uid, index]));
  for (let index = recent.length - 1; index >= 0; index--) {
    const found = position.get(recent[index] as string);
    if (found !== undefined) return listing.slice(found + 1);
  }
  return [...listing];
}

/**
 * Where the next look starts: the newest messages of `listing` up to the last one handed to the
 * sink (`waiting` new ones were left for the next look), without those deleted. Deleted ones
 * cannot mark the place any more, and leaving them out keeps the newest message that stays in the
 * maildrop last, which is what makes the next idle look one UIDL.
 */
export function pop3CursorAfter(listing: readonly Pop3Uid[], waiting: number, deleted: ReadonlySet<string>): Pop3Cursor {
  const seen = listing.slice(0, listing.length - waiting).filter((message) => !deleted.has(message.uid));
  return { recent: seen.slice(-POP3_RECENT_KEPT).map((message) => message.uid) };
}

export function pop3Fingerprint(uid: string): string {
  return `pop3:${uid}`;
}

export function pop3Receiver(server: MailServerAddress): Pop3Receiver {
  return { poll: (request) => poll(server, request) };
}

async function poll(server: MailServerAddress, request: Pop3PollRequest): Promise<Pop3PollResult> {
  let client: Pop3Client | undefined;
  try {
    return await withinDeadline(
      server.timeoutMs,
      async () => {
        client = await Pop3Client.connect({ host: server.host, port: server.port, tls: server.tls ?? {}, timeoutMs: server.timeoutMs });
        await client.authenticateXoauth2(request.target.mailbox, request.target.accessToken);
        const result = await lookAt(client, request);
        // Commits the deletions, if any.
        await client.quit();
        return result;
      },
      () => client?.close(),
      'The look at the mailbox',
    );
  } catch (error) {
    // Dropped without QUIT: the server deletes none of the messages DELE marked.
    client?.close();
    if (error instanceof SinkFailed) throw error.error;
    throw pop3Failure(error, request.target);
  }
}

async function lookAt(client: Pop3Client, request: Pop3PollRequest): Promise<Pop3PollResult> {
  const { cursor } = request;
  const quiet = { found: 0, more: false };
  const { count } = await client.stat();
  if (count === 0) return { cursor: cursor ?? { recent: [] }, ...quiet };
  if (cursor && (await client.uidl(count)).uid === cursor.recent.at(-1)) return { cursor, ...quiet };

  const listing = await client.uidl();
  if (!cursor) return { cursor: pop3CursorAfter(listing, 0, new Set()), ...quiet };
  const candidates = newPop3Messages(listing, cursor.recent);
  const handed = candidates.slice(0, request.limit);
  const sizes = new Map(handed.length === 0 ? [] : (await client.list()).map(({ message, size }) => [message, size]));
  const deleted = new Set<string>();
  for (const { message, uid } of handed) {
    const size = sizes.get(message);
    await handOver(request.sink, {
      folder: POP3_FOLDER,
      fingerprint: pop3Fingerprint(uid),
      ...(size !== undefined && { size }),
      raw: async () => {
        try {
          return await client.retr(message);
        } catch (error) {
          throw pop3Failure(error, request.target);
        }
      },
    });
    if (request.deleteAfterReceive) {
      await client.dele(message);
      deleted.add(uid);
    }
  }
  const waiting = candidates.length - handed.length;
  return { cursor: pop3CursorAfter(listing, waiting, deleted), found: handed.length, more: waiting > 0 };
}

// Exchange, once a token is accepted, when the identity may not open the mailbox (microsoft.md §4.3).
const NOT_CONNECTED = /authenticated but not connected/i;

export function pop3Failure(error: unknown, target: ReceiveTarget): ReceiveAttemptError {
  if (error instanceof ReceiveAttemptError) return error;
  const fields = errorFields(error);
  const code = codeOf(error);
  const said = typeof fields.serverText === 'string' ? fields.serverText : '';
  // RFC 2449 response codes: "-ERR [AUTH] …", "-ERR [SYS/TEMP] …".
  const responseCode = /^-ERR \[([A-Z/-]+)\]/i.exec(said)?.[1]?.toUpperCase();
  let kind: ReceiveFailureKind;
  if (NOT_CONNECTED.test(said)) kind = 'not_connected';
  else if (responseCode === 'LOGIN-DELAY') kind = 'throttled';
  else if (responseCode === 'SYS/TEMP' || responseCode === 'IN-USE') kind = 'server';
  else if (fields.authenticationFailed === true || responseCode === 'AUTH') kind = 'authentication';
  else if (isNetworkCode(code)) kind = 'network';
  else kind = 'server';
  const failureCode = responseCode ?? code;
  const message = typeof fields.message === 'string' && fields.message !== '' ? fields.message : 'The POP3 session failed without saying why.';
  return new ReceiveAttemptError({
    transport: 'pop3',
    kind,
    ...(failureCode !== undefined && { code: failureCode }),
    detail: scrubbed(message, target),
  });
}
