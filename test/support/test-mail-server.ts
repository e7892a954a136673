import { randomBytes } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import { inject } from 'vitest';
import type { MailServerForTests } from '../integration/mail-server.global-setup.js';
import { importSigningKey, mintDelegatedToken, type DelegatedTokenOptions, type TokenSigner } from './mail-tokens.js';

/**
 * The real Dovecot + Postfix of mail-server.global-setup.ts (XOAUTH2 only, like Exchange Online),
 * and what the mail tests share: mailboxes no other test touches, and delegated tokens the servers
 * accept. `provided` is null when this machine cannot run them; the suites then show as skipped.
 */

export const provided = inject('mailServer');

export function server(): MailServerForTests {
  if (!provided) throw new Error('the mail server stack is not running');
  return provided;
}

/** The connector settings that make the test servers the tenant's IMAP, POP3 and SMTP hosts. */
export function mailHostSettings(): Record<string, string> {
  const { host, ports } = server();
  return {
    ENTRA_IMAP_HOST: `${host}:${String(ports.imaps)}`,
    ENTRA_POP3_HOST: `${host}:${String(ports.pop3s)}`,
    ENTRA_SMTP_HOST: `${host}:${String(ports.submission)}`,
  };
}

/** A mailbox no other test touches. */
export function mailbox(name: string): string {
  return `${name}-${randomBytes(4).toString('hex')}@contoso.test`;
}

/** Mints delegated tokens for the run's first tenant, signed with the key the servers trust; call `load` in beforeAll. */
export function delegatedTokens(): { load(): Promise<void>; delegated(upn: string, options?: Partial<DelegatedTokenOptions>): Promise<string>; signer(): TokenSigner; tenant(): string } {
  let signer: TokenSigner | undefined;
  let tenant: string | undefined;
  const loaded = () => {
    if (!signer || tenant === undefined) throw new Error('delegatedTokens().load() has not run');
    return { signer, tenant };
  };
  return {
    async load() {
      const { signingKey, tenants } = server();
      signer = await importSigningKey(signingKey.pemKid, signingKey.privateKeyPem);
      tenant = tenants[0];
    },
    delegated(upn, options = {}) {
      const current = loaded();
      return mintDelegatedToken(current.signer, { tenantId: current.tenant, upn, ...options });
    },
    signer: () => loaded().signer,
    tenant: () => loaded().tenant,
  };
}

export function imap(user: string, accessToken: string, via: 'implicit TLS' | 'STARTTLS' = 'implicit TLS'): ImapFlow {
  const { host, ports, caPem } = server();
  const client = new ImapFlow({
    host,
    port: via === 'implicit TLS' ? ports.imaps : ports.imap,
    secure: via === 'implicit TLS',
    doSTARTTLS: via === 'STARTTLS' ? true : undefined,
    tls: { ca: caPem },
    auth: { user, accessToken },
    logger: false,
  });
  // A refused login also surfaces as an 'error' event; the rejected connect() is what tests check.
  client.on('error', () => undefined);
  return client;
}

export async function withImap<T>(user: string, accessToken: string, use: (client: ImapFlow) => T | Promise<T>): Promise<T> {
  const client = imap(user, accessToken);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.logout();
  }
}

export async function waitForMessage(user: string, accessToken: string, subject: string, timeoutMs = 10_000): Promise<string> {
  return withImap(user, accessToken, async (client) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lock = await client.getMailboxLock('INBOX');
      try {
        const uids = await client.search({ subject }, { uid: true });
        const uid = uids ? uids[0] : undefined;
        if (uid !== undefined) {
          const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
          if (message && message.source) return message.source.toString('utf8');
        }
      } finally {
        lock.release();
      }
      if (Date.now() > deadline) throw new Error(`no message "${subject}" reached ${user} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
}
