import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port.js';
import { probeGraph, probeImap, probePop3, probeSmtp, type MailProbeInput } from '../../src/mail/probes.js';
import type { ProbeResult } from '../../src/domain/connectivity.js';
import { closeServer } from '../support/close-server.js';
import { mintDelegatedToken, type TokenSigner } from '../support/mail-tokens.js';
import { delegatedTokens, mailbox, provided, server, waitForMessage } from '../support/test-mail-server.js';
import type { MailServerForTests } from './mail-server.global-setup.js';

// The real Dovecot + Postfix of mail-server.global-setup.ts (XOAUTH2 only, like Exchange Online);
// null when this machine cannot run them, and the mail server suites then show as skipped. Tokens
// are delegated ones: app-only tokens are another change's business.

const TIMEOUT_MS = 10_000;

/** Nothing the probe hands back may carry the token or the XOAUTH2 string made from it. */
function expectNoCredentials(result: ProbeResult<unknown>, user: string, accessToken: string): void {
  const text = JSON.stringify(result);
  expect(text).not.toContain(accessToken);
  expect(text).not.toContain(accessToken.split('.')[2]);
  expect(text).not.toContain(Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`).toString('base64'));
}

/** A TCP server that accepts connections and never says a word. */
async function silentServer(): Promise<{ port: number; server: TcpServer; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const silent = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const address = silent.address();
  if (!address || typeof address !== 'object') throw new Error('no port');
  return { port: address.port, server: silent, sockets };
}

describe.skipIf(provided === null)('connectivity probes against Dovecot + Postfix', () => {
  const minter = delegatedTokens();
  const delegated = (upn: string) => minter.delegated(upn);

  beforeAll(async () => {
    await minter.load();
  });

  function input(port: keyof MailServerForTests['ports'], user: string, accessToken: string, overrides: Partial<MailProbeInput> = {}): MailProbeInput {
    const { host, ports, caPem } = server();
    return { host, port: ports[port], tls: { ca: caPem }, user, accessToken, timeoutMs: TIMEOUT_MS, ...overrides };
  }

  describe('with a token for the mailbox', () => {
    it('IMAP over implicit TLS: logs in, examines the INBOX, logs out', async () => {
      const user = mailbox('alice');
      const result = await probeImap(input('imaps', user, await delegated(user)));
      expect(result).toMatchObject({ ok: true, detail: { messages: 0 } });
      expect(result.durationMs).toBeGreaterThanOrEqual(0);
    });

    it('POP3 over implicit TLS: logs in, STAT, QUIT', async () => {
      const user = mailbox('alice');
      const result = await probePop3(input('pop3s', user, await delegated(user)));
      expect(result).toMatchObject({ ok: true, detail: { messages: 0, octets: 0 } });
    });

    it('SMTP with STARTTLS: proves AUTH without sending anything', async () => {
      const user = mailbox('alice');
      const result = await probeSmtp(input('submission', user, await delegated(user)));
      expect(result).toEqual({ ok: true, durationMs: expect.any(Number) as number });
    });

    it('SMTP: sends the test message, which arrives with the Message-ID reported', async () => {
      const sender = mailbox('alice');
      const recipient = mailbox('bob');
      const result = await probeSmtp({ ...input('submission', sender, await delegated(sender)), testMessageTo: recipient, vendorName: 'Acme Helpdesk' });
      if (!result.ok) throw new Error(`the probe failed: ${result.cause} ${result.serverText ?? ''}`);
      const messageId = result.detail?.testMessageId ?? '';
      expect(messageId).toMatch(/^<.+@.+>$/);
      expect(result.detail?.serverResponse).toMatch(/^250 /);

      const source = await waitForMessage(recipient, await delegated(recipient), 'Connectivity test from Acme Helpdesk');
      expect(source).toContain(`Message-ID: ${messageId}`);
      expect(source).toContain(`From: ${sender}`);
      expect(source).toContain(`To: ${recipient}`);
      expect(source).toContain('\r\n\r\nThis is a connectivity test from Acme Helpdesk.\r\n');
    });

    it('POP3 counts what is in the maildrop', async () => {
      const sender = mailbox('alice');
      const recipient = mailbox('carol');
      const sent = await probeSmtp({ ...input('submission', sender, await delegated(sender)), testMessageTo: recipient, vendorName: 'Acme' });
      expect(sent.ok).toBe(true);
      const token = await delegated(recipient);
      await waitForMessage(recipient, token, 'Connectivity test from Acme');
      const result = await probePop3(input('pop3s', recipient, token));
      expect(result).toMatchObject({ ok: true, detail: { messages: 1, octets: expect.any(Number) as number } });
      expect(await probeImap(input('imaps', recipient, token))).toMatchObject({ ok: true, detail: { messages: 1 } });
    });
  });

  describe('names the refusal of a token for another user, and of an expired one', () => {
    const now = () => Math.floor(Date.now() / 1000);
    const tokens: { name: string; token: (user: string, mint: typeof mintDelegatedToken, signer: TokenSigner, tenant: string) => Promise<string> }[] = [
      { name: "another user's token", token: (_user, mint, key, tenantId) => mint(key, { tenantId, upn: mailbox('mallory') }) },
      { name: 'an expired token', token: (user, mint, key, tenantId) => mint(key, { tenantId, upn: user, issuedAt: now() - 7200, lifetimeSeconds: 3600 }) },
    ];

    it.for(tokens)('$name', async ({ token }) => {
      const user = mailbox('victim');
      const accessToken = await token(user, mintDelegatedToken, minter.signer(), minter.tenant());

      const imap = await probeImap(input('imaps', user, accessToken));
      expect(imap).toMatchObject({ ok: false, cause: 'authentication_failed', serverText: expect.stringMatching(/^NO \[AUTHENTICATIONFAILED\]/) as string });
      expectNoCredentials(imap, user, accessToken);

      const pop3 = await probePop3(input('pop3s', user, accessToken));
      expect(pop3).toMatchObject({ ok: false, cause: 'authentication_failed', serverText: expect.stringMatching(/^-ERR \[AUTH\]/) as string });
      expectNoCredentials(pop3, user, accessToken);

      const smtp = await probeSmtp(input('submission', user, accessToken));
      expect(smtp).toMatchObject({ ok: false, cause: 'authentication_failed', serverText: expect.stringMatching(/^535 5\.7\.8 /) as string, errorCode: 'EAUTH' });
      expectNoCredentials(smtp, user, accessToken);
    });

    it('an app-only connection whose login is refused: Exchange does not know the app', async () => {
      const user = mailbox('shared');
      const accessToken = await delegated(mailbox('mallory'));
      expect(await probeImap(input('imaps', user, accessToken, { mode: 'application' }))).toMatchObject({ ok: false, cause: 'exchange_service_principal_missing' });
      expect(await probePop3(input('pop3s', user, accessToken, { mode: 'application' }))).toMatchObject({ ok: false, cause: 'exchange_service_principal_missing' });
    });
  });

  describe('names network and TLS failures', () => {
    it('network_unreachable for a closed port', async () => {
      const user = mailbox('alice');
      const accessToken = await delegated(user);
      const closed = await freePort();
      for (const probe of [probeImap, probePop3, probeSmtp]) {
        const result = await probe(input('imaps', user, accessToken, { port: closed }));
        expect(result, probe.name).toMatchObject({ ok: false, cause: 'network_unreachable', errorCode: 'ECONNREFUSED' });
      }
    });

    it('network_unreachable when the server accepts but never answers, within the time limit', async () => {
      const silent = await silentServer();
      try {
        const user = mailbox('alice');
        const accessToken = await delegated(user);
        const results = await Promise.all(
          [probeImap, probePop3, probeSmtp].map((probe) => probe(input('imaps', user, accessToken, { port: silent.port, timeoutMs: 500 }))),
        );
        for (const result of results) {
          expect(result).toMatchObject({ ok: false, cause: 'network_unreachable' });
          expect(result.durationMs).toBeLessThan(3000);
        }
      } finally {
        for (const socket of silent.sockets) socket.destroy();
        silent.server.close();
      }
    });

    it("tls_failed when the server's certificate is not trusted", async () => {
      const user = mailbox('alice');
      const accessToken = await delegated(user);
      expect(await probeImap(input('imaps', user, accessToken, { tls: {} }))).toMatchObject({ ok: false, cause: 'tls_failed', errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      expect(await probePop3(input('pop3s', user, accessToken, { tls: {} }))).toMatchObject({ ok: false, cause: 'tls_failed', errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      expect(await probeSmtp(input('submission', user, accessToken, { tls: {} }))).toMatchObject({ ok: false, cause: 'tls_failed', errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    });

    it('tls_failed when implicit TLS meets a plain-text port', async () => {
      const user = mailbox('alice');
      const accessToken = await delegated(user);
      expect(await probeImap(input('imap', user, accessToken))).toMatchObject({ ok: false, cause: 'tls_failed' });
      expect(await probePop3(input('pop3', user, accessToken))).toMatchObject({ ok: false, cause: 'tls_failed' });
    });
  });
});

describe('probeGraph against a stand-in for Graph', () => {
  const TOKEN = `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ scp: 'Mail.ReadWrite' })).toString('base64url')}.c2lnbmF0dXJl`;
  let graphUrl: string;
  let answer: (request: IncomingMessage) => { status: number; body: unknown };
  const requests: { url: string; authorization: string | undefined }[] = [];
  const graph = createHttpServer((request, response) => {
    requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
    const { status, body } = answer(request);
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });

  beforeAll(async () => {
    graph.listen(0, '127.0.0.1');
    await once(graph, 'listening');
    const address = graph.address();
    if (!address || typeof address !== 'object') throw new Error('no port');
    graphUrl = `http://127.0.0.1:${address.port}/`;
  });

  afterAll(() => closeServer(graph));

  function graphError(status: number, code: string, message: string) {
    return () => ({ status, body: { error: { code, message, innerError: { 'request-id': randomUUID(), date: new Date().toISOString() } } } });
  }

  it('receive: reads the inbox folder of the mailbox, with the bearer token', async () => {
    answer = () => ({ status: 200, body: { id: 'AAMkAGI2-inbox', displayName: 'Inbox' } });
    requests.length = 0;
    const result = await probeGraph({ graphUrl, mailbox: 'support@contoso.com', accessToken: TOKEN, receive: true });
    expect(result).toMatchObject({ ok: true, detail: { id: 'AAMkAGI2-inbox', displayName: 'Inbox' } });
    expect(requests).toEqual([{ url: '/v1.0/users/support%40contoso.com/mailFolders/inbox?$select=id,displayName', authorization: `Bearer ${TOKEN}` }]);
  });

  it("send only: looks the mailbox's user up, or the signed-in user as 'me'", async () => {
    answer = () => ({ status: 200, body: { id: '6a2b0c6e-9f1d-4b7e-8c3a-5d4e3f2a1b0c' } });
    requests.length = 0;
    expect(await probeGraph({ graphUrl, mailbox: 'me', accessToken: TOKEN, receive: false })).toMatchObject({ ok: true, detail: { id: '6a2b0c6e-9f1d-4b7e-8c3a-5d4e3f2a1b0c' } });
    expect(await probeGraph({ graphUrl, mailbox: 'alice@contoso.com', accessToken: TOKEN, receive: false })).toMatchObject({ ok: true });
    expect(requests.map((request) => request.url)).toEqual(['/v1.0/me?$select=id', '/v1.0/users/alice%40contoso.com?$select=id']);
  });

  it.for([
    { status: 403, code: 'ErrorAccessDenied', message: 'Access to OData is disabled.', cause: 'access_denied' },
    { status: 403, code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.', cause: 'consent_missing' },
    { status: 403, code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.', cause: 'consent_missing' },
    { status: 404, code: 'ErrorInvalidUser', message: "The requested user 'nobody@contoso.com' is invalid.", cause: 'mailbox_not_found' },
    { status: 404, code: 'MailboxNotEnabledForRESTAPI', message: 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.', cause: 'mailbox_not_found' },
    { status: 401, code: 'InvalidAuthenticationToken', message: 'Access token has expired or is not yet valid.', cause: 'invalid_token' },
    { status: 429, code: 'ApplicationThrottled', message: 'Application is over its MailboxConcurrency limit.', cause: 'throttled' },
    { status: 503, code: 'ServiceNotAvailable', message: 'The service is temporarily unavailable.', cause: 'unavailable' },
  ])('HTTP $status $code: $cause', async ({ status, code, message, cause }) => {
    answer = graphError(status, code, message);
    const result = await probeGraph({ graphUrl, mailbox: 'support@contoso.com', accessToken: TOKEN, receive: true });
    expect(result).toEqual({ ok: false, durationMs: expect.any(Number) as number, cause, serverText: `HTTP ${status} ${code}: ${message}` });
  });

  it('takes credentials out of what Graph said', async () => {
    answer = graphError(401, 'InvalidAuthenticationToken', `Token ${TOKEN} is not valid`);
    const result = await probeGraph({ graphUrl, mailbox: 'me', accessToken: TOKEN, receive: false });
    expect(result).toMatchObject({ ok: false, cause: 'invalid_token' });
    expect(JSON.stringify(result)).not.toContain(TOKEN);
  });

  it('network_unreachable for a closed port, and when Graph does not answer in time', async () => {
    const closed = await freePort();
    expect(await probeGraph({ graphUrl: `http://127.0.0.1:${closed}`, mailbox: 'me', accessToken: TOKEN, receive: true })).toMatchObject({
      ok: false,
      cause: 'network_unreachable',
      errorCode: 'ECONNREFUSED',
    });
    const silent = await silentServer();
    try {
      const result = await probeGraph({ graphUrl: `http://127.0.0.1:${silent.port}`, mailbox: 'me', accessToken: TOKEN, receive: true, timeoutMs: 300 });
      expect(result).toMatchObject({ ok: false, cause: 'network_unreachable', errorCode: 'TimeoutError' });
    } finally {
      for (const socket of silent.sockets) socket.destroy();
      silent.server.close();
    }
  });
});
