import { describe, expect, it } from 'vitest';
import { CLOUDS } from '../../src/identity/clouds.js';
import { adminConsentScope, allDelegatedScopes, appRegistrationPermissions, defaultScope, delegatedScopes, requiredAppRoles } from '../../src/identity/scopes.js';

const global = CLOUDS.global;

describe('delegated scopes', () => {
  it('asks Graph for Graph mail, with the profile that names the first mailbox', () => {
    expect(delegatedScopes(global, { send: 'graph', receive: 'graph' })).toEqual({
      primary: 'graph',
      // Mail.ReadWrite for drafts (large attachments) and the Sent Items check; Shared for shared mailboxes.
      byResource: {
        graph: [
          'https://graph.microsoft.com/Mail.Send',
          'https://graph.microsoft.com/Mail.Send.Shared',
          'https://graph.microsoft.com/Mail.ReadWrite',
          'https://graph.microsoft.com/Mail.ReadWrite.Shared',
          'https://graph.microsoft.com/User.Read',
        ],
      },
    });
  });

  it('makes Exchange the primary resource as soon as a protocol needs it', () => {
    expect(delegatedScopes(global, { send: 'smtp', receive: 'imap' })).toEqual({
      primary: 'outlook',
      byResource: {
        graph: ['https://graph.microsoft.com/User.Read'],
        outlook: ['https://outlook.office.com/SMTP.Send', 'https://outlook.office.com/IMAP.AccessAsUser.All'],
      },
    });
    expect(delegatedScopes(global, { send: 'graph', receive: 'pop3' }).byResource.outlook).toEqual(['https://outlook.office.com/POP.AccessAsUser.All']);
    expect(delegatedScopes(global, { send: 'graph', receive: 'none' }).byResource.outlook).toBeUndefined();
  });

  it('uses the cloud\'s own resource hosts', () => {
    expect(allDelegatedScopes(CLOUDS.usgov, { send: 'smtp', receive: 'graph' })).toEqual([
      'https://graph.microsoft.us/Mail.ReadWrite',
      'https://graph.microsoft.us/User.Read',
      'https://outlook.office365.us/SMTP.Send',
      'offline_access',
    ]);
    expect(adminConsentScope(CLOUDS.china)).toBe('https://microsoftgraph.chinacloudapi.cn/.default');
  });
});

describe('app-only permissions', () => {
  it('needs Graph roles for Graph and Exchange roles for the protocols, asked for with .default', () => {
    expect(requiredAppRoles({ send: 'graph', receive: 'graph' })).toEqual({ graph: ['Mail.Send', 'Mail.ReadWrite'], outlook: [] });
    expect(requiredAppRoles({ send: 'smtp', receive: 'pop3' })).toEqual({ graph: [], outlook: ['SMTP.SendAsApp', 'POP.AccessAsApp'] });
    expect(defaultScope(global, 'outlook')).toBe('https://outlook.office365.com/.default');
  });
});

describe('the app registration', () => {
  it('holds every permission any connection can ask for, once', () => {
    expect(appRegistrationPermissions(global)).toEqual({
      delegated: [
        'https://graph.microsoft.com/Mail.ReadWrite',
        'https://graph.microsoft.com/Mail.ReadWrite.Shared',
        'https://graph.microsoft.com/Mail.Send',
        'https://graph.microsoft.com/Mail.Send.Shared',
        'https://graph.microsoft.com/User.Read',
        'https://outlook.office.com/IMAP.AccessAsUser.All',
        'https://outlook.office.com/POP.AccessAsUser.All',
        'https://outlook.office.com/SMTP.Send',
      ],
      appRoles: [
        'https://graph.microsoft.com/Mail.ReadWrite',
        'https://graph.microsoft.com/Mail.Send',
        'https://outlook.office365.com/IMAP.AccessAsApp',
        'https://outlook.office365.com/POP.AccessAsApp',
        'https://outlook.office365.com/SMTP.SendAsApp',
      ],
    });
  });
});
