import { createHash } from 'node:crypto';
import type { Mailbox } from '../identity/sandbox-state.js';
import { graphErrors } from './errors.js';
import { READ_MAIL_BASIC } from './mail-permissions.js';
import { messageSize, type MailStore } from './mail-store.js';
import { authorizedMailbox, mailboxRoutes } from './mailboxes.js';
import { odataContext, project, selectedProperties } from './odata.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';
import { looksLikeStoreId, storeId } from './store-ids.js';

/**
 * `GET /me/mailFolders/{id}` and `GET /users/{id | userPrincipalName}/mailFolders/{id}` (also
 * `mailFolders('{id}')`), where the id is a folder id or a well-known name (`inbox`, `sentitems` …).
 * Every mailbox has the well-known folders; their counts are those of the messages the sandbox
 * holds (mail-store.ts). Folder ids are opaque strings shaped like Exchange's (`AAMk…`), derived
 * from the mailbox and folder so they stay the same across requests and restarts.
 */

export interface MailFolder {
  name: string;
  displayName: string;
}

const WELL_KNOWN_FOLDERS: readonly MailFolder[] = [
  { name: 'inbox', displayName: 'Inbox' },
  { name: 'drafts', displayName: 'Drafts' },
  { name: 'sentitems', displayName: 'Sent Items' },
  { name: 'deleteditems', displayName: 'Deleted Items' },
  { name: 'junkemail', displayName: 'Junk Email' },
  { name: 'outbox', displayName: 'Outbox' },
  { name: 'archive', displayName: 'Archive' },
];
/** "Top of Information Store": the parent of the well-known folders. */
const ROOT_FOLDER: MailFolder = { name: 'msgfolderroot', displayName: 'Top of Information Store' };

const MAIL_FOLDER_PROPERTIES = ['id', 'displayName', 'parentFolderId', 'childFolderCount', 'unreadItemCount', 'totalItemCount', 'sizeInBytes', 'isHidden'] as const;

/** A folder in a path, `/mailFolders/{id}` or `/mailFolders('{id}')`: two groups, one of them set. */
export const FOLDER_SEGMENT = "/mailFolders(?:/([^/()]+)|\\('([^']*)'\\))";

export function folderId(mailbox: Pick<Mailbox, 'tenantId' | 'address'>, folderName: string): string {
  const digest = createHash('sha512').update(`${mailbox.tenantId}\n${mailbox.address.toLowerCase()}\n${folderName}`).digest();
  return storeId(digest.subarray(0, 61));
}

/** The well-known folder a path names by name or id: 400 for what is no id, 404 for an id of nothing. */
export function findFolder(mailbox: Mailbox, idOrName: string): MailFolder {
  const folder = [...WELL_KNOWN_FOLDERS, ROOT_FOLDER].find((f) => f.name === idOrName.toLowerCase() || folderId(mailbox, f.name) === idOrName);
  if (folder) return folder;
  throw looksLikeStoreId(idOrName) ? graphErrors.itemNotFound() : graphErrors.idMalformed();
}

function folderEntity(store: MailStore, mailbox: Mailbox, folder: MailFolder): Record<string, unknown> {
  const isRoot = folder.name === ROOT_FOLDER.name;
  const messages = isRoot ? [] : store.list(mailbox, folder.name);
  return {
    id: folderId(mailbox, folder.name),
    displayName: folder.displayName,
    parentFolderId: folderId(mailbox, isRoot ? 'root' : ROOT_FOLDER.name),
    childFolderCount: isRoot ? WELL_KNOWN_FOLDERS.length : 0,
    unreadItemCount: messages.filter((m) => !m.isRead).length,
    totalItemCount: messages.length,
    sizeInBytes: messages.reduce((sum, m) => sum + messageSize(m), 0),
    isHidden: false,
  };
}

export function mailFolderRoutes(env: GraphEnvironment): GraphRoute[] {
  const getFolder = ({ caller, query }: GraphRequest, who: string | undefined, [byPath, byKey]: string[]): GraphResult => {
    const target = authorizedMailbox(env.context.state, caller, who, READ_MAIL_BASIC);
    const entity = folderEntity(env.store, target.mailbox, findFolder(target.mailbox, byPath ?? byKey ?? ''));
    const selected = selectedProperties(query, MAIL_FOLDER_PROPERTIES, (name) => graphErrors.outlookPropertyUnknown(name, 'MailFolder'));
    return {
      status: 200,
      body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/mailFolders`, selected, 'entity'), ...project(entity, selected, ['id']) },
    };
  };
  return mailboxRoutes('GET', FOLDER_SEGMENT, getFolder);
}
