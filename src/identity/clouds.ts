/**
 * Where Microsoft 365 lives in each cloud: the sign-in host, Graph, and the Exchange resource and
 * mail hosts (microsoft.md §7.3). Apps are registered per cloud and tokens do not cross clouds, so
 * every app registration names its cloud. A custom cloud takes every host from settings: the same
 * code then talks to another identity platform that speaks Microsoft's protocol (the local sandbox).
 */

export const CLOUD_NAMES = ['global', 'usgov', 'usgovdod', 'china', 'custom'] as const;
export type CloudName = (typeof CLOUD_NAMES)[number];

export interface Cloud {
  name: CloudName;
  /** https origin of the identity platform, e.g. https://login.microsoftonline.com */
  loginUrl: string;
  /** Where Graph requests go, e.g. https://graph.microsoft.com */
  graphUrl: string;
  /** Graph's resource id in scopes and token audiences; the same as graphUrl in Microsoft's clouds. */
  graphResource: string;
  /** Resource of delegated IMAP/POP/SMTP scopes, e.g. https://outlook.office.com */
  outlookResource: string;
  /** Resource of app-only IMAP/POP/SMTP tokens (`<resource>/.default`), e.g. https://outlook.office365.com */
  outlookAppResource: string;
  imap: { host: string; port: number };
  pop3: { host: string; port: number };
  smtp: { host: string; port: number };
  /** Audience of a managed identity's token used as the app's federated credential. */
  federatedCredentialAudience: string;
}

export const CLOUDS: Record<Exclude<CloudName, 'custom'>, Cloud> = {
  global: {
    name: 'global',
    loginUrl: 'https://login.microsoftonline.com',
    graphUrl: 'https://graph.microsoft.com',
    graphResource: 'https://graph.microsoft.com',
    outlookResource: 'https://outlook.office.com',
    outlookAppResource: 'https://outlook.office365.com',
    imap: { host: 'outlook.office365.com', port: 993 },
    pop3: { host: 'outlook.office365.com', port: 995 },
    smtp: { host: 'smtp.office365.com', port: 587 },
    federatedCredentialAudience: 'api://AzureADTokenExchange',
  },
  usgov: {
    name: 'usgov',
    loginUrl: 'https://login.microsoftonline.us',
    graphUrl: 'https://graph.microsoft.us',
    graphResource: 'https://graph.microsoft.us',
    outlookResource: 'https://outlook.office365.us',
    outlookAppResource: 'https://outlook.office365.us',
    imap: { host: 'outlook.office365.us', port: 993 },
    pop3: { host: 'outlook.office365.us', port: 995 },
    smtp: { host: 'smtp.office365.us', port: 587 },
    federatedCredentialAudience: 'api://AzureADTokenExchangeUSGov',
  },
  usgovdod: {
    name: 'usgovdod',
    loginUrl: 'https://login.microsoftonline.us',
    graphUrl: 'https://dod-graph.microsoft.us',
    graphResource: 'https://dod-graph.microsoft.us',
    outlookResource: 'https://outlook.office365.us',
    outlookAppResource: 'https://outlook.office365.us',
    imap: { host: 'outlook-dod.office365.us', port: 993 },
    pop3: { host: 'outlook-dod.office365.us', port: 995 },
    smtp: { host: 'outlook-dod.office365.us', port: 587 },
    federatedCredentialAudience: 'api://AzureADTokenExchangeUSGov',
  },
  china: {
    name: 'china',
    loginUrl: 'https://login.partner.microsoftonline.cn',
    graphUrl: 'https://microsoftgraph.chinacloudapi.cn',
    graphResource: 'https://microsoftgraph.chinacloudapi.cn',
    outlookResource: 'https://partner.outlook.cn',
    outlookAppResource: 'https://partner.outlook.cn',
    imap: { host: 'partner.outlook.cn', port: 993 },
    pop3: { host: 'partner.outlook.cn', port: 995 },
    smtp: { host: 'smtp.partner.outlook.cn', port: 587 },
    federatedCredentialAudience: 'api://AzureADTokenExchangeChina',
  },
};

/** `host:port` as settings write it. */
export function parseHostPort(text: string, defaultPort: number): { host: string; port: number } | undefined {
  const match = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?$/.exec(text.trim());
  if (!match?.[1]) return undefined;
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  return port > 0 && port < 65536 ? { host: match[1].replace(/^\[|\]$/g, ''), port } : undefined;
}
