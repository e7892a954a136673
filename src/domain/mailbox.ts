import { z } from 'zod';
import { ID_PATTERN } from './ids.js';

/** Inbox, as every transport can name it (IMAP's INBOX, Graph's well-known `inbox`, the POP3 maildrop). */
export const INBOX = 'Inbox';

/**
 * How a mailbox's mail is read, as the vendor chose it; what is left out takes the default.
 * Folders are IMAP paths, or Graph folder ids and well-known names (`inbox`, `archive`, `junkemail`);
 * POP3 only has the Inbox.
 */
export const receiveSettingsSchema = z
  .object({
    folders: z
      .array(z.string().trim().min(1).max(255).regex(/^\P{Cc}+$/u, 'a folder name has no control characters'))
      .min(1)
      .max(10)
      .meta({ description: 'Folders to watch; ["Inbox"] by default.' }),
    intervalSeconds: z.int().min(60).max(86_400).meta({ description: 'How often the mailbox is looked at when it is polled; 60 by default.' }),
    deleteAfterReceive: z.boolean().meta({ description: 'POP3 only: delete each message from the server once it is received (false by default).' }),
  })
  .partial()
  .strict();
export type ReceiveSettings = z.infer<typeof receiveSettingsSchema>;

export const DEFAULT_POLL_INTERVAL_SECONDS = 60;

export function receiveFolders(mailbox: Pick<Mailbox, 'receive'>): string[] {
  return mailbox.receive?.folders ?? [INBOX];
}

/** An address reachable through a connection, with the transports mail goes out and comes in by. */
export const mailboxSchema = z.object({
  id: z.string().regex(ID_PATTERN.mbx),
  customerId: z.string(),
  connectionId: z.string().regex(ID_PATTERN.con),
  address: z.email(),
  displayName: z.string().max(256).optional(),
  kind: z.enum(['user', 'shared']),
  sendTransport: z.enum(['graph', 'smtp']),
  receiveTransport: z.enum(['graph', 'imap', 'pop3', 'none']),
  receive: receiveSettingsSchema.optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export type Mailbox = z.infer<typeof mailboxSchema>;
