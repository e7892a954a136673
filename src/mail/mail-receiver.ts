/**
 * What the receive use-case asks of a transport (IMAP, POP3, Graph): look at a mailbox from where
 * the last look ended, hand each message found to a sink, and say where the next look starts.
 * A transport never decides whether a message is new to the vendor: the sink does, by the
 * message's fingerprint, so a cursor that had to start over (a new UIDVALIDITY, an expired delta
 * token, a POP3 mailbox whose last known message was deleted) emits nothing twice.
 */

export interface ReceiveTarget {
  /** The mailbox to read: XOAUTH2's `user=` (a shared mailbox's own address), Graph's /users/{address}. */
  mailbox: string;
  accessToken: string;
}

/** One message a look found. */
export interface FoundMessage {
  /** Where it was found, as the transport names it (IMAP path, `POP3`, Graph folder name). */
  folder: string;
  /**
   * Who the message is to the dedupe, stable across cursor resets of its transport:
   * IMAP `imap:<Message-ID>|<RFC822.SIZE>|<Date header, ISO>`, POP3 `pop3:<UIDL>`, Graph `graph:<immutable id>`.
   */
  fingerprint: string;
  /** Its size in bytes, when the transport says before downloading it. */
  size?: number;
  /** The whole RFC 5322 message. Called only for a message the sink has not seen before. */
  raw(): Promise<Buffer>;
}

/** Takes one message; resolves once it is safely kept (or known to be a duplicate). Throwing stops the look. */
export type MessageSink = (message: FoundMessage) => Promise<void>;

export type ReceiveFailureKind =
  /** The server refused the token (IMAP `NO AUTHENTICATE failed`, POP3 `-ERR Authentication failure`, Graph 401). */
  | 'authentication'
  /** Signed in, but Exchange will not open the mailbox ("User is authenticated but not connected", Graph 403). */
  | 'not_connected'
  /** The mailbox or folder does not exist (Graph 404, IMAP NONEXISTENT). */
  | 'not_found'
  /** Too many requests or connections: wait `retryAfterSeconds` when given. */
  | 'throttled'
  /** Connection refused, reset, timed out, TLS failure. */
  | 'network'
  /** The server answered something else it should not have (5xx, BAD, malformed). */
  | 'server';

export interface ReceiveFailure {
  transport: 'imap' | 'pop3' | 'graph';
  kind: ReceiveFailureKind;
  /** Graph's error code, IMAP/POP3's response code, or Node's error code. */
  code?: string;
  status?: number;
  retryAfterSeconds?: number;
  /** What the server said, with anything credential-like redacted. */
  detail: string;
}

export class ReceiveAttemptError extends Error {
  constructor(readonly failure: ReceiveFailure) {
    super(`${failure.transport} ${failure.kind}: ${failure.detail}`);
    this.name = 'ReceiveAttemptError';
  }
}

/** Where an IMAP folder was read up to. */
export interface ImapFolderCursor {
  uidValidity: string;
  /** The highest UID handed to the sink (or, on the first look, the highest UID that existed). */
  lastUid: number;
  /** HIGHESTMODSEQ at the last look, where the server offers CONDSTORE. */
  highestModseq?: string;
}

export interface ImapPollRequest {
  target: ReceiveTarget;
  /** The folders to read; a folder without a cursor is looked at for the first time: its messages so far are not new. */
  folders: { path: string; cursor?: ImapFolderCursor }[];
  /** At most this many messages go to the sink per folder per look; the rest wait for the next one (`more`). */
  limit: number;
  /** After a UIDVALIDITY change, messages received this many days back are offered again (the sink drops those it has). */
  resyncDays: number;
  sink: MessageSink;
}

export interface ImapFolderResult {
  path: string;
  cursor: ImapFolderCursor;
  /** Messages handed to the sink. */
  found: number;
  /** The UIDVALIDITY changed since the cursor was written. */
  resynced: boolean;
  /** More new messages are waiting than `limit` allowed. */
  more: boolean;
}

export interface ImapReceiver {
  poll(request: ImapPollRequest): Promise<ImapFolderResult[]>;
}

/** Where a POP3 maildrop was read up to: the UIDLs of the last few messages seen, oldest first. */
export interface Pop3Cursor {
  recent: string[];
}

export interface Pop3PollRequest {
  target: ReceiveTarget;
  /** Undefined on the first look: the messages already there are not new. */
  cursor?: Pop3Cursor;
  limit: number;
  /** DELE each message once the sink has it (only when the connection asks for it). */
  deleteAfterReceive: boolean;
  sink: MessageSink;
}

export interface Pop3PollResult {
  cursor: Pop3Cursor;
  found: number;
  more: boolean;
}

export interface Pop3Receiver {
  poll(request: Pop3PollRequest): Promise<Pop3PollResult>;
}

/** How a receiver reaches its server: the tenant's cloud's host, implicit TLS. */
export interface MailServerAddress {
  host: string;
  port: number;
  /** Trust anchors for the server's certificate; the system's CAs when left out. */
  tls?: { ca?: string };
  /** For one whole look, from connecting to logging out. */
  timeoutMs: number;
}
