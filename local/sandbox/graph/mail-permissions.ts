import type { PermissionSet } from './authentication.js';

/**
 * The Graph permissions each mail operation accepts, least privileged first (Graph's permission
 * tables). The delegated `*.Shared` variants include the user's own mailbox, so they are accepted
 * wherever the plain ones are; sending from a mailbox that is not the user's own needs
 * Mail.Send.Shared (send-mail.ts).
 */

/** Folders and message lists. */
export const READ_MAIL_BASIC: PermissionSet = {
  delegated: ['Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite', 'Mail.Read.Shared', 'Mail.ReadWrite.Shared'],
  application: ['Mail.ReadBasic.All', 'Mail.Read', 'Mail.ReadWrite'],
};

/** A message's MIME and its attachments: Mail.ReadBasic does not reach them. */
export const READ_MAIL: PermissionSet = {
  delegated: ['Mail.Read', 'Mail.ReadWrite', 'Mail.Read.Shared', 'Mail.ReadWrite.Shared'],
  application: ['Mail.Read', 'Mail.ReadWrite'],
};

/** Drafts, attachments, upload sessions. */
export const WRITE_MAIL: PermissionSet = { delegated: ['Mail.ReadWrite', 'Mail.ReadWrite.Shared'], application: ['Mail.ReadWrite'] };

export const SEND_MAIL: PermissionSet = { delegated: ['Mail.Send', 'Mail.Send.Shared'], application: ['Mail.Send'] };
