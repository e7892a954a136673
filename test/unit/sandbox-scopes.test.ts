import { describe, expect, it } from 'vitest';
import { AadstsError } from '../../local/sandbox/identity/aadsts.js';
import { EXCHANGE_ONLINE, MICROSOFT_GRAPH, parsePermissionReference, parseScopes, qualifiedScope } from '../../local/sandbox/identity/resources.js';

function codeOf(run: () => unknown): number | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof AadstsError) return error.code;
    throw error;
  }
  return undefined;
}

describe('parseScopes', () => {
  it('splits a scope parameter by resource, keeping the identifier each was asked with', () => {
    const parsed = parseScopes('openid PROFILE offline_access https://outlook.office.com/imap.accessasuser.all https://outlook.office.com/SMTP.Send Mail.Send', 'Contoso');
    expect([...parsed.oidc]).toEqual(['openid', 'profile', 'offline_access']);
    expect(parsed.resources).toEqual([
      { resource: EXCHANGE_ONLINE, audience: 'https://outlook.office.com', names: ['IMAP.AccessAsUser.All', 'SMTP.Send'], isDefault: false },
      { resource: MICROSOFT_GRAPH, audience: MICROSOFT_GRAPH.appId, names: ['Mail.Send'], isDefault: false },
    ]);
  });

  it('reads <resource>/.default and Exchange under any of its identifiers', () => {
    const parsed = parseScopes('https://outlook.office365.com/.default', 'Contoso');
    expect(parsed.resources).toEqual([{ resource: EXCHANGE_ONLINE, audience: 'https://outlook.office365.com', names: [], isDefault: true }]);
    expect(parseScopes('https://ps.outlook.com/.default', 'Contoso').resources[0]?.audience).toBe('https://ps.outlook.com');
  });

  it('refuses an unknown resource (AADSTS500011) and an unknown permission (AADSTS70011)', () => {
    expect(codeOf(() => parseScopes('https://unknown.example.com/Read', 'Contoso'))).toBe(500011);
    expect(codeOf(() => parseScopes('https://graph.microsoft.com/Mail.Sendd', 'Contoso'))).toBe(70011);
  });
});

describe('qualifiedScope', () => {
  it('names a permission the way the request did: bare for Graph by application id, prefixed otherwise', () => {
    expect(qualifiedScope(MICROSOFT_GRAPH, MICROSOFT_GRAPH.appId, 'Mail.Send')).toBe('Mail.Send');
    expect(qualifiedScope(MICROSOFT_GRAPH, 'https://graph.microsoft.com', 'Mail.Send')).toBe('https://graph.microsoft.com/Mail.Send');
    expect(qualifiedScope(EXCHANGE_ONLINE, 'https://outlook.office.com', 'SMTP.Send')).toBe('https://outlook.office.com/SMTP.Send');
  });
});

describe('parsePermissionReference', () => {
  it('tells delegated permissions and app roles apart, and lists what it knows when it cannot', () => {
    expect(parsePermissionReference('https://outlook.office365.com/IMAP.AccessAsApp', 'appRole')).toEqual({ resource: EXCHANGE_ONLINE, name: 'IMAP.AccessAsApp' });
    expect(() => parsePermissionReference('https://outlook.office365.com/IMAP.AccessAsApp', 'delegated')).toThrow(/Known: .*IMAP\.AccessAsUser\.All/);
  });
});
