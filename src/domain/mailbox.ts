import { z } from 'zod';
import { ID_PATTERN } from './ids.js';

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
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export type Mailbox = z.infer<typeof mailboxSchema>;
