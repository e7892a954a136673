import type { Connection } from '../domain/connection.js';
import { newId } from '../domain/ids.js';
import type { Mailbox } from '../domain/mailbox.js';
import { keys, type Repositories } from '../store/repositories.js';

/**
 * The mailboxes a connection serves. A delegated connection starts with the signed-in user's own
 * mailbox and may serve any other mailbox that user has full access to (a shared mailbox, a
 * colleague's): the protocols then name that mailbox and use the user's token. An application
 * connection serves the mailboxes the vendor adds. An address is listed once per connection.
 */

export interface MailboxDeps {
  mailboxes: Repositories['mailboxes'];
  now(): Date;
}

export interface NewMailbox {
  address: string;
  kind: Mailbox['kind'];
  displayName?: string;
}

export async function listMailboxes(deps: Pick<MailboxDeps, 'mailboxes'>, connection: Pick<Connection, 'customerId' | 'id'>): Promise<Mailbox[]> {
  return deps.mailboxes.all(connection.customerId, { prefix: keys.mailboxesOf(connection.id) });
}

/** Adds a mailbox, or returns the one the connection already has for that address (created: false). */
export async function addMailbox(deps: MailboxDeps, connection: Connection, input: NewMailbox): Promise<{ mailbox: Mailbox; created: boolean }> {
  const existing = (await listMailboxes(deps, connection)).find((mailbox) => sameAddress(mailbox.address, input.address));
  if (existing) return { mailbox: existing, created: false };
  const now = deps.now();
  const mailbox: Mailbox = {
    id: newId('mbx', now.getTime()),
    customerId: connection.customerId,
    connectionId: connection.id,
    address: input.address,
    kind: input.kind,
    ...(input.displayName !== undefined && { displayName: input.displayName }),
    sendTransport: connection.transports.send,
    receiveTransport: connection.transports.receive,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  await deps.mailboxes.create(keys.mailbox(connection.customerId, connection.id, mailbox.id), mailbox);
  return { mailbox, created: true };
}

export async function removeMailbox(deps: Pick<MailboxDeps, 'mailboxes'>, customerId: string, connectionId: string, mailboxId: string): Promise<boolean> {
  return deps.mailboxes.delete(keys.mailbox(customerId, connectionId, mailboxId));
}

/** Mail addresses compare without regard to case (Exchange treats them so). */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
