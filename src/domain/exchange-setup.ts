/**
 * The Exchange Online PowerShell a customer's administrator runs once, so that the vendor's app,
 * holding the app-only IMAP.AccessAsApp, POP.AccessAsApp or SMTP.SendAsApp permission, may open
 * the tenant's mailboxes (microsoft.md §4.3–§4.4, §5.3). Entra consent alone is not enough for
 * these protocols: Exchange must know the app's service principal and which mailboxes it may use.
 *
 * Every value is passed as a single-quoted PowerShell string, the one form in which nothing is
 * expanded; the only character to escape there is the quote itself, so a name like O'Brien cannot
 * end the string early and turn the rest of a line into a command.
 */

export type ExchangeProtocol = 'imap' | 'pop' | 'smtp';

export interface ExchangeMailboxAccess {
  address: string;
  /** How the vendor reaches the mailbox: IMAP/POP to read, SMTP to send. */
  protocols: readonly ExchangeProtocol[];
}

export interface ExchangeSetupInput {
  tenantId: string;
  /** The vendor app's application (client) id. */
  appId: string;
  /**
   * The object id of the app's service principal (Enterprise application) in this tenant — the
   * `oid` of an app-only token the connector obtained for it — not the app registration's object
   * id: Exchange refuses the app's sign-ins when the wrong one is registered.
   */
  servicePrincipalObjectId: string;
  /** How the service principal is listed in Exchange: the vendor's name. */
  displayName: string;
  mailboxes: readonly ExchangeMailboxAccess[];
  /**
   * Turn on SMTP AUTH for the SMTP mailboxes. Tenants with security defaults, and many created after
   * January 2020, have it off, and Exchange then answers 535 5.7.139 even to a valid token.
   */
  enableSmtpClientAuthentication?: boolean;
  /** Limit SMTP sending to the members of one mail-enabled group (RBAC for Applications). */
  smtpScope?: { name: string; groupDistinguishedName: string };
}

export type ExchangeSetupStepKind =
  | 'install-module'
  | 'connect'
  | 'service-principal'
  | 'mailbox-permission'
  | 'send-as'
  | 'smtp-auth'
  | 'smtp-scope';

export interface ExchangeSetupStep {
  kind: ExchangeSetupStepKind;
  /** One PowerShell command a line. */
  commands: readonly string[];
}

export interface ExchangeSetup {
  tenantId: string;
  appId: string;
  servicePrincipalObjectId: string;
  /** The mailboxes the commands name, once each, in the order given. */
  mailboxes: readonly string[];
  /** The protocols of all mailboxes together: what can go wrong depends on them. */
  protocols: readonly ExchangeProtocol[];
  steps: readonly ExchangeSetupStep[];
  /** Every command, one a line, to paste as a whole. */
  script: string;
}

/** The input cannot make a correct script; the message says which value is wrong. */
export class ExchangeSetupError extends Error {
  override readonly name = 'ExchangeSetupError';
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// An address as Exchange identifies a mailbox; no spaces or control characters, which no real
// address has and which would make a pasted line misleading.
const MAILBOX_ADDRESS = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u;

export function exchangeSetup(input: ExchangeSetupInput): ExchangeSetup {
  const tenantId = guid('tenantId', input.tenantId);
  const appId = guid('appId', input.appId);
  const objectId = guid('servicePrincipalObjectId', input.servicePrincipalObjectId);
  const displayName = singleLine('displayName', input.displayName);
  const mailboxes = mergeMailboxes(input.mailboxes);
  const smtpMailboxes = mailboxes.filter((mailbox) => mailbox.protocols.has('smtp')).map((mailbox) => mailbox.address);

  const steps: ExchangeSetupStep[] = [
    // -Force answers the "untrusted repository" and NuGet prompts, which would otherwise swallow the next pasted line.
    { kind: 'install-module', commands: ['Install-Module -Name ExchangeOnlineManagement -Scope CurrentUser -Force'] },
    { kind: 'connect', commands: [`Connect-ExchangeOnline -Organization ${quotePowerShell(tenantId)}`] },
    {
      kind: 'service-principal',
      commands: [
        `New-ServicePrincipal -AppId ${quotePowerShell(appId)} -ObjectId ${quotePowerShell(objectId)} -DisplayName ${quotePowerShell(displayName)}`,
      ],
    },
  ];
  // Without mailboxes yet, the service principal can still be registered; the per-mailbox commands follow once they are known.
  if (mailboxes.length > 0) {
    steps.push({
      kind: 'mailbox-permission',
      commands: mailboxes.map(
        ({ address }) => `Add-MailboxPermission -Identity ${quotePowerShell(address)} -User ${quotePowerShell(objectId)} -AccessRights FullAccess`,
      ),
    });
  }
  if (smtpMailboxes.length > 0) {
    steps.push({
      kind: 'send-as',
      // -Confirm:$false: the cmdlet asks for each mailbox otherwise, which breaks a pasted block.
      commands: smtpMailboxes.map(
        (address) => `Add-RecipientPermission -Identity ${quotePowerShell(address)} -Trustee ${quotePowerShell(objectId)} -AccessRights SendAs -Confirm:$false`,
      ),
    });
    if (input.enableSmtpClientAuthentication) {
      steps.push({
        kind: 'smtp-auth',
        commands: smtpMailboxes.map((address) => `Set-CASMailbox -Identity ${quotePowerShell(address)} -SmtpClientAuthenticationDisabled $false`),
      });
    }
  }
  if (input.smtpScope) {
    const name = singleLine('smtpScope.name', input.smtpScope.name);
    const group = singleLine('smtpScope.groupDistinguishedName', input.smtpScope.groupDistinguishedName);
    // The filter is itself a quoted OPATH string inside the PowerShell string: quotes in the group's
    // name are doubled once for OPATH, and the whole filter once more for PowerShell.
    const filter = `MemberOfGroup -eq '${group.replaceAll("'", "''")}'`;
    steps.push({
      kind: 'smtp-scope',
      commands: [
        `New-ManagementScope -Name ${quotePowerShell(name)} -RecipientRestrictionFilter ${quotePowerShell(filter)}`,
        `New-ManagementRoleAssignment -Name ${quotePowerShell(name)} -Role 'Application SMTP.SendAsApp' -App ${quotePowerShell(appId)} -CustomResourceScope ${quotePowerShell(name)}`,
      ],
    });
  }

  return {
    tenantId,
    appId,
    servicePrincipalObjectId: objectId,
    mailboxes: mailboxes.map((mailbox) => mailbox.address),
    protocols: [...new Set(mailboxes.flatMap((mailbox) => [...mailbox.protocols]))],
    steps,
    script: steps.flatMap((step) => step.commands).join('\n'),
  };
}

/**
 * A PowerShell single-quoted string literal of `value`. PowerShell also ends such a string at the
 * typographic single quotes (‘ ’ ‚ ‛), which word processors and mail programs put into names, so
 * those are doubled too; doubling any of them yields the character itself.
 */
export function quotePowerShell(value: string): string {
  return `'${value.replace(/['\u2018\u2019\u201a\u201b]/g, (quote) => quote + quote)}'`;
}

function guid(field: string, value: string): string {
  if (!GUID.test(value)) throw new ExchangeSetupError(`${field} must be a GUID, got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

/** Free text on one line: a line break inside a pasted string would leave PowerShell waiting for its end. */
function singleLine(field: string, value: string): string {
  const text = value.replace(/[\p{Cc}\s]+/gu, ' ').trim();
  if (text === '') throw new ExchangeSetupError(`${field} must not be empty`);
  return text;
}

/** One entry per mailbox (addresses compare case-insensitively), with the protocols of all its entries. */
function mergeMailboxes(mailboxes: readonly ExchangeMailboxAccess[]): { address: string; protocols: Set<ExchangeProtocol> }[] {
  const merged = new Map<string, { address: string; protocols: Set<ExchangeProtocol> }>();
  for (const { address, protocols } of mailboxes) {
    if (!MAILBOX_ADDRESS.test(address)) throw new ExchangeSetupError(`${JSON.stringify(address)} is not a mailbox address`);
    if (protocols.length === 0) throw new ExchangeSetupError(`${address} needs at least one protocol`);
    const key = address.toLowerCase();
    const entry = merged.get(key) ?? { address, protocols: new Set<ExchangeProtocol>() };
    for (const protocol of protocols) entry.protocols.add(protocol);
    merged.set(key, entry);
  }
  return [...merged.values()];
}
