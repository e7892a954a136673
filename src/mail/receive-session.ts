import { REDACTED, redactText } from '../telemetry/redact.js';
import { errorFields } from './error-fields.js';
import type { FoundMessage, MessageSink, ReceiveTarget } from './mail-receiver.js';

/**
 * What a look of the IMAP and POP3 receivers is made of besides its protocol: a deadline for the
 * whole session, the hand-over to the sink, and turning what went wrong into a failure's kind and
 * a detail without credentials.
 */

// Node's codes for a connection that could not be made or broke (and the client libraries' own:
// imapflow CONNECT_TIMEOUT, GREETING_TIMEOUT, NoConnection, EConnectionClosed; ours ETIMEDOUT, ECONNRESET).
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME',
  'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'ETIMEOUT', 'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT', 'NoConnection', 'EConnectionClosed', 'ClosedAfterConnectText', 'ClosedAfterConnectTLS',
]);
// OpenSSL's certificate verdicts (CERT_HAS_EXPIRED, SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …) and Node's ERR_TLS_*, ERR_SSL_*.
const TLS_FAILURE = /^(?:ERR_TLS_|ERR_SSL_)|CERT|SELF_SIGNED|^UNABLE_TO_(?:GET|VERIFY|DECRYPT|DECODE)_|^(?:HOSTNAME_MISMATCH|INVALID_CA|EPROTO)$/;

export function isNetworkCode(code: string | undefined): boolean {
  return code !== undefined && (NETWORK_CODES.has(code) || TLS_FAILURE.test(code));
}

/** The code an error carries, if it is a string (Node's, the client library's). */
export function codeOf(error: unknown): string | undefined {
  const { code } = errorFields(error);
  return typeof code === 'string' ? code : undefined;
}

const MAX_DETAIL = 500;

/**
 * Builds what a server said into a failure's `detail`: the credentials sent removed by value,
 * should a server ever echo them (whatever shape the token has), then anything else credential-like
 * by its shape.
 */
export function scrubbed(text: string, target: ReceiveTarget): string {
  const xoauth2 = Buffer.from(`user=${target.mailbox}\x01auth=Bearer ${target.accessToken}\x01\x01`).toString('base64');
  let words = text.trim();
  for (const secret of [xoauth2, target.accessToken]) if (secret !== '') words = words.replaceAll(secret, REDACTED);
  words = redactText(words);
  return words.length > MAX_DETAIL ? `${words.slice(0, MAX_DETAIL)}…` : words;
}

/** A sink's own failure, carried through the receiver's error handling untouched. */
export class SinkFailed extends Error {
  constructor(readonly error: unknown) {
    super('The message sink failed.');
    this.name = 'SinkFailed';
  }
}

/**
 * Calls the sink, marking what it throws as its own: that goes back to the caller as it was, not
 * as a server failure. `raw()` works only while the sink call runs: afterwards the session has
 * moved on (another folder, or closed), and a message number or UID would name something else.
 */
export async function handOver(sink: MessageSink, message: FoundMessage): Promise<void> {
  let handing = true;
  try {
    await sink({
      ...message,
      raw: () => (handing ? message.raw() : Promise.reject(new Error(`raw() of ${message.fingerprint} was called after the sink had taken the message; call it before resolving.`))),
    });
  } catch (error) {
    throw new SinkFailed(error);
  } finally {
    handing = false;
  }
}

