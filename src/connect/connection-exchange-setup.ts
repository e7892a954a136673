import { z } from 'zod';
import { listMailboxes } from '../connections/mailboxes.js';
import type { Connection } from '../domain/connection.js';
import { exchangeSetup, type ExchangeProtocol, type ExchangeSetup } from '../domain/exchange-setup.js';
import type { Repositories } from '../store/repositories.js';

/**
 * The Exchange Online PowerShell of one application connection: its tenant, the app's service
 * principal there, and its mailboxes with the protocols its transports use.
 */

export class ExchangeSetupUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExchangeSetupUnavailable';
  }
}

export interface ExchangeSetupDeps {
  repositories: Pick<Repositories, 'mailboxes'>;
  /** The application (client) id of one of the vendor's app registrations. */
  clientIdOf(appId: string): string | undefined;
  vendorName: string;
}

export const exchangeSetupSchema = z
  .object({
    tenantId: z.uuid(),
    appId: z.uuid(),
    servicePrincipalObjectId: z.uuid(),
    mailboxes: z.array(z.string()),
    protocols: z.array(z.enum(['imap', 'pop', 'smtp'])),
    steps: z.array(z.object({ kind: z.string(), commands: z.array(z.string()) })),
    script: z.string().meta({ description: 'Every command, one a line, to paste into PowerShell as a whole.' }),
  })
  .meta({ id: 'ExchangeSetup' });

/** The protocols a connection uses that need Exchange's own grant in application mode. */
export function exchangeProtocols(connection: Pick<Connection, 'transports'>): ExchangeProtocol[] {
  const protocols: ExchangeProtocol[] = [];
  if (connection.transports.receive === 'imap') protocols.push('imap');
  if (connection.transports.receive === 'pop3') protocols.push('pop');
  if (connection.transports.send === 'smtp') protocols.push('smtp');
  return protocols;
}

export interface ExchangeSetupOptions {
  /** RBAC for Applications: the distinguished name of the mail-enabled group SMTP sending is limited to. */
  smtpScopeGroup?: string;
}

export async function connectionExchangeSetup(deps: ExchangeSetupDeps, connection: Connection, options: ExchangeSetupOptions = {}): Promise<ExchangeSetup> {
  const protocols = exchangeProtocols(connection);
  if (connection.mode !== 'application' || protocols.length === 0) {
    throw new ExchangeSetupUnavailable('Only application connections that use IMAP, POP or SMTP need Exchange PowerShell.');
  }
  if (!connection.tenantId || !connection.servicePrincipalId) {
    throw new ExchangeSetupUnavailable('The connection is not connected yet: the service principal is known once an administrator has consented.');
  }
  const appId = deps.clientIdOf(connection.appId);
  if (!appId) throw new ExchangeSetupUnavailable(`The connection's app registration "${connection.appId}" is no longer configured.`);
  const mailboxes = await listMailboxes(deps.repositories, connection);
  return exchangeSetup({
    tenantId: connection.tenantId,
    appId,
    servicePrincipalObjectId: connection.servicePrincipalId,
    displayName: deps.vendorName,
    mailboxes: mailboxes.map((mailbox) => ({ address: mailbox.address, protocols })),
    // Per mailbox only: many tenants have SMTP AUTH off, and XOAUTH2 submission then fails with 5.7.139.
    enableSmtpClientAuthentication: protocols.includes('smtp'),
    ...(options.smtpScopeGroup !== undefined &&
      protocols.includes('smtp') && { smtpScope: { name: `${deps.vendorName} SMTP`, groupDistinguishedName: options.smtpScopeGroup } }),
  });
}
