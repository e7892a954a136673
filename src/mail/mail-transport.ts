import type { MessageContent } from '../domain/outbound-message.js';
import type { SendFailureSignal } from '../domain/send-failure.js';

/**
 * What the send use-case asks of a transport (Graph, SMTP): send one message from one mailbox,
 * and say whether a message with a given Message-ID is already in that mailbox's Sent Items.
 * A transport throws SendAttemptError with what went wrong; the domain decides what that means.
 */

export interface SendTarget {
  /** The mailbox the message goes out from (XOAUTH2 `user=`, Graph's /users/{address}). */
  mailbox: string;
  accessToken: string;
  /** The token also opens the mailbox over IMAP (the connection receives by IMAP), so SMTP's Sent Items can be searched. */
  imapAccess: boolean;
}

export interface OutgoingMessage {
  content: MessageContent;
  /** The bytes of attachment `index` (they live in Blob storage until they are needed). */
  attachment(index: number): Promise<Buffer>;
}

export interface MailSender {
  send(target: SendTarget, message: OutgoingMessage): Promise<void>;
  /** true or false when the transport can look; undefined when it cannot (no read access to the mailbox). */
  findSent(target: SendTarget, internetMessageId: string): Promise<boolean | undefined>;
}

export class SendAttemptError extends Error {
  constructor(readonly signal: SendFailureSignal) {
    super(
      signal.transport === 'graph'
        ? `Graph answered ${String(signal.status)} ${signal.code ?? ''}`.trim()
        : signal.transport === 'smtp'
          ? `SMTP ${signal.response ?? signal.code ?? 'failure'}`
          : `network: ${signal.code ?? signal.message}`,
    );
    this.name = 'SendAttemptError';
  }
}
