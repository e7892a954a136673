import { describe, expect, it } from 'vitest';
import { exchangeSetup, ExchangeSetupError, quotePowerShell, type ExchangeSetupInput } from '../../src/domain/exchange-setup.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const APP = '00001111-aaaa-2222-bbbb-3333cccc4444';
const SERVICE_PRINCIPAL = '6a2b0c6e-9f1d-4b7e-8c3a-5d4e3f2a1b0c';

function input(overrides: Partial<ExchangeSetupInput> = {}): ExchangeSetupInput {
  return {
    tenantId: TENANT,
    appId: APP,
    servicePrincipalObjectId: SERVICE_PRINCIPAL,
    displayName: 'Acme Helpdesk',
    mailboxes: [{ address: 'support@contoso.com', protocols: ['imap'] }],
    ...overrides,
  };
}

const QUOTES = new Set(["'", '\u2018', '\u2019', '\u201a', '\u201b']);

/**
 * Splits a command line the way PowerShell's tokenizer reads it, for the forms the script uses:
 * bare words, and single-quoted strings in which any of PowerShell's single-quote characters ends
 * the string unless doubled. Returns the arguments as PowerShell would pass them, so a test can
 * see that a value with quotes stays one argument and nothing spills out into a new command.
 */
function powerShellTokens(line: string): string[] {
  const tokens: string[] = [];
  let index = 0;
  while (index < line.length) {
    const character = line.charAt(index);
    if (character === ' ') {
      index++;
    } else if (QUOTES.has(character)) {
      let value = '';
      index++;
      for (;;) {
        if (index >= line.length) throw new Error(`unterminated string in: ${line}`);
        const current = line.charAt(index);
        if (QUOTES.has(current)) {
          if (QUOTES.has(line.charAt(index + 1))) {
            value += line.charAt(index + 1);
            index += 2;
            continue;
          }
          index++;
          break;
        }
        value += current;
        index++;
      }
      tokens.push(value);
    } else {
      const end = line.indexOf(' ', index);
      const word = line.slice(index, end === -1 ? undefined : end);
      // A statement separator or pipe outside a string would start another command.
      if (/[;|&`$(){}]/.test(word.replace(/^-Confirm:\$false$|^\$false$/, ''))) throw new Error(`unexpected syntax in ${word}`);
      tokens.push(word);
      index = end === -1 ? line.length : end;
    }
  }
  return tokens;
}

describe('quotePowerShell', () => {
  it.each([
    ['plain', "'plain'"],
    ["O'Brien", "'O''Brien'"],
    ["''", "''''''"],
    ['a’b', "'a’’b'"],
    ['‘quoted’', "'‘‘quoted’’'"],
    ['$env:PATH; Remove-Item C:\\ -Recurse', "'$env:PATH; Remove-Item C:\\ -Recurse'"],
    ['`n "double"', "'`n \"double\"'"],
  ])('quotes %j as %s', (value, quoted) => {
    expect(quotePowerShell(value)).toBe(quoted);
    expect(powerShellTokens(quoted)).toEqual([value]);
  });
});

describe('exchangeSetup', () => {
  it('writes the commands for an IMAP mailbox, from installing the module to the mailbox permission', () => {
    const setup = exchangeSetup(input());
    expect(setup.script.split('\n')).toEqual([
      'Install-Module -Name ExchangeOnlineManagement -Scope CurrentUser -Force',
      `Connect-ExchangeOnline -Organization '${TENANT}'`,
      `New-ServicePrincipal -AppId '${APP}' -ObjectId '${SERVICE_PRINCIPAL}' -DisplayName 'Acme Helpdesk'`,
      `Add-MailboxPermission -Identity 'support@contoso.com' -User '${SERVICE_PRINCIPAL}' -AccessRights FullAccess`,
    ]);
    expect(setup.steps.map((step) => step.kind)).toEqual(['install-module', 'connect', 'service-principal', 'mailbox-permission']);
    expect(setup).toMatchObject({ tenantId: TENANT, appId: APP, servicePrincipalObjectId: SERVICE_PRINCIPAL, mailboxes: ['support@contoso.com'], protocols: ['imap'] });
  });

  it('adds SendAs for SMTP mailboxes only, and SMTP AUTH only when asked', () => {
    const mailboxes = [
      { address: 'support@contoso.com', protocols: ['imap'] as const },
      { address: 'billing@contoso.com', protocols: ['smtp', 'pop'] as const },
    ];
    const without = exchangeSetup(input({ mailboxes }));
    expect(without.steps.map((step) => step.kind)).toEqual(['install-module', 'connect', 'service-principal', 'mailbox-permission', 'send-as']);
    expect(without.steps.find((step) => step.kind === 'send-as')?.commands).toEqual([
      `Add-RecipientPermission -Identity 'billing@contoso.com' -Trustee '${SERVICE_PRINCIPAL}' -AccessRights SendAs -Confirm:$false`,
    ]);
    expect(without.steps.find((step) => step.kind === 'mailbox-permission')?.commands).toHaveLength(2);

    const withSmtpAuth = exchangeSetup(input({ mailboxes, enableSmtpClientAuthentication: true }));
    expect(withSmtpAuth.steps.find((step) => step.kind === 'smtp-auth')?.commands).toEqual([
      "Set-CASMailbox -Identity 'billing@contoso.com' -SmtpClientAuthenticationDisabled $false",
    ]);
    expect(withSmtpAuth.protocols).toEqual(expect.arrayContaining(['imap', 'smtp', 'pop']));

    const imapOnly = exchangeSetup(input({ enableSmtpClientAuthentication: true }));
    expect(imapOnly.steps.map((step) => step.kind)).not.toContain('smtp-auth');
  });

  it('names each mailbox once, whatever its case, with the protocols of every entry', () => {
    const setup = exchangeSetup(
      input({
        mailboxes: [
          { address: 'Shared@Contoso.com', protocols: ['imap'] },
          { address: 'shared@contoso.com', protocols: ['smtp'] },
        ],
      }),
    );
    expect(setup.mailboxes).toEqual(['Shared@Contoso.com']);
    expect(setup.steps.find((step) => step.kind === 'send-as')?.commands).toHaveLength(1);
  });

  it('keeps a vendor name or mailbox with quotes inside one argument', () => {
    const setup = exchangeSetup(
      input({
        displayName: "O'Reilly’s Mail'; Remove-Mailbox -Identity * -Confirm:$false; '",
        mailboxes: [{ address: "o'brien@contoso.com", protocols: ['imap', 'smtp'] }],
      }),
    );
    const [servicePrincipal] = setup.steps.find((step) => step.kind === 'service-principal')?.commands ?? [];
    expect(servicePrincipal).toBe(
      `New-ServicePrincipal -AppId '${APP}' -ObjectId '${SERVICE_PRINCIPAL}' -DisplayName 'O''Reilly’’s Mail''; Remove-Mailbox -Identity * -Confirm:$false; '''`,
    );
    expect(powerShellTokens(servicePrincipal ?? '')).toEqual([
      'New-ServicePrincipal',
      '-AppId',
      APP,
      '-ObjectId',
      SERVICE_PRINCIPAL,
      '-DisplayName',
      "O'Reilly’s Mail'; Remove-Mailbox -Identity * -Confirm:$false; '",
    ]);
    for (const line of setup.script.split('\n')) {
      const tokens = powerShellTokens(line);
      if (line.includes('brien')) expect(tokens).toContain("o'brien@contoso.com");
    }
  });

  it('quotes the group of an SMTP scope twice: for the OPATH filter, then for PowerShell', () => {
    const setup = exchangeSetup(
      input({
        mailboxes: [{ address: 'billing@contoso.com', protocols: ['smtp'] }],
        smtpScope: { name: "Acme's senders", groupDistinguishedName: "CN=O'Brien Team,OU=Groups,DC=contoso,DC=com" },
      }),
    );
    const commands = setup.steps.find((step) => step.kind === 'smtp-scope')?.commands ?? [];
    expect(commands).toEqual([
      "New-ManagementScope -Name 'Acme''s senders' -RecipientRestrictionFilter 'MemberOfGroup -eq ''CN=O''''Brien Team,OU=Groups,DC=contoso,DC=com'''",
      `New-ManagementRoleAssignment -Name 'Acme''s senders' -Role 'Application SMTP.SendAsApp' -App '${APP}' -CustomResourceScope 'Acme''s senders'`,
    ]);
    // What Exchange receives as the filter: OPATH with the quote in the name doubled once.
    expect(powerShellTokens(commands[0] ?? '').at(-1)).toBe("MemberOfGroup -eq 'CN=O''Brien Team,OU=Groups,DC=contoso,DC=com'");
  });

  it('puts free text on one line, so a pasted string never leaves PowerShell waiting', () => {
    const setup = exchangeSetup(input({ displayName: '  Acme\r\nHelpdesk\u2028 ' }));
    expect(setup.script).toContain("-DisplayName 'Acme Helpdesk'");
    expect(setup.script.split('\n')).toHaveLength(4);
  });

  it('normalizes ids to lower case', () => {
    const setup = exchangeSetup(input({ tenantId: TENANT.toUpperCase() }));
    expect(setup.script).toContain(`-Organization '${TENANT}'`);
  });

  it.each([
    ['a tenant id that is not a GUID', { tenantId: "contoso'; Remove-Item" }, /tenantId must be a GUID/],
    ['an app id that is not a GUID', { appId: 'acme' }, /appId must be a GUID/],
    ['a service principal id that is not a GUID', { servicePrincipalObjectId: '' }, /servicePrincipalObjectId must be a GUID/],
    ['an empty display name', { displayName: ' \n ' }, /displayName must not be empty/],
    ['an address with a line break', { mailboxes: [{ address: 'a@contoso.com\nRemove-Mailbox', protocols: ['imap'] as const }] }, /is not a mailbox address/],
    ['an address without a domain', { mailboxes: [{ address: 'support', protocols: ['imap'] as const }] }, /is not a mailbox address/],
    ['a mailbox without protocols', { mailboxes: [{ address: 'a@contoso.com', protocols: [] }] }, /needs at least one protocol/],
  ])('refuses %s', (_case, overrides: Partial<ExchangeSetupInput>, message) => {
    expect(() => exchangeSetup(input(overrides))).toThrow(ExchangeSetupError);
    expect(() => exchangeSetup(input(overrides))).toThrow(message);
  });
});
