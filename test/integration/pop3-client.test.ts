import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/free-port.js';
import { openLocalCa } from '../../local/tls/local-ca.js';
import { Pop3Client, Pop3Error } from '../../src/mail/pop3-client.js';

/**
 * The POP3 client against a scripted server over TLS, for what the real Dovecot of
 * mail-server.test.ts and mail-probes.test.ts never does: dot-stuffing, 8-bit octets, replies
 * split anywhere, refusals, silence and hang-ups.
 */

const USER = 'support@contoso.com';
const TOKEN = 'eyJ0eXAiOiJKV1QifQ.eyJzY3AiOiJQT1AuQWNjZXNzQXNVc2VyLkFsbCJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
const XOAUTH2 = Buffer.from(`user=${USER}\x01auth=Bearer ${TOKEN}\x01\x01`).toString('base64');

/** What the scripted server does with one command line: its reply (lines, CRLF added), or a function of the socket. */
type Script = (command: string) => string[] | ((socket: TLSSocket) => void);

let directory: string;
let ca: string;
let tls: { cert: string; key: string };
let received: string[];
let script: Script;
let greeting: string;
const sockets = new Set<TLSSocket>();

const server = createServer({}, (socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => undefined);
  socket.setEncoding('latin1');
  socket.write(`${greeting}\r\n`);
  let buffer = '';
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      received.push(line);
      const reply = script(line);
      if (typeof reply === 'function') reply(socket);
      else socket.write(reply.map((text) => `${text}\r\n`).join(''), 'latin1');
    }
  });
});
let port: number;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'pop3-client-'));
  const localCa = await openLocalCa(join(directory, 'ca'));
  const issued = await localCa.issueServerCertificate(['localhost', '127.0.0.1']);
  ca = localCa.certPem;
  tls = { cert: issued.certPem, key: issued.keyPem };
  server.setSecureContext(tls);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no port');
  port = address.port;
});

afterEach(() => {
  for (const socket of sockets) socket.destroy();
});

afterAll(async () => {
  server.close();
  await rm(directory, { recursive: true, force: true });
});

function start(scripted: Script, options: { greeting?: string; timeoutMs?: number } = {}): Promise<Pop3Client> {
  received = [];
  script = scripted;
  greeting = options.greeting ?? '+OK POP3 server ready';
  return Pop3Client.connect({ host: '127.0.0.1', port, tls: { ca }, ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }) });
}

/** Exchange's way: "AUTH XOAUTH2", a bare "+", the response on its own line. */
function exchangeAuth(accept: (response: string) => string[] | ((socket: TLSSocket) => void)): Script {
  return (command) => {
    if (command === 'AUTH XOAUTH2') return ['+ '];
    if (command === XOAUTH2) return accept(command);
    return ['-ERR unexpected'];
  };
}

describe('Pop3Client', () => {
  it('logs in with XOAUTH2 the way Exchange takes it, then STAT, UIDL, RETR and QUIT', async () => {
    // 8-bit octets, a line that starts with "." and one that is only ".": all must come back as sent.
    const message = Buffer.concat([
      Buffer.from('Subject: dots\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n.leading dot\r\n.\r\n..two\r\n', 'latin1'),
      Buffer.from([0xe9, 0xff, 0x80, 0x0d, 0x0a]),
      Buffer.from('end\r\n'),
    ]);
    const stuffed = message
      .toString('latin1')
      .split('\r\n')
      .slice(0, -1)
      .map((line) => (line.startsWith('.') ? `.${line}` : line));
    const client = await start((command) => {
      if (command === 'AUTH XOAUTH2') return ['+ '];
      if (command === XOAUTH2) return ['+OK User successfully authenticated.'];
      if (command === 'STAT') return ['+OK 2 320'];
      if (command === 'UIDL') return ['+OK', '1 AAMkAGI2TG93AAA=', '2 AAMkAGI2TG94AAA=', '.'];
      if (command === 'RETR 2') {
        // The reply in pieces that split lines and even the CRLF.
        const whole = Buffer.from(['+OK 97 octets', ...stuffed, '.', ''].join('\r\n'), 'latin1');
        return (socket) => {
          for (let at = 0; at < whole.length; at += 7) socket.write(whole.subarray(at, at + 7));
        };
      }
      if (command === 'QUIT') return ['+OK Microsoft Exchange Server POP3 server signing off.'];
      return ['-ERR unexpected'];
    });
    try {
      await client.authenticateXoauth2(USER, TOKEN);
      expect(await client.stat()).toEqual({ count: 2, size: 320 });
      expect(await client.uidl()).toEqual([
        { message: 1, uid: 'AAMkAGI2TG93AAA=' },
        { message: 2, uid: 'AAMkAGI2TG94AAA=' },
      ]);
      expect((await client.retr(2)).equals(message)).toBe(true);
      await client.quit();
    } finally {
      client.close();
    }
    expect(received).toEqual(['AUTH XOAUTH2', XOAUTH2, 'STAT', 'UIDL', 'RETR 2', 'QUIT']);
    expect(Buffer.from(XOAUTH2, 'base64').toString()).toBe(`user=${USER}\x01auth=Bearer ${TOKEN}\x01\x01`);
  });

  it("one message's UIDL, the sizes, and DELE", async () => {
    const client = await start((command) => {
      if (command === 'UIDL 2') return ['+OK 2 AAMkAGI2TG94AAA='];
      if (command === 'UIDL 9') return ['-ERR There is no message 9.'];
      if (command === 'LIST') return ['+OK 2 messages (320 octets)', '1 120', '2 200 extra words a server may add', '.'];
      if (command === 'DELE 1') return ['+OK Deleted.'];
      return ['-ERR unexpected'];
    });
    try {
      expect(await client.uidl(2)).toEqual({ message: 2, uid: 'AAMkAGI2TG94AAA=' });
      await expect(client.uidl(9)).rejects.toMatchObject({ code: 'POP3_ERR', command: 'UIDL 9', serverText: '-ERR There is no message 9.' });
      expect(await client.list()).toEqual([
        { message: 1, size: 120 },
        { message: 2, size: 200 },
      ]);
      await client.dele(1);
      await expect(client.dele(0)).rejects.toThrow(RangeError);
    } finally {
      client.close();
    }
    expect(received).toEqual(['UIDL 2', 'UIDL 9', 'LIST', 'DELE 1']);
  });

  it('an empty message and an empty maildrop', async () => {
    const client = await start((command) => (command === 'UIDL' ? ['+OK', '.'] : ['+OK 0 octets', '.']));
    try {
      expect(await client.uidl()).toEqual([]);
      expect((await client.retr(1)).length).toBe(0);
    } finally {
      client.close();
    }
  });

  it('answers the challenge of a refused token and reports the final -ERR, never the token', async () => {
    const client = await start((command) => {
      if (command === 'AUTH XOAUTH2') return ['+ '];
      if (command === XOAUTH2) return [`+ ${Buffer.from('{"status":"401","schemes":"bearer","scope":"mail"}').toString('base64')}`];
      if (command === '') return ['-ERR [AUTH] Authentication failed.'];
      return ['-ERR unexpected'];
    });
    try {
      const error = await client.authenticateXoauth2(USER, TOKEN).catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(Pop3Error);
      expect(error).toMatchObject({
        code: 'POP3_ERR',
        command: 'AUTH XOAUTH2',
        authenticationFailed: true,
        serverText: '-ERR [AUTH] Authentication failed.',
        message: 'The POP3 server answered AUTH XOAUTH2 with: -ERR [AUTH] Authentication failed.',
      });
      expect(received).toEqual(['AUTH XOAUTH2', XOAUTH2, '']);
    } finally {
      client.close();
    }
  });

  it('takes the token and the XOAUTH2 string out of a reply that echoes them', async () => {
    // A JWT and the XOAUTH2 string have shapes the redactor knows; a token of another shape goes by its value.
    const OPAQUE = 'EwBwA8l6BAAUO9chh8cJscQLmU-opaque';
    for (const [token, echoed] of [[TOKEN, TOKEN], [TOKEN, XOAUTH2], [OPAQUE, OPAQUE]] as const) {
      const response = Buffer.from(`user=${USER}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
      const client = await start((command) => {
        if (command === 'AUTH XOAUTH2') return ['+ '];
        if (command === response) return [`-ERR refused ${echoed}`];
        return ['-ERR unexpected'];
      });
      try {
        const error = (await client.authenticateXoauth2(USER, token).catch((thrown: unknown) => thrown)) as Pop3Error;
        expect(error.authenticationFailed).toBe(true);
        for (const text of [error.message, error.serverText ?? '', JSON.stringify(error)]) {
          expect(text).not.toContain(token);
          expect(text).not.toContain(response);
          expect(text).toContain('[REDACTED]');
        }
      } finally {
        client.close();
      }
    }
  });

  it('a server without XOAUTH2 is a refusal, not a failed login', async () => {
    const client = await start(() => ['-ERR Unrecognized authentication type']);
    try {
      await expect(client.authenticateXoauth2(USER, TOKEN)).rejects.toMatchObject({
        code: 'POP3_ERR',
        authenticationFailed: false,
        serverText: '-ERR Unrecognized authentication type',
      });
      // The token never went out.
      expect(received).toEqual(['AUTH XOAUTH2']);
    } finally {
      client.close();
    }
  });

  it("carries the server's -ERR, and goes on working after it", async () => {
    const client = await start((command) => (command === 'RETR 9' ? ['-ERR There is no message 9.'] : ['+OK 1 10']));
    try {
      await expect(client.retr(9)).rejects.toMatchObject({ code: 'POP3_ERR', command: 'RETR 9', serverText: '-ERR There is no message 9.' });
      expect(await client.stat()).toEqual({ count: 1, size: 10 });
    } finally {
      client.close();
    }
  });

  it('a greeting that is not +OK', async () => {
    await expect(start(() => [], { greeting: '-ERR [SYS/TEMP] Server Unavailable. 21' })).rejects.toMatchObject({
      code: 'POP3_ERR',
      command: 'greeting',
      serverText: '-ERR [SYS/TEMP] Server Unavailable. 21',
    });
  });

  it('malformed replies', async () => {
    const client = await start((command) => {
      if (command === 'STAT') return ['+OK lots'];
      if (command === 'UIDL 1') return ['+OK'];
      return ['+OK', 'not a uid line', '.'];
    });
    try {
      await expect(client.stat()).rejects.toMatchObject({ code: 'POP3_PROTOCOL', command: 'STAT' });
      await expect(client.uidl()).rejects.toMatchObject({ code: 'POP3_PROTOCOL', command: 'UIDL' });
      await expect(client.uidl(1)).rejects.toMatchObject({ code: 'POP3_PROTOCOL', command: 'UIDL 1' });
      await expect(client.list()).rejects.toMatchObject({ code: 'POP3_PROTOCOL', command: 'LIST' });
    } finally {
      client.close();
    }
  });

  it('times out a silent server, but not the time between commands', async () => {
    const client = await start((command) => (command === 'STAT' ? ['+OK 0 0'] : () => undefined), { timeoutMs: 200 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await client.stat()).toEqual({ count: 0, size: 0 });
      const started = Date.now();
      await expect(client.uidl()).rejects.toMatchObject({ code: 'ETIMEDOUT', command: 'UIDL' });
      expect(Date.now() - started).toBeLessThan(2000);
      // The connection is gone; later commands say why at once.
      await expect(client.stat()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      client.close();
    }
  });

  it('a server that hangs up mid-reply', async () => {
    const client = await start(() => (socket) => {
      socket.end('+OK 120 octets\r\nSubject: cut\r\n');
    });
    try {
      await expect(client.retr(1)).rejects.toMatchObject({ code: 'ECONNRESET', command: 'RETR 1' });
    } finally {
      client.close();
    }
  });

  it("network and TLS errors come as Node raised them", async () => {
    await expect(Pop3Client.connect({ host: '127.0.0.1', port: await freePort() })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    received = [];
    greeting = '+OK';
    await expect(Pop3Client.connect({ host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it('one command at a time, values that cannot be framed, message numbers', async () => {
    const client = await start(exchangeAuth(() => ['+OK']));
    try {
      const first = client.stat();
      await expect(client.stat()).rejects.toThrow(/one command at a time/);
      client.close();
      await expect(first).rejects.toMatchObject({ code: 'ECONNRESET', command: 'STAT' });
      await expect(client.authenticateXoauth2('a@b.c\x01auth=Bearer x', TOKEN)).rejects.toThrow(TypeError);
      await expect(client.authenticateXoauth2(USER, `${TOKEN}\r\nDELE 1`)).rejects.toThrow('The access token contains control characters.');
      await expect(client.retr(0)).rejects.toThrow(RangeError);
    } finally {
      client.close();
    }
  });
});
