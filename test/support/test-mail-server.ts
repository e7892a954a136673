import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { ImapFlow } from 'imapflow';
import { inject } from 'vitest';
import { dumpImapCommandStats, imapCommandCountsIn } from '../../local/sandbox/mail-server/index.js';
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

/**
 * The IMAP commands Dovecot finished for `user`'s sessions so far, by name ("STATUS", "EXAMINE",
 * "UID FETCH"; commands before login, such as AUTHENTICATE, are not counted): what polls cost at
 * the server. A session reports its commands a moment after answering them, so this waits until
 * `loggedOut` LOGOUTs of the user are counted (a receiver's look ends with one). Counts only grow,
 * and other test files run at the same time: use a mailbox of the test's own, and compare two
 * readings with `commandsBetween`.
 */
export async function imapCommandCounts(user: string, loggedOut = 0): Promise<Record<string, number>> {
  return (await imapCommandCountsOf([user], loggedOut)).get(user) ?? {};
}

/** imapCommandCounts for many users from one reading of Dovecot's stats. */
export async function imapCommandCountsOf(users: readonly string[], loggedOut = 0): Promise<Map<string, Record<string, number>>> {
  // The stack's directory holds log/dovecot.log (local/sandbox/mail-server/index.ts).
  const stackDir = dirname(dirname(server().dovecotLogPath));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const dump = await dumpImapCommandStats(stackDir);
    const counts = new Map(users.map((user) => [user, imapCommandCountsIn(dump, user)]));
    const behind = users.filter((user) => (counts.get(user)?.LOGOUT ?? 0) < loggedOut);
    if (behind.length === 0) return counts;
    if (Date.now() > deadline) throw new Error(`Dovecot counted fewer than ${String(loggedOut)} LOGOUTs of ${behind.slice(0, 3).join(', ')}${behind.length > 3 ? ` and ${String(behind.length - 3)} more` : ''} within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The commands counted from `before` to `after` (readings of imapCommandCounts), those that did not change left out. */
export function commandsBetween(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const between: Record<string, number> = {};
  for (const [command, count] of Object.entries(after)) {
    const added = count - (before[command] ?? 0);
    if (added !== 0) between[command] = added;
  }
  return between;
}
