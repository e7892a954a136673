import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { imapReceiver } from '../../src/mail/imap-receiver.js';
import { ReceiveAttemptError, type ImapFolderResult, type ImapPollRequest, type MessageSink } from '../../src/mail/mail-receiver.js';
import { commandsBetween, delegatedTokens, imapCommandCounts, mailbox, provided, server, withImap } from '../support/test-mail-server.js';
import { keepingSink } from '../support/keeping-sink.js';

/**
 * The IMAP receiver against the real Dovecot (XOAUTH2 only, like Exchange Online): baselines,
 * new messages handed over once, limits, a UIDVALIDITY change, failures by kind, and what a look
 * costs at the server, counted by Dovecot itself.
 */

const TIMEOUT_MS = 10_000;

/** A message as a client would APPEND it; the same arguments give the same bytes. */
function rawMessage(messageId: string, subject: string): string {
  return [
    'From: sender@fabrikam.test',
    'To: support@contoso.test',
    `Subject: ${subject}`,
    `Message-ID: ${messageId}`,
    'Date: Mon, 01 Jan 2024 10:00:00 +0000',
    '',
    `This is ${subject}.`,
    '',
  ].join('\r\n');
}

describe.skipIf(provided === null)('IMAP receiver against Dovecot', () => {
  const minter = delegatedTokens();
  const receiver = () => {
    const { host, ports, caPem } = server();
    return imapReceiver({ host, port: ports.imaps, tls: { ca: caPem }, timeoutMs: TIMEOUT_MS });
  };

  beforeAll(async () => {
    await minter.load();
  });

  /** A mailbox of the test's own, a token for it, and polls that carry each folder's cursor on to the next. */
  async function mailboxUnderTest(name: string) {
    const user = mailbox(name);
    const accessToken = await minter.delegated(user);
    const target = { mailbox: user, accessToken };
    let cursors = new Map<string, ImapFolderResult['cursor']>();
    return {
      user,
      accessToken,
      target,
      async poll(options: { folders?: string[]; sink?: MessageSink; limit?: number; resyncDays?: number } = {}): Promise<ImapFolderResult[]> {
        const request: ImapPollRequest = {
          target,
          folders: (options.folders ?? ['INBOX']).map((path) => {
            const cursor = cursors.get(path);
            return cursor ? { path, cursor } : { path };
          }),
          limit: options.limit ?? 50,
          resyncDays: options.resyncDays ?? 7,
          sink: options.sink ?? (() => Promise.reject(new Error('nothing was expected to reach the sink'))),
        };
        const results = await receiver().poll(request);
        cursors = new Map([...cursors, ...results.map((result) => [result.path, result.cursor] as const)]);
        return results;
      },
      append(folder: string, raw: string) {
        return withImap(user, accessToken, (client) => client.append(folder, raw));
      },
    };
  }

  it('takes a baseline, then hands a new message to the sink exactly once', async () => {
    const box = await mailboxUnderTest('imap-new');
    await box.append('INBOX', rawMessage(`<${randomUUID()}@fabrikam.test>`, 'already there'));

    const [baseline] = await box.poll();
    expect(baseline).toMatchObject({ path: 'INBOX', found: 0, resynced: false, more: false, cursor: { lastUid: 1, highestModseq: expect.any(String) as string } });

    const messageId = `<${randomUUID()}@fabrikam.test>`;
    const raw = rawMessage(messageId, 'new message');
    await box.append('INBOX', raw);
    const { sink, kept } = keepingSink();
    const [first] = await box.poll({ sink });
    expect(first).toMatchObject({ found: 1, more: false, cursor: { uidValidity: baseline?.cursor.uidValidity, lastUid: 2 } });
    expect(kept).toEqual([{ folder: 'INBOX', fingerprint: `imap:${messageId}|${raw.length}|2024-01-01T10:00:00.000Z`, size: raw.length, raw }]);

    const [second] = await box.poll({ sink });
    expect(second).toMatchObject({ found: 0, more: false, cursor: first?.cursor });
    expect(kept).toHaveLength(1);
  });

  it('hands at most `limit` messages per folder, oldest first, and says more are waiting', async () => {
    const box = await mailboxUnderTest('imap-limit');
    await box.poll();
    const subjects = ['one', 'two', 'three'];
    for (const subject of subjects) await box.append('INBOX', rawMessage(`<${randomUUID()}@fabrikam.test>`, subject));

    const { sink, kept } = keepingSink();
    expect(await box.poll({ sink, limit: 2 })).toMatchObject([{ found: 2, more: true, cursor: { lastUid: 2 } }]);
    expect(await box.poll({ sink, limit: 2 })).toMatchObject([{ found: 1, more: false, cursor: { lastUid: 3 } }]);
    expect(kept.map((message) => /Subject: (\w+)/.exec(message.raw)?.[1])).toEqual(subjects);
  });

  it('after a UIDVALIDITY change, offers the recent messages again with the same fingerprints', async () => {
    const box = await mailboxUnderTest('imap-resync');
    await withImap(box.user, box.accessToken, (client) => client.mailboxCreate('Receipts'));
    await box.poll({ folders: ['Receipts'] });
    const messages = [rawMessage(`<${randomUUID()}@fabrikam.test>`, 'first receipt'), rawMessage(`<${randomUUID()}@fabrikam.test>`, 'second receipt')];
    for (const raw of messages) await box.append('Receipts', raw);
    const before = keepingSink();
    const [read] = await box.poll({ folders: ['Receipts'], sink: before.sink });
    expect(read).toMatchObject({ found: 2, resynced: false });

    // A folder deleted and made again under the same name is renumbered with a new UIDVALIDITY.
    await withImap(box.user, box.accessToken, async (client) => {
      await client.mailboxDelete('Receipts');
      await client.mailboxCreate('Receipts');
    });
    for (const raw of messages) await box.append('Receipts', raw);

    const offered: string[] = [];
    const recording: MessageSink = async (message) => {
      offered.push(message.fingerprint);
      await before.sink(message);
    };
    const [resync] = await box.poll({ folders: ['Receipts'], sink: recording, limit: 1 });
    expect(resync).toMatchObject({ found: 1, resynced: true, more: true, cursor: { lastUid: 1 } });
    expect(resync?.cursor.uidValidity).not.toBe(read?.cursor.uidValidity);
    expect(await box.poll({ folders: ['Receipts'], sink: recording })).toMatchObject([{ found: 1, resynced: false, more: false, cursor: { lastUid: 2 } }]);
    expect(offered).toEqual(before.kept.map((message) => message.fingerprint));
    // The sink recognised both, so nothing was kept twice.
    expect(before.kept).toHaveLength(2);
    expect(await box.poll({ folders: ['Receipts'], sink: recording })).toMatchObject([{ found: 0 }]);
  });

  it("a sink's failure ends the look and comes back as it was thrown", async () => {
    const box = await mailboxUnderTest('imap-sink');
    await box.poll();
    await box.append('INBOX', rawMessage(`<${randomUUID()}@fabrikam.test>`, 'unkept'));
    const failure = new Error('blob storage is down');
    await expect(box.poll({ sink: () => Promise.reject(failure) })).rejects.toBe(failure);
    // The cursor did not move on: the next look offers the message again.
    const { sink, kept } = keepingSink();
    expect(await box.poll({ sink })).toMatchObject([{ found: 1 }]);
    expect(kept).toHaveLength(1);
  });

  describe('fails by kind', () => {
    const now = () => Math.floor(Date.now() / 1000);

    it.for([
      { name: 'an expired token', token: (user: string) => minter.delegated(user, { issuedAt: now() - 7200, lifetimeSeconds: 3600 }) },
      { name: "another user's token", token: () => minter.delegated(mailbox('mallory')) },
    ])('authentication: $name', async ({ token }) => {
      const user = mailbox('imap-refused');
      const accessToken = await token(user);
      const error = (await receiver()
        .poll({ target: { mailbox: user, accessToken }, folders: [{ path: 'INBOX' }], limit: 10, resyncDays: 7, sink: () => Promise.resolve() })
        .catch((thrown: unknown) => thrown)) as ReceiveAttemptError;
      expect(error).toBeInstanceOf(ReceiveAttemptError);
      expect(error.failure).toMatchObject({ transport: 'imap', kind: 'authentication', code: 'AUTHENTICATIONFAILED' });
      const xoauth2 = Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`).toString('base64');
      for (const text of [error.message, JSON.stringify(error.failure), String(error.stack)]) {
        expect(text).not.toContain(accessToken);
        expect(text).not.toContain(xoauth2);
      }
    });

    it('not_found: a folder that does not exist, named in the detail', async () => {
      const box = await mailboxUnderTest('imap-missing');
      await expect(box.poll({ folders: ['INBOX', 'Receipts'] })).rejects.toMatchObject({
        failure: { transport: 'imap', kind: 'not_found', detail: expect.stringContaining('Receipts') as string },
      });
    });

    it('network: a server that accepts and never answers, given up at the deadline', async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((socket) => sockets.add(socket));
      silent.listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const address = silent.address();
      try {
        if (!address || typeof address !== 'object') throw new Error('no port');
        const quiet = imapReceiver({ host: '127.0.0.1', port: address.port, timeoutMs: 300 });
        const accessToken = await minter.delegated('alice@contoso.test');
        await expect(
          quiet.poll({ target: { mailbox: 'alice@contoso.test', accessToken }, folders: [{ path: 'INBOX' }], limit: 1, resyncDays: 1, sink: () => Promise.resolve() }),
        ).rejects.toMatchObject({ failure: { transport: 'imap', kind: 'network' } });
      } finally {
        for (const socket of sockets) socket.destroy();
        silent.close();
      }
    });
  });

  describe('what a look costs, counted by Dovecot', () => {
    it('an idle look costs one STATUS per folder and opens nothing, for each of 20 mailboxes', async () => {
      const folders = ['INBOX', 'Sent Items'];
      const boxes = await Promise.all(Array.from({ length: 20 }, () => mailboxUnderTest('imap-idle')));
      await Promise.all(boxes.map((box) => box.poll({ folders })));
      const before = await Promise.all(boxes.map((box) => imapCommandCounts(box.user, 1)));

      await Promise.all(boxes.map((box) => box.poll({ folders })));
      const after = await Promise.all(boxes.map((box) => imapCommandCounts(box.user, 2)));
      for (const [index, box] of boxes.entries()) {
        // The session's own setup (imapflow's ID, NAMESPACE, ENABLE CONDSTORE), the STATUS of each folder, LOGOUT.
        expect(commandsBetween(before[index] ?? {}, after[index] ?? {}), box.user).toEqual({ ID: 1, NAMESPACE: 1, ENABLE: 1, STATUS: 2, LOGOUT: 1 });
      }
    });

    it('a folder with news is examined once, listed in one UID FETCH, and each message downloaded once', async () => {
      const box = await mailboxUnderTest('imap-news');
      await box.poll();
      for (const subject of ['one', 'two']) await box.append('INBOX', rawMessage(`<${randomUUID()}@fabrikam.test>`, subject));
      // The appending sessions logged out too: one LOGOUT for the baseline, one per APPEND.
      const before = await imapCommandCounts(box.user, 3);
      const { sink } = keepingSink();
      await box.poll({ sink });
      const after = await imapCommandCounts(box.user, 4);
      // imapflow lists a folder (LIST, LSUB) before it first opens it in a session.
      expect(commandsBetween(before, after)).toEqual({ ID: 1, NAMESPACE: 1, ENABLE: 1, STATUS: 1, LIST: 1, LSUB: 1, EXAMINE: 1, 'UID FETCH': 3, LOGOUT: 1 });
    });
  });
});
