import nodemailer from 'nodemailer';
import type { StoredMessage } from './mail-store.js';
import { mimeOf } from './mime.js';

/**
 * Mail to addresses outside the sandbox, for the domains a real mail server holds (the test
 * Dovecot of local/sandbox/mail-server): a sent message is handed over LMTP to its recipients in
 * those domains, so a test can read it with IMAP as a customer's mailbox would receive it. The
 * MIME is the message's `$value` without Bcc, the envelope sender the mailbox it was sent through.
 * It happens after the 202, as Exchange's 202 promises acceptance, not delivery: a failure never
 * reaches the client, it is logged and counted. Recipients in other domains stay undelivered.
 */

export interface MailRelayOptions {
  /** Where the mail server's LMTP listens (Dovecot's, not Postfix's SMTP: no authentication, no queue). */
  lmtp: { host: string; port: number };
  /** The recipient domains it holds, matched case-insensitively. */
  domains: string[];
}

export interface RelayStats {
  /** Recipients the LMTP server accepted a message for. */
  relayed: number;
  /** Recipients it refused, or that could not be handed over (server down, connection lost). */
  relayFailures: number;
}

export type RelayLog = (message: string, error: unknown) => void;

const domainOf = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

export class MailRelay {
  private readonly counts: RelayStats = { relayed: 0, relayFailures: 0 };

  constructor(
    private options: MailRelayOptions | null,
    private readonly log: RelayLog,
  ) {}

  /** The relay from now on; null switches it off. */
  configure(options: MailRelayOptions | null): MailRelayOptions | null {
    this.options = options;
    return options;
  }

  stats(): RelayStats {
    return { ...this.counts };
  }

  /**
   * Starts handing `message` to those of `outside` (recipients that are no sandbox mailbox) in a
   * relayed domain. Not awaited: the request that sent it is answered meanwhile.
   */
  relay(envelopeFrom: string, message: StoredMessage, outside: readonly string[]): void {
    const options = this.options;
    if (options === null) return;
    const domains = new Set(options.domains.map((d) => d.toLowerCase()));
    // Each address once, as first written.
    const recipients = new Map<string, string>();
    for (const address of outside) {
      if (domains.has(domainOf(address)) && !recipients.has(address.toLowerCase())) recipients.set(address.toLowerCase(), address);
    }
    if (recipients.size === 0) return;
    void this.deliver(options, envelopeFrom, { ...message, bccRecipients: [] }, [...recipients.values()]);
  }

  private async deliver(options: MailRelayOptions, from: string, message: StoredMessage, to: string[]): Promise<void> {
    // A local hop into the mail store, plain as Postfix makes it: Dovecot offers STARTTLS with a
    // certificate of its stack's own CA, which nodemailer would take up and then refuse.
    const transport = nodemailer.createTransport({ host: options.lmtp.host, port: options.lmtp.port, lmtp: true, ignoreTLS: true });
    try {
      const info = await transport.sendMail({ envelope: { from, to }, raw: await mimeOf(message) });
      this.counts.relayed += info.accepted.length;
      this.counts.relayFailures += info.rejected.length;
      if (info.rejected.length > 0) this.log(`LMTP refused ${message.internetMessageId} for ${info.rejected.join(', ')}`, info.rejectedErrors);
    } catch (error) {
      this.counts.relayFailures += to.length;
      this.log(`could not relay ${message.internetMessageId} to ${to.join(', ')} over LMTP at ${options.lmtp.host}:${String(options.lmtp.port)}`, error);
    } finally {
      transport.close();
    }
  }
}
