import type { Connection } from '../domain/connection.js';
import { newId } from '../domain/ids.js';
import type { Mailbox, ReceiveSettings } from '../domain/mailbox.js';
import { newReceiveState } from '../domain/receive-state.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError } from '../store/table-repository.js';

/**
 * The mailboxes a connection serves. A delegated connection starts with the signed-in user's own
 * mailbox and may serve any other mailbox that user has full access to (a shared mailbox, a
 * colleague's): the protocols then name that mailbox and use the user's token. An application
 * connection serves the mailboxes the vendor adds. An address is listed once per connection.
 */

export interface MailboxDeps {
  mailboxes: Repositories['mailboxes'];
  /** Where a receiving mailbox's looks are scheduled (its row is made with the mailbox). */
  receiveState: Repositories['receiveState'];
  now(): Date;
}

export interface NewMailbox {
  address: string;
  kind: Mailbox['kind'];
  displayName?: string;
  receive?: ReceiveSettings;
}

export async function listMailboxes(deps: Pick<MailboxDeps, 'mailboxes'>, connection: Pick<Connection, 'customerId' | 'id'>): Promise<Mailbox[]> {
  return deps.mailboxes.all(connection.customerId, { prefix: keys.mailboxesOf(connection.id) });
}

/** Adds a mailbox, or returns the one the connection already has for that address (created: false). */
export async function addMailbox(deps: MailboxDeps, connection: Connection, input: NewMailbox): Promise<{ mailbox: Mailbox; created: boolean }> {
  const existing = (await listMailboxes(deps, connection)).find((mailbox) => sameAddress(mailbox.address, input.address));
  if (existing) {
    // A repeat of a request that failed after the mailbox was written: its receive state may be missing.
    await startReceiving(deps, existing);
    return { mailbox: existing, created: false };
  }
  const now = deps.now();
  const mailbox: Mailbox = {
    id: newId('mbx', now.getTime()),
    customerId: connection.customerId,
    connectionId: connection.id,
    address: input.address,
    kind: input.kind,
    ...(input.displayName !== undefined && { displayName: input.displayName }),
    ...(input.receive !== undefined && { receive: input.receive }),
    sendTransport: connection.transports.send,
    receiveTransport: connection.transports.receive,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  await deps.mailboxes.create(keys.mailbox(connection.customerId, connection.id, mailbox.id), mailbox);
  await startReceiving(deps, mailbox);
  return { mailbox, created: true };
}

/** Makes the mailbox's receive-state row, so the poll timer finds it; nothing for one that does not receive. */
export async function startReceiving(deps: Pick<MailboxDeps, 'receiveState' | 'now'>, mailbox: Mailbox): Promise<void> {
  const state = newReceiveState(mailbox, deps.now());
  if (!state) return;
  try {
    await deps.receiveState.create(keys.receiveState(mailbox.customerId, mailbox.connectionId, mailbox.id), state);
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }
}

export async function removeMailbox(deps: Pick<MailboxDeps, 'mailboxes' | 'receiveState'>, customerId: string, connectionId: string, mailboxId: string): Promise<boolean> {
  const removed = await deps.mailboxes.delete(keys.mailbox(customerId, connectionId, mailboxId));
  // The poll that finds no mailbox also drops this row (and the subscriptions expire on their own).
  await deps.receiveState.delete(keys.receiveState(customerId, connectionId, mailboxId));
  return removed;
}

/** Mail addresses compare without regard to case (Exchange treats them so). */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
