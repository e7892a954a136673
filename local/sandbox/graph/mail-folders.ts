import { createHash } from 'node:crypto';
import type { Mailbox } from '../identity/sandbox-state.js';
import type { PermissionSet } from './authentication.js';
import { graphErrors } from './errors.js';
import { authorizedMailbox } from './mailboxes.js';
import { odataContext, project, selectedProperties } from './odata.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';

/**
 * `GET /me/mailFolders/{id}` and `GET /users/{id | userPrincipalName}/mailFolders/{id}` (also
 * `mailFolders('{id}')`), where the id is a folder id or a well-known name (`inbox`, `sentitems` …).
 * Every mailbox has the well-known folders, empty for now. Folder ids are opaque strings shaped like
 * Exchange's (`AAMk…`), derived from the mailbox and folder so they stay the same across requests
 * and restarts.
 */

const WELL_KNOWN_FOLDERS: readonly { name: string; displayName: string }[] = [
  { name: 'inbox', displayName: 'Inbox' },
  { name: 'drafts', displayName: 'Drafts' },
  { name: 'sentitems', displayName: 'Sent Items' },
  { name: 'deleteditems', displayName: 'Deleted Items' },
  { name: 'junkemail', displayName: 'Junk Email' },
  { name: 'outbox', displayName: 'Outbox' },
  { name: 'archive', displayName: 'Archive' },
];
/** "Top of Information Store": the parent of the well-known folders. */
const ROOT_FOLDER = { name: 'msgfolderroot', displayName: 'Top of Information Store' };

/** Graph's least privileged permissions for reading a mail folder, and the higher ones. */
const READ_MAIL: PermissionSet = {
  delegated: ['Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite'],
  application: ['Mail.ReadBasic.All', 'Mail.Read', 'Mail.ReadWrite'],
};

const MAIL_FOLDER_PROPERTIES = ['id', 'displayName', 'parentFolderId', 'childFolderCount', 'unreadItemCount', 'totalItemCount', 'sizeInBytes', 'isHidden'] as const;

/** 00 03 24 00 starts the store ids Exchange hands out through Graph, hence their `AAMk` prefix. */
const ID_PREFIX = Buffer.from([0x00, 0x03, 0x24, 0x00]);

export function folderId(mailbox: Pick<Mailbox, 'tenantId' | 'address'>, folderName: string): string {
  const digest = createHash('sha512').update(`${mailbox.tenantId}\n${mailbox.address.toLowerCase()}\n${folderName}`).digest();
  return Buffer.concat([ID_PREFIX, digest.subarray(0, 61)]).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

const looksLikeFolderId = (value: string) => /^A[AQ]Mk[A-Za-z0-9\-_+/]{20,}={0,2}$/.test(value);

function findFolder(mailbox: Mailbox, idOrName: string): { name: string; displayName: string } {
  const folder = [...WELL_KNOWN_FOLDERS, ROOT_FOLDER].find((f) => f.name === idOrName.toLowerCase() || folderId(mailbox, f.name) === idOrName);
  if (folder) return folder;
  throw looksLikeFolderId(idOrName) ? graphErrors.itemNotFound() : graphErrors.idMalformed();
}

function folderEntity(mailbox: Mailbox, folder: { name: string; displayName: string }): Record<string, unknown> {
  const isRoot = folder.name === ROOT_FOLDER.name;
  return {
    id: folderId(mailbox, folder.name),
    displayName: folder.displayName,
    parentFolderId: folderId(mailbox, isRoot ? 'root' : ROOT_FOLDER.name),
    childFolderCount: isRoot ? WELL_KNOWN_FOLDERS.length : 0,
    unreadItemCount: 0,
    totalItemCount: 0,
    sizeInBytes: 0,
    isHidden: false,
  };
}

export function mailFolderRoutes(env: GraphEnvironment): GraphRoute[] {
  const getFolder = ({ caller, query }: GraphRequest, who: string | undefined, folder: string): GraphResult => {
    const target = authorizedMailbox(env.context.state, caller, who, READ_MAIL);
    const entity = folderEntity(target.mailbox, findFolder(target.mailbox, folder));
    const selected = selectedProperties(query, MAIL_FOLDER_PROPERTIES, (name) => graphErrors.outlookPropertyUnknown(name, 'MailFolder'));
    return {
      status: 200,
      body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/mailFolders`, selected, 'entity'), ...project(entity, selected, ['id']) },
    };
  };
  return [
    { method: 'GET', path: /^\/me\/mailFolders\/([^/()]+)$/i, handle: (r) => getFolder(r, undefined, r.params[0] ?? '') },
    { method: 'GET', path: /^\/me\/mailFolders\('([^']*)'\)$/i, handle: (r) => getFolder(r, undefined, r.params[0] ?? '') },
    { method: 'GET', path: /^\/users\/([^/]+)\/mailFolders\/([^/()]+)$/i, handle: (r) => getFolder(r, r.params[0], r.params[1] ?? '') },
    { method: 'GET', path: /^\/users\/([^/]+)\/mailFolders\('([^']*)'\)$/i, handle: (r) => getFolder(r, r.params[0], r.params[1] ?? '') },
  ];
}
