import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { ImapFlow } from 'imapflow';
import { decodeJwt } from 'jose';
import nodemailer from 'nodemailer';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  startMailServer,
  startMailServerOnFreePorts,
  writeSigningKeys,
  type RunningMailServer,
} from '../../local/sandbox/mail-server/index.js';
import {
  APP_ROLES,
  EXCHANGE_APP_AUDIENCE,
  EXCHANGE_DELEGATED_AUDIENCE,
  generateSigningKey,
  importSigningKey,
  mintAppToken,
  mintDelegatedToken,
  type DelegatedTokenOptions,
  type TokenSigner,
} from '../support/mail-tokens.js';
import { Pop3Client } from '../../src/mail/pop3-client.js';
import { imap, mailbox, provided, server, waitForMessage, withImap } from '../support/test-mail-server.js';

// The real Dovecot + Postfix of mail-server.global-setup.ts, accepting XOAUTH2 only, like Exchange
// Online. null when this machine cannot run them: the suites below then show as skipped.

function smtp(user: string, accessToken: string, via: 'STARTTLS' | 'implicit TLS' = 'STARTTLS') {
  const { host, ports, caPem } = server();
  return nodemailer.createTransport({
    host,
    port: via === 'STARTTLS' ? ports.submission : ports.submissions,
    secure: via === 'implicit TLS',
    requireTLS: via === 'STARTTLS',
    tls: { ca: caPem },
    auth: { type: 'OAuth2', user, accessToken },
  });
}

function rawMessage(from: string, to: string, subject: string, text: string): string {
  return [`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, `Message-ID: <${randomUUID()}@contoso.test>`, '', text, ''].join('\r\n');
}

/** The capabilities in the IMAP greeting, before any login: what a client may choose from. */
async function greetingCapabilities(port: number, caPem: string): Promise<string[]> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: caPem });
  try {
    const [greeting] = (await once(socket, 'data')) as [Buffer];
    return /\[CAPABILITY ([^\]]*)\]/.exec(greeting.toString('latin1'))?.[1]?.split(' ') ?? [];
  } finally {
    socket.destroy();
  }
}

/** The UIDs of the messages in `folder` whose Message-ID header contains `messageId`, as a connector searches. */
async function uidsWithMessageId(user: string, accessToken: string, folder: string, messageId: string): Promise<number[]> {
  return withImap(user, accessToken, async (client) => {
    const lock = await client.getMailboxLock(folder);
    try {
      return (await client.search({ header: { 'message-id': messageId } }, { uid: true })) || [];
    } finally {
      lock.release();
    }
  });
}

/** Polls until `find` returns a UID: delivery over LMTP happens after SMTP has answered. */
async function waitForUids(find: () => Promise<number[]>, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const uids = await find();
    if (uids.length > 0 || Date.now() > deadline) return uids;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Waits for Dovecot to log a line about this user that matches `pattern`: how a login was made
 * (the SASL mechanism), or why a token was refused, which proves a refusal had the intended cause.
 */
async function expectDovecotLogged(user: string, pattern: RegExp, logPath = server().dovecotLogPath): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const log = await readFile(logPath, 'utf8');
    if (log.split('\n').some((line) => line.includes(user) && pattern.test(line))) return;
    if (Date.now() > deadline) throw new Error(`Dovecot did not log ${String(pattern)} for ${user}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function expectImapRefused(user: string, accessToken: string): Promise<void> {
  const client = imap(user, accessToken);
  try {
    await expect(client.connect()).rejects.toMatchObject({ authenticationFailed: true, serverResponseCode: 'AUTHENTICATIONFAILED' });
  } finally {
    client.close();
  }
}

async function expectSmtpRefused(user: string, accessToken: string): Promise<void> {
  const transport = smtp(user, accessToken);
  try {
    await expect(transport.verify()).rejects.toMatchObject({ code: 'EAUTH', responseCode: 535 });
  } finally {
    transport.close();
  }
}

async function expectPop3Refused(user: string, accessToken: string): Promise<void> {
  const { host, ports, caPem } = server();
  const pop3 = await Pop3Client.connect({ host, port: ports.pop3s, tls: { ca: caPem } });
  try {
    await expect(pop3.authenticateXoauth2(user, accessToken)).rejects.toMatchObject({ authenticationFailed: true });
  } finally {
    pop3.close();
  }
}

describe.skipIf(provided === null)('mail server stack (Dovecot + Postfix, OAuth 2.0 bearer tokens)', () => {
  let signer: TokenSigner;
  let tenant: string;

  beforeAll(async () => {
    const { signingKey, tenants } = server();
    signer = await importSigningKey(signingKey.pemKid, signingKey.privateKeyPem);
    tenant = tenants[0];
  });

  function delegated(upn: string, options: Partial<DelegatedTokenOptions> = {}): Promise<string> {
    return mintDelegatedToken(signer, { tenantId: tenant, upn, ...options });
  }

  describe('accepts valid tokens', () => {
    it('IMAP over implicit TLS: XOAUTH2 login (the only mechanism offered), APPEND, then FETCH', async () => {
      const user = mailbox('alice');
      const subject = `append ${randomUUID()}`;
      const offered = await greetingCapabilities(server().ports.imaps, server().caPem);
      expect(offered.filter((capability) => capability.startsWith('AUTH='))).toEqual(['AUTH=XOAUTH2']);

      await withImap(user, await delegated(user), async (client) => {
        const appended = await client.append('INBOX', rawMessage(user, user, subject, 'hello from APPEND'));
        expect(appended).toMatchObject({ destination: 'INBOX' });
        const lock = await client.getMailboxLock('INBOX');
        try {
          const message = await client.fetchOne('*', { envelope: true, source: true });
          expect(message && message.envelope?.subject).toBe(subject);
          expect(message && message.source?.toString('utf8')).toContain('hello from APPEND');
        } finally {
          lock.release();
        }
      });
      await expectDovecotLogged(user, /Login: .*method=XOAUTH2/);
    });

    it('IMAP with STARTTLS', async () => {
      const user = mailbox('alice');
      const client = imap(user, await delegated(user), 'STARTTLS');
      await client.connect();
      try {
        expect(client.secureConnection).toBe(true);
        expect(await client.status('INBOX', { messages: true })).toMatchObject({ messages: 0 });
      } finally {
        await client.logout();
      }
    });

    it.each(['STARTTLS', 'implicit TLS'] as const)('SMTP submission over %s delivers to the recipient, who reads it over IMAP', async (via) => {
      const sender = mailbox('alice');
      const recipient = mailbox('bob');
      const subject = `smtp ${via} ${randomUUID()}`;
      const transport = smtp(sender, await delegated(sender), via);
      try {
        // A realistic Entra token is 1.5-2.5 kB: the AUTH line must take it whole.
        const info = await transport.sendMail({ from: sender, to: recipient, subject, text: 'hello over SMTP' });
        expect(info.accepted).toEqual([recipient]);
      } finally {
        transport.close();
      }
      const source = await waitForMessage(recipient, await delegated(recipient), subject);
      expect(source).toContain(`From: ${sender}`);
      expect(source).toContain('hello over SMTP');
    });

    // A connector that crashed without knowing whether a send went through looks for its
    // Message-ID in Sent Items before sending again; that only works if submitted mail lands there.
    it('SMTP submission saves a copy to the Sent Items of the mailbox that authenticated, found by its Message-ID', async () => {
      const sender = mailbox('alice');
      const recipient = mailbox('bob');
      const hidden = mailbox('carol');
      const messageId = `<${randomUUID()}@contoso.test>`;
      const subject = `sent items ${randomUUID()}`;
      const transport = smtp(sender, await delegated(sender));
      try {
        const info = await transport.sendMail({ from: sender, to: recipient, bcc: hidden, subject, messageId, text: 'keep a copy' });
        expect(info.accepted).toEqual([recipient, hidden]);
      } finally {
        transport.close();
      }

      // Every recipient gets one copy, which names neither the Bcc recipient nor the Sent Items copy.
      const received = await waitForMessage(recipient, await delegated(recipient), subject);
      expect(received).toContain(`Message-ID: ${messageId}`);
      expect(received).not.toMatch(/^Bcc:/im);
      expect(received).not.toContain(hidden);
      expect(received).not.toContain('Sent Items');
      expect(await waitForMessage(hidden, await delegated(hidden), subject)).toContain(`Message-ID: ${messageId}`);
      for (const user of [recipient, hidden]) {
        expect(await uidsWithMessageId(user, await delegated(user), 'INBOX', messageId), user).toHaveLength(1);
      }

      const token = await delegated(sender);
      const sent = await waitForUids(() => uidsWithMessageId(sender, token, 'Sent Items', messageId));
      expect(sent).toHaveLength(1);
      await withImap(sender, token, async (client) => {
        const lock = await client.getMailboxLock('Sent Items');
        try {
          const copy = await client.fetchOne(String(sent[0]), { source: true }, { uid: true });
          expect(copy && copy.source?.toString('utf8')).toContain(`Subject: ${subject}`);
        } finally {
          lock.release();
        }
      });
      expect(await uidsWithMessageId(sender, token, 'INBOX', messageId)).toEqual([]);
    });

    // Dovecot files "<local>+<folder>" into that folder, which only the Sent Items copy may use.
    it('SMTP recipients cannot pick a folder: a plus address reaches the INBOX, "+Sent Items" is refused', async () => {
      const sender = mailbox('alice');
      const recipient = mailbox('bob');
      const [local, domain] = recipient.split('@') as [string, string];
      const messageId = `<${randomUUID()}@contoso.test>`;
      const subject = `plus address ${randomUUID()}`;
      const transport = smtp(sender, await delegated(sender));
      try {
        await transport.sendMail({ from: sender, to: `${local}+Junk@${domain}`, subject, messageId, text: 'for the inbox' });
        await expect(
          transport.sendMail({
            envelope: { from: sender, to: [`"${local}+Sent Items"@${domain}`] },
            raw: rawMessage(sender, recipient, `forged ${randomUUID()}`, 'not sent by the recipient'),
          }),
        ).rejects.toMatchObject({ code: 'EENVELOPE', responseCode: 501 });
      } finally {
        transport.close();
      }
      const token = await delegated(recipient);
      expect(await waitForMessage(recipient, token, subject)).toContain(`Message-ID: ${messageId}`);
      expect(await uidsWithMessageId(recipient, token, 'Junk', messageId)).toEqual([]);
    });

    it('POP3 over implicit TLS: SASL XOAUTH2, STAT, RETR', async () => {
      const user = mailbox('carol');
      const token = await delegated(user);
      const subject = `pop3 ${randomUUID()}`;
      await withImap(user, token, (client) => client.append('INBOX', rawMessage(user, user, subject, 'hello over POP3')));

      const { host, ports, caPem } = server();
      const pop3 = await Pop3Client.connect({ host, port: ports.pop3s, tls: { ca: caPem } });
      try {
        await pop3.authenticateXoauth2(user, token);
        expect(await pop3.stat()).toMatchObject({ count: 1 });
        const message = (await pop3.retr(1)).toString('utf8');
        expect(message).toContain(`Subject: ${subject}`);
        expect(message).toContain('hello over POP3');
        await pop3.quit();
      } finally {
        pop3.close();
      }
    });

    it('tokens of every configured tenant', async () => {
      const user = mailbox('dave');
      const token = await delegated(user, { tenantId: server().tenants[1] });
      expect(await withImap(user, token, (client) => client.status('INBOX', { messages: true }))).toMatchObject({ messages: 0 });
    });

    it('keys stored as JWK, and keys stored under the azp of v2 tokens', async () => {
      const { signingKey, azpClientId } = server();
      const user = mailbox('erin');
      const jwkSigner = await importSigningKey(signingKey.jwkKid, signingKey.privateKeyPem);
      const jwkToken = await mintDelegatedToken(jwkSigner, { tenantId: tenant, upn: user });
      expect(await withImap(user, jwkToken, (client) => client.noop().then(() => client.usable))).toBe(true);
      const v2Token = await delegated(user, { azp: azpClientId });
      expect(await withImap(user, v2Token, (client) => client.noop().then(() => client.usable))).toBe(true);
    });

    it('an app-only token (audience https://outlook.office365.com, as Entra issues it) opens any mailbox over IMAP, SMTP and POP3', async () => {
      const user = mailbox('shared');
      const recipient = mailbox('frank');
      const token = await mintAppToken(signer, { tenantId: tenant });
      expect(decodeJwt(token).aud).toBe(EXCHANGE_APP_AUDIENCE);
      const subject = `app-only ${randomUUID()}`;

      await withImap(user, token, (client) => client.append('INBOX', rawMessage(user, user, subject, 'stored by the app')));

      const messageId = `<${randomUUID()}@contoso.test>`;
      const transport = smtp(user, token);
      try {
        await transport.sendMail({ from: user, to: recipient, subject, messageId, text: 'sent by the app' });
      } finally {
        transport.close();
      }
      expect(await waitForMessage(recipient, await delegated(recipient), subject)).toContain('sent by the app');
      // The copy goes to the mailbox the app logged in as, as Exchange keeps a shared mailbox's sent mail.
      expect(await waitForUids(() => uidsWithMessageId(user, token, 'Sent Items', messageId))).toHaveLength(1);

      const { host, ports, caPem } = server();
      const pop3 = await Pop3Client.connect({ host, port: ports.pop3s, tls: { ca: caPem } });
      try {
        await pop3.authenticateXoauth2(user, token);
        expect((await pop3.retr(1)).toString('utf8')).toContain(`Subject: ${subject}`);
      } finally {
        pop3.close();
      }
    });
  });

  // Each case differs from a valid delegated token in one respect, and must be refused over every
  // protocol with a definite authentication failure (not a temporary one), for the reason Dovecot logs.
  describe.concurrent('refuses', () => {
    const now = () => Math.floor(Date.now() / 1000);
    const cases: { name: string; reason: RegExp; token: (user: string) => Promise<string> }[] = [
      {
        name: 'an expired token',
        reason: /Token has expired/,
        token: (user) => delegated(user, { issuedAt: now() - 7200, lifetimeSeconds: 3600 }),
      },
      {
        name: 'a token that is not valid yet',
        reason: /Token is not valid yet/,
        token: (user) => delegated(user, { claims: { nbf: now() + 300 } }),
      },
      {
        name: 'a token for another audience (Microsoft Graph)',
        reason: /client_id not found in aud field/,
        token: (user) => delegated(user, { audience: 'https://graph.microsoft.com' }),
      },
      {
        name: 'a token issued by a tenant the servers do not serve',
        reason: /Issuer '.*' is not allowed/,
        token: (user) => delegated(user, { tenantId: randomUUID() }),
      },
      {
        name: 'a token signed by a foreign key under a trusted kid',
        reason: /Bad signature/,
        token: async (user) => mintDelegatedToken(await generateSigningKey(signer.kid), { tenantId: tenant, upn: user }),
      },
      {
        name: "a delegated token for another user's mailbox",
        reason: /did not match/,
        token: () => delegated(mailbox('mallory')),
      },
      {
        // Users assigned app roles get them in their tokens too; that must not make them an app.
        name: "a delegated token that carries app roles, for another user's mailbox",
        reason: /did not match/,
        token: () => delegated(mailbox('mallory'), { claims: { roles: APP_ROLES, idtyp: undefined } }),
      },
    ];

    it.for(cases)('$name', async ({ reason, token }) => {
      const user = mailbox('victim');
      const accessToken = await token(user);
      await expectImapRefused(user, accessToken);
      await expectSmtpRefused(user, accessToken);
      await expectPop3Refused(user, accessToken);
      await expectDovecotLogged(user, reason);
    });

    // Entra never issues one (app-only Exchange tokens come from https://outlook.office365.com/.default).
    // Lacking a upn, it is an internal failure to the delegated passdb, so Dovecot calls the refusal
    // temporary, like an app-only token without roles (README.md).
    it('an app-only token for the delegated audience, https://outlook.office.com', async () => {
      const user = mailbox('victim');
      const accessToken = await mintAppToken(signer, { tenantId: tenant, audience: EXCHANGE_DELEGATED_AUDIENCE });
      const client = imap(user, accessToken);
      try {
        await expect(client.connect()).rejects.toMatchObject({ authenticationFailed: true, serverResponseCode: 'UNAVAILABLE' });
      } finally {
        client.close();
      }
      await expectSmtpRefused(user, accessToken);
      await expectPop3Refused(user, accessToken);
      await expectDovecotLogged(user, /client_id not found in aud field/);
    });
  });
});

describe.skipIf(provided === null)('startMailServer', () => {
  it('starts a second stack offering both mechanisms, restarts it in place with its CA and keys, and stops it completely', async () => {
    const stackDir = await mkdtemp(join(tmpdir(), 'm365-mail-'));
    await chmod(stackDir, 0o755);
    const tenantId = randomUUID();
    let running: RunningMailServer | undefined;
    try {
      const first = await startMailServerOnFreePorts({ stackDir, tenants: [tenantId] });
      running = first;
      const key = await generateSigningKey('second-stack');
      await writeSigningKeys(first.keyDictPath, [{ kid: key.kid, publicKeyPem: key.publicKeyPem }]);
      const user = mailbox('grace');
      const login = async (caPem: string) => {
        const client = new ImapFlow({
          host: first.host,
          port: first.ports.imaps,
          secure: true,
          tls: { ca: caPem },
          auth: { user, accessToken: await mintDelegatedToken(key, { tenantId, upn: user }) },
          logger: false,
        });
        await client.connect();
        await client.logout();
      };
      const offered = await greetingCapabilities(first.ports.imaps, first.caPem);
      expect(offered).toContain('AUTH=XOAUTH2');
      expect(offered).toContain('AUTH=OAUTHBEARER');
      await login(first.caPem);
      // imapflow prefers OAUTHBEARER when it is offered.
      await expectDovecotLogged(user, /Login: .*method=OAUTHBEARER/, first.dovecotLogPath);

      const second = await startMailServer({ stackDir, tenants: [tenantId], ports: first.ports });
      running = second;
      expect(second.caPem).toBe(first.caPem);
      await login(second.caPem);

      await second.stop();
      expect(existsSync(join(stackDir, 'run', 'dovecot.pid'))).toBe(false);
      const ports: Record<string, number> = { ...first.ports };
      for (const port of Object.values(ports)) {
        const refused = await new Promise<boolean>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port });
          socket.once('connect', () => {
            socket.destroy();
            resolve(false);
          });
          socket.once('error', () => {
            resolve(true);
          });
        });
        expect(refused, `port ${port} still accepts connections`).toBe(true);
      }
    } finally {
      await running?.stop();
      await rm(stackDir, { recursive: true, force: true });
    }
  });
});
