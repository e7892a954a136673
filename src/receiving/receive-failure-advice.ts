import type { ReceiveFailure } from '../mail/mail-receiver.js';

/** What to do about a failed look, for the mailbox's lastError: the server's words say what happened, this says what next. */
export function receiveFailureAdvice(failure: Pick<ReceiveFailure, 'transport' | 'kind'>): string {
  const protocol = failure.transport === 'graph' ? 'Graph' : failure.transport.toUpperCase();
  switch (failure.kind) {
    case 'authentication':
      return failure.transport === 'graph'
        ? 'Graph refused even a fresh token: check that the app has the Mail.Read (or Mail.ReadWrite) permission and that consent was granted.'
        : `${protocol} refused even a fresh token: ${protocol} may be disabled for the mailbox (Set-CASMailbox -${failure.transport === 'imap' ? 'ImapEnabled' : 'PopEnabled'} $true), or the app lacks its ${protocol} permission.`;
    case 'not_connected':
      return failure.transport === 'graph'
        ? 'Graph denied access to the mailbox: an application access policy or RBAC for Applications may exclude it, or the signed-in user has no access to it.'
        : 'Exchange accepted the token but will not open the mailbox: for app-only access run the Exchange Online step (New-ServicePrincipal, Add-MailboxPermission; GET …/exchange-setup), for a shared mailbox give the user Full Access.';
    case 'not_found':
      return 'A watched folder or the mailbox does not exist: correct receive.folders with PATCH …/mailboxes/{id}, or remove the mailbox.';
    case 'throttled':
      return 'Microsoft is throttling the mailbox; the next look waits as long as it asked.';
    case 'network':
      return `The ${protocol} server could not be reached; the look is tried again with back-off.`;
    case 'server':
      return `${protocol} answered something unexpected; the look is tried again with back-off. If it persists, report it with this text.`;
  }
}
