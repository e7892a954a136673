import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import { errorFields } from './error-fields.js';
import { SendAttemptError, type MailSender, type OutgoingMessage, type SendTarget } from './mail-transport.js';
import { mailOptions } from './mime-message.js';

/**
 * Sending by SMTP submission with XOAUTH2 (microsoft.md §4.2, §4.3): STARTTLS on 587, the mailbox
 * as `user=` (for a shared mailbox its own address, whoever's token it is). Connections are pooled
 * per mailbox, so a burst of messages from one mailbox signs in once; a pool is replaced when the
 * mailbox's token changes and closed after a minute without use.
 *
 * Exchange keeps submitted mail in the mailbox's Sent Items; where the token also opens the mailbox
 * over IMAP, findSent searches that folder for the Message-ID.
 */

export interface SmtpSenderOptions {
  smtp: { host: string; port: number };
  imap: { host: string; port: number };
  /** Extra trust anchors (the test servers' CA); the system's when left out. */
  tls?: { ca?: string };
  /** Connections per mailbox and instance; Exchange allows few concurrent submissions per mailbox. */
  maxConnections?: number;
  idleMs?: number;
}

interface Pool {
  transport: Transporter<SMTPPool.SentMessageInfo>;
  accessToken: string;
  lastUsed: number;
}

const CONNECT_TIMEOUT_MS = 30_000;
const SOCKET_TIMEOUT_MS = 120_000;

export interface PooledMailSender extends MailSender {
  /** Closes every pooled connection (shutdown, tests). */
  close(): void;
}

export function smtpSender(options: SmtpSenderOptions): PooledMailSender {
  const pools = new Map<string, Pool>();
  const idleMs = options.idleMs ?? 60_000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, pool] of pools) {
      if (now - pool.lastUsed > idleMs) {
        pool.transport.close();
        pools.delete(key);
      }
    }
  }, Math.min(idleMs, 30_000));
  sweep.unref();

  const poolFor = (target: SendTarget): Pool => {
    const key = target.mailbox.toLowerCase();
    const existing = pools.get(key);
    if (existing && existing.accessToken === target.accessToken) return existing;
    existing?.transport.close();
    const pool: Pool = {
      transport: nodemailer.createTransport({
        pool: true,
        maxConnections: options.maxConnections ?? 2,
        host: options.smtp.host,
        port: options.smtp.port,
        secure: false,
        // Never send the token over a connection that did not upgrade to TLS.
        requireTLS: true,
        ...(options.tls?.ca !== undefined && { tls: { ca: options.tls.ca } }),
        auth: { type: 'OAuth2', user: target.mailbox, accessToken: target.accessToken },
        connectionTimeout: CONNECT_TIMEOUT_MS,
        greetingTimeout: CONNECT_TIMEOUT_MS,
        socketTimeout: SOCKET_TIMEOUT_MS,
        logger: false,
        debug: false,
      }),
      accessToken: target.accessToken,
      lastUsed: Date.now(),
    };
    pools.set(key, pool);
    return pool;
  };

  return {
    async send(target, message) {
      const pool = poolFor(target);
      pool.lastUsed = Date.now();
      const attachments = await Promise.all(message.content.attachments.map(async (_a, index) => ({ index, content: await message.attachment(index) })));
      try {
        await pool.transport.sendMail({
          ...mailOptions(message.content, attachments),
          // The envelope sender is the mailbox itself, which Exchange requires to match the signed-in one.
          envelope: { from: target.mailbox, to: recipientsOf(message) },
        });
      } catch (error) {
        throw smtpError(error);
      } finally {
        pool.lastUsed = Date.now();
      }
    },

    async findSent(target, internetMessageId) {
      if (!target.imapAccess) return undefined;
      // Loaded on first use: imapflow and what only it loads are the largest share of every instance's start (bench/cold-start.bench.ts).
      const { ImapFlow } = await import('imapflow');
      const client = new ImapFlow({
        host: options.imap.host,
        port: options.imap.port,
        secure: true,
        ...(options.tls?.ca !== undefined && { tls: { ca: options.tls.ca } }),
        auth: { user: target.mailbox, accessToken: target.accessToken },
        logger: false,
        connectionTimeout: CONNECT_TIMEOUT_MS,
        greetingTimeout: CONNECT_TIMEOUT_MS,
        socketTimeout: CONNECT_TIMEOUT_MS,
        disableAutoIdle: true,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const sent = (await client.list()).find((folder) => folder.specialUse === '\\Sent');
        if (!sent) return undefined;
        await client.mailboxOpen(sent.path, { readOnly: true });
        const found = await client.search({ header: { 'message-id': internetMessageId } }, { uid: true });
        await client.logout();
        return Array.isArray(found) && found.length > 0;
      } catch (error) {
        client.close();
        const fields = errorFields(error);
        throw new SendAttemptError({
          transport: 'network',
          message: `IMAP search of Sent Items failed: ${typeof fields.message === 'string' ? fields.message : 'unknown error'}`,
          ...(typeof fields.code === 'string' && { code: fields.code }),
          sending: false,
        });
      }
    },

    close() {
      clearInterval(sweep);
      for (const pool of pools.values()) pool.transport.close();
      pools.clear();
    },
  };
}

function recipientsOf(message: OutgoingMessage): string[] {
  const { to, cc, bcc } = message.content;
  return [...to, ...cc, ...bcc].map((r) => r.address);
}

function smtpError(error: unknown): SendAttemptError {
  const fields = errorFields(error);
  const responseCode = typeof fields.responseCode === 'number' ? fields.responseCode : undefined;
  // nodemailer keeps Node's own code (ECONNREFUSED) as originalCode under its own (ESOCKET).
  const code = typeof fields.originalCode === 'string' ? fields.originalCode : typeof fields.code === 'string' ? fields.code : undefined;
  return new SendAttemptError({
    transport: 'smtp',
    ...(responseCode !== undefined && { responseCode }),
    ...(typeof fields.response === 'string' && { response: fields.response }),
    ...(code !== undefined && { code }),
    ...(typeof fields.command === 'string' && { command: fields.command }),
  });
}
