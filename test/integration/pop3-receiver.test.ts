import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalCa } from '../../local/tls/local-ca.js';
import { ReceiveAttemptError, type MessageSink, type Pop3Cursor, type Pop3PollResult } from '../../src/mail/mail-receiver.js';
import { Pop3Client } from '../../src/mail/pop3-client.js';
import { pop3Receiver } from '../../src/mail/pop3-receiver.js';
import { delegatedTokens, mailbox, provided, server, withImap } from '../support/test-mail-server.js';
import { keepingSink } from '../support/keeping-sink.js';

/**
 * The POP3 receiver against the real Dovecot: baselines, new messages handed over once, limits,
 * deleting after receipt (and only then, and only once QUIT commits it), failures by kind.
 * Messages reach the maildrop by IMAP APPEND to the INBOX, which POP3 reads. Dovecot 2.3 counts
 * no POP3 commands, so the commands a look sends are checked against a scripted server.
 */

const TIMEOUT_MS = 10_000;

function rawMessage(subject: string): string {
  return [`From: sender@fabrikam.test`, `Subject: ${subject}`, `Message-ID: <${randomUUID()}@fabrikam.test>`, '', `This is ${subject}.`, ''].join('\r\n');
}

describe.skipIf(provided === null)('POP3 receiver against Dovecot', () => {
  const minter = delegatedTokens();
  const receiver = () => {
    const { host, ports, caPem } = server();
    return pop3Receiver({ host, port: ports.pop3s, tls: { ca: caPem }, timeoutMs: TIMEOUT_MS });
  };

  beforeAll(async () => {
    await minter.load();
  });

  async function maildropUnderTest(name: string) {
    const user = mailbox(name);
    const accessToken = await minter.delegated(user);
    let cursor: Pop3Cursor | undefined;
    return {
      user,
      accessToken,
      async poll(options: { sink?: MessageSink; limit?: number; deleteAfterReceive?: boolean } = {}): Promise<Pop3PollResult> {
        const result = await receiver().poll({
          target: { mailbox: user, accessToken },
          ...(cursor !== undefined && { cursor }),
          limit: options.limit ?? 50,
          deleteAfterReceive: options.deleteAfterReceive ?? false,
          sink: options.sink ?? (() => Promise.reject(new Error('nothing was expected to reach the sink'))),
        });
        cursor = result.cursor;
        return result;
      },
      async deliver(...subjects: string[]): Promise<string[]> {
        const raws = subjects.map(rawMessage);
        await withImap(user, accessToken, async (client) => {
          for (const raw of raws) await client.append('INBOX', raw);
        });
        return raws;
      },
      /** The UIDLs in the maildrop, as another POP3 client sees them. */
      async uidls(): Promise<string[]> {
        const { host, ports, caPem } = server();
        const client = await Pop3Client.connect({ host, port: ports.pop3s, tls: { ca: caPem } });
        try {
          await client.authenticateXoauth2(user, accessToken);
          const listed = await client.uidl();
          await client.quit();
          return listed.map(({ uid }) => uid);
        } finally {
          client.close();
        }
      },
    };
  }

  it('takes a baseline, then hands a new message to the sink exactly once', async () => {
    const drop = await maildropUnderTest('pop3-new');
    await drop.deliver('already there');
    const baseline = await drop.poll();
    expect(baseline).toEqual({ cursor: { recent: await drop.uidls() }, found: 0, more: false });

    const [raw] = await drop.deliver('new message');
    const { sink, kept } = keepingSink();
    expect(await drop.poll({ sink })).toMatchObject({ found: 1, more: false });
    const uidls = await drop.uidls();
    expect(kept).toEqual([{ folder: 'POP3', fingerprint: `pop3:${uidls[1] ?? ''}`, size: raw?.length, raw }]);

    expect(await drop.poll({ sink })).toEqual({ cursor: { recent: uidls }, found: 0, more: false });
    expect(kept).toHaveLength(1);
  });

  it('an empty maildrop, first and later', async () => {
    const drop = await maildropUnderTest('pop3-empty');
    expect(await drop.poll()).toEqual({ cursor: { recent: [] }, found: 0, more: false });
    await drop.deliver('first ever');
    const { sink, kept } = keepingSink();
    expect(await drop.poll({ sink })).toMatchObject({ found: 1 });
    expect(kept.map((message) => /Subject: (.+)/.exec(message.raw)?.[1])).toEqual(['first ever']);
  });

  it('hands at most `limit` messages, oldest first, and says more are waiting', async () => {
    const drop = await maildropUnderTest('pop3-limit');
    await drop.poll();
    const subjects = ['one', 'two', 'three'];
    await drop.deliver(...subjects);
    const { sink, kept } = keepingSink();
    expect(await drop.poll({ sink, limit: 2 })).toMatchObject({ found: 2, more: true });
    expect(await drop.poll({ sink, limit: 2 })).toMatchObject({ found: 1, more: false });
    expect(kept.map((message) => /Subject: (\w+)/.exec(message.raw)?.[1])).toEqual(subjects);
  });

  it('deletes each message once the sink has it, and the next looks stay quiet', async () => {
    const drop = await maildropUnderTest('pop3-delete');
    await drop.deliver('kept in the maildrop');
    await drop.poll();
    const [older] = await drop.uidls();
    await drop.deliver('one', 'two');
    const { sink, kept } = keepingSink();
    expect(await drop.poll({ sink, deleteAfterReceive: true })).toEqual({ cursor: { recent: [older] }, found: 2, more: false });
    expect(await drop.uidls()).toEqual([older]);
    expect(await drop.poll({ sink, deleteAfterReceive: true })).toMatchObject({ found: 0 });

    await drop.deliver('three');
    expect(await drop.poll({ sink, deleteAfterReceive: true })).toMatchObject({ found: 1 });
    expect(kept.map((message) => /Subject: (\w+)/.exec(message.raw)?.[1])).toEqual(['one', 'two', 'three']);
    expect(await drop.uidls()).toEqual([older]);
  });

  it('deletes nothing unless asked, and nothing when the look fails', async () => {
    const drop = await maildropUnderTest('pop3-keep');
    await drop.poll();
    await drop.deliver('one', 'two');
    const listed = await drop.uidls();
    expect(await drop.poll({ sink: keepingSink().sink })).toMatchObject({ found: 2 });
    expect(await drop.uidls()).toEqual(listed);

    const again = await maildropUnderTest('pop3-fail');
    await again.poll();
    await again.deliver('one', 'two');
    const before = await again.uidls();
    const failure = new Error('blob storage is down');
    let calls = 0;
    const failing: MessageSink = async (message) => {
      if (++calls === 2) throw failure;
      await message.raw();
    };
    // The first message was deleted in the session, but the session never reached QUIT.
    await expect(again.poll({ sink: failing, deleteAfterReceive: true })).rejects.toBe(failure);
    expect(await again.uidls()).toEqual(before);
  });

  it('when the messages the cursor remembers are gone, offers every message (the sink drops those it has)', async () => {
    const drop = await maildropUnderTest('pop3-gone');
    await drop.poll();
    await drop.deliver('one', 'two');
    const { sink, kept } = keepingSink();
    await drop.poll({ sink });
    // Another client empties the INBOX, then a message arrives.
    await withImap(drop.user, drop.accessToken, async (client) => {
      const lock = await client.getMailboxLock('INBOX');
      try {
        await client.messageDelete('1:*');
      } finally {
        lock.release();
      }
    });
    await drop.deliver('three');
    expect(await drop.poll({ sink })).toMatchObject({ found: 1 });
    expect(kept.map((message) => /Subject: (\w+)/.exec(message.raw)?.[1])).toEqual(['one', 'two', 'three']);
  });

  it('authentication: a refused token, never in the error', async () => {
    const user = mailbox('pop3-refused');
    const accessToken = await minter.delegated(user, { issuedAt: Math.floor(Date.now() / 1000) - 7200, lifetimeSeconds: 3600 });
    const error = (await receiver()
      .poll({ target: { mailbox: user, accessToken }, limit: 10, deleteAfterReceive: false, sink: () => Promise.resolve() })
      .catch((thrown: unknown) => thrown)) as ReceiveAttemptError;
    expect(error).toBeInstanceOf(ReceiveAttemptError);
    expect(error.failure).toMatchObject({ transport: 'pop3', kind: 'authentication', code: 'AUTH' });
    for (const text of [error.message, JSON.stringify(error.failure)]) expect(text).not.toContain(accessToken);
  });
});

describe('POP3 receiver: the commands a look sends', () => {
  const USER = 'support@contoso.com';
  const TOKEN = 'eyJ0eXAiOiJKV1QifQ.eyJzY3AiOiJQT1AuQWNjZXNzQXNVc2VyLkFsbCJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
  const XOAUTH2 = Buffer.from(`user=${USER}\x01auth=Bearer ${TOKEN}\x01\x01`).toString('base64');
  // A maildrop of three messages, as the scripted server answers for it.
  const MAILDROP: Record<string, string[]> = {
    STAT: ['+OK 3 30'],
    'UIDL 3': ['+OK 3 c'],
    UIDL: ['+OK', '1 a', '2 b', '3 c', '.'],
    LIST: ['+OK', '1 10', '2 10', '3 10', '.'],
    'RETR 3': ['+OK', 'Subject: c', '', 'c', '.'],
    'DELE 3': ['+OK'],
    QUIT: ['+OK'],
  };
  let directory: string;
  let ca: string;
  let received: string[] = [];
  const scripted = createServer({}, (socket: TLSSocket) => {
    socket.setEncoding('latin1');
    socket.write('+OK ready\r\n');
    let buffer = '';
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        received.push(line === XOAUTH2 ? '<XOAUTH2>' : line);
        const reply = line === 'AUTH XOAUTH2' ? ['+ '] : line === XOAUTH2 ? ['+OK'] : (MAILDROP[line] ?? ['-ERR unexpected']);
        socket.write(reply.map((text) => `${text}\r\n`).join(''));
        if (line === 'QUIT') socket.end();
      }
    });
  });

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'pop3-receiver-'));
    const localCa = await openLocalCa(join(directory, 'ca'));
    const issued = await localCa.issueServerCertificate(['localhost', '127.0.0.1']);
    ca = localCa.certPem;
    scripted.setSecureContext({ cert: issued.certPem, key: issued.keyPem });
    scripted.listen(0, '127.0.0.1');
    await once(scripted, 'listening');
  });

  afterAll(async () => {
    scripted.close();
    await rm(directory, { recursive: true, force: true });
  });

  async function look(cursor: Pop3Cursor, options: { deleteAfterReceive?: boolean } = {}): Promise<Pop3PollResult> {
    received = [];
    const address = scripted.address();
    if (!address || typeof address !== 'object') throw new Error('no port');
    const { sink } = keepingSink();
    return pop3Receiver({ host: '127.0.0.1', port: address.port, tls: { ca }, timeoutMs: TIMEOUT_MS }).poll({
      target: { mailbox: USER, accessToken: TOKEN },
      cursor,
      limit: 10,
      deleteAfterReceive: options.deleteAfterReceive ?? false,
      sink,
    });
  }

  it("an idle maildrop: STAT and the newest message's UIDL, nothing else", async () => {
    expect(await look({ recent: ['a', 'b', 'c'] })).toEqual({ cursor: { recent: ['a', 'b', 'c'] }, found: 0, more: false });
    expect(received).toEqual(['AUTH XOAUTH2', '<XOAUTH2>', 'STAT', 'UIDL 3', 'QUIT']);
  });

  it('news: the whole listing, the sizes, the new message, and DELE only when asked', async () => {
    expect(await look({ recent: ['a', 'b'] })).toEqual({ cursor: { recent: ['a', 'b', 'c'] }, found: 1, more: false });
    expect(received).toEqual(['AUTH XOAUTH2', '<XOAUTH2>', 'STAT', 'UIDL 3', 'UIDL', 'LIST', 'RETR 3', 'QUIT']);
    expect(await look({ recent: ['a', 'b'] }, { deleteAfterReceive: true })).toEqual({ cursor: { recent: ['a', 'b'] }, found: 1, more: false });
    expect(received).toEqual(['AUTH XOAUTH2', '<XOAUTH2>', 'STAT', 'UIDL 3', 'UIDL', 'LIST', 'RETR 3', 'DELE 3', 'QUIT']);
  });
});
