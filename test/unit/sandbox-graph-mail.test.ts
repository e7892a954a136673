import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MailRelay, type RelayStats } from '../../local/sandbox/graph/mail-relay.js';
import type { StoredMessage } from '../../local/sandbox/graph/mail-store.js';
import { MailboxThrottle } from '../../local/sandbox/graph/mailbox-limits.js';
import { parseAttachment, parseMessage } from '../../local/sandbox/graph/message-input.js';
import { readMimeMessage } from '../../local/sandbox/graph/mime-input.js';

const MINUTE = 60_000;

describe('per-mailbox limits', () => {
  it('gives each app four places per mailbox; a place comes back once, however often it is released', () => {
    const throttle = new MailboxThrottle({}, () => 0);
    const releases = Array.from({ length: 4 }, () => throttle.admit('app-1', 'Megan@contoso.test'));
    expect(() => throttle.admit('app-1', 'megan@CONTOSO.test')).toThrow(expect.objectContaining({ status: 429, code: 'ApplicationThrottled', headers: { 'Retry-After': '1' } }));
    expect(() => throttle.admit('app-2', 'megan@contoso.test')).not.toThrow();
    expect(() => throttle.admit('app-1', 'adele@contoso.test')).not.toThrow();
    releases[0]?.();
    releases[0]?.();
    expect(() => throttle.admit('app-1', 'megan@contoso.test')).not.toThrow();
    expect(() => throttle.admit('app-1', 'megan@contoso.test')).toThrow(expect.objectContaining({ status: 429 }));
    expect(throttle.stats().mailboxes.find((m) => m.address === 'Megan@contoso.test')).toMatchObject({ requests: 8, inFlight: 5, throttled: { concurrency: 2, sendRate: 0 } });
  });

  it('takes sendsPerMinute sends in any minute and says when the next one fits', () => {
    let now = 0;
    const throttle = new MailboxThrottle({ sendsPerMinute: 2 }, () => now);
    throttle.submit('megan@contoso.test');
    now = 45_000;
    throttle.submit('megan@contoso.test');
    const submit = () => {
      throttle.submit('megan@contoso.test');
    };
    expect(submit).toThrow(expect.objectContaining({ status: 429, code: 'ApplicationThrottled', headers: { 'Retry-After': '15' } }));
    now = MINUTE;
    throttle.submit('megan@contoso.test');
    // Lowered below what the window holds: wait until enough of it has left.
    throttle.setLimits({ sendsPerMinute: 1 });
    now = MINUTE + 1_000;
    expect(submit).toThrow(expect.objectContaining({ headers: { 'Retry-After': '59' } }));
    throttle.setLimits({ sendsPerMinute: null });
    throttle.submit('megan@contoso.test');
    expect(throttle.stats()).toMatchObject({ sends: 4, throttled: { sendRate: 2, concurrency: 0, injected: 0 } });
  });
});

describe('reading a message as Graph does', () => {
  it('matches property names in any case, fills what is missing, and keeps OData annotations apart', () => {
    const message = parseMessage({ Subject: 'Hi', BODY: { contentType: 'HTML', content: '<p>x</p>' }, toRecipients: [{ emailAddress: { address: ' a@b.test ' } }], categories: ['ignored'] });
    expect(message).toMatchObject({
      subject: 'Hi',
      body: { contentType: 'html', content: '<p>x</p>' },
      toRecipients: [{ name: '', address: 'a@b.test' }],
      ccRecipients: [],
      from: null,
      internetMessageId: null,
      internetMessageHeaders: [],
      importance: 'normal',
      attachments: [],
    });
    expect(parseAttachment({ '@odata.type': 'microsoft.graph.fileAttachment', name: 'a.txt', contentBytes: 'aGk=' })).toEqual({
      name: 'a.txt',
      contentType: 'application/octet-stream',
      isInline: false,
      contentId: null,
      content: Buffer.from('hi'),
    });
  });

  it('refuses values of the wrong kind with RequestBodyRead', () => {
    expect(() => parseMessage({ toRecipients: 'a@b.test' })).toThrow(expect.objectContaining({ status: 400, code: 'RequestBodyRead' }));
    expect(() => parseMessage({ isReadReceiptRequested: 'yes' })).toThrow(expect.objectContaining({ message: "Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'." }));
    expect(() => parseAttachment({ '@odata.type': '#microsoft.graph.fileAttachment', contentBytes: 'not base64!' })).toThrow(expect.objectContaining({ code: 'RequestBodyRead' }));
    expect(() => parseAttachment({ '@odata.type': '#microsoft.graph.itemAttachment' })).toThrow(expect.objectContaining({ status: 501 }));
    expect(() => parseMessage({ internetMessageHeaders: [] })).toThrow(expect.objectContaining({ code: 'InvalidInternetMessageHeaderCollection' }));
  });
});

const base64 = (mime: string) => Buffer.from(mime.replace(/\n/g, '\r\n')).toString('base64');

describe('reading a MIME message as Graph does', () => {
  it('keeps the addresses, one body, the attachments, the Message-ID and the threading and X- headers as written', async () => {
    const mime = [
      'From: "Megan Bowen" <megan@contoso.test>',
      'To: adele@contoso.test, Team: a@contoso.test, b@contoso.test;',
      'Bcc: hidden@contoso.test',
      'Reply-To: replies@contoso.test',
      'Subject: =?utf-8?q?Caf=C3=A9?=',
      'Message-ID: <m-1@client.example>',
      'In-Reply-To: <m-0@customer.example>',
      'References: <m-00@customer.example>',
      ' <m-0@customer.example>',
      'Received: from somewhere',
      'X-Connector-Message: one',
      'x-connector-message: two',
      'MIME-Version: 1.0',
      'Content-Type: multipart/related; boundary="b"',
      '',
      '--b',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p><img src="cid:logo@client"></p>',
      '--b',
      'Content-Type: image/png',
      'Content-ID: <logo@client>',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('png').toString('base64'),
      '--b--',
      '',
    ].join('\n');
    // Wrapped at 76 characters, as MIME tools write base64.
    const wrapped = base64(mime).replace(/.{76}/g, '$&\r\n');
    expect(await readMimeMessage(wrapped)).toEqual({
      subject: 'Café',
      body: { contentType: 'html', content: '<p><img src="cid:logo@client"></p>' },
      toRecipients: [
        { name: '', address: 'adele@contoso.test' },
        { name: '', address: 'a@contoso.test' },
        { name: '', address: 'b@contoso.test' },
      ],
      ccRecipients: [],
      bccRecipients: [{ name: '', address: 'hidden@contoso.test' }],
      replyTo: [{ name: '', address: 'replies@contoso.test' }],
      from: { name: 'Megan Bowen', address: 'megan@contoso.test' },
      internetMessageId: '<m-1@client.example>',
      internetMessageHeaders: [
        { name: 'In-Reply-To', value: '<m-0@customer.example>' },
        { name: 'References', value: '<m-00@customer.example> <m-0@customer.example>' },
        { name: 'X-Connector-Message', value: 'one' },
        { name: 'x-connector-message', value: 'two' },
      ],
      importance: 'normal',
      isReadReceiptRequested: false,
      isDeliveryReceiptRequested: false,
      attachments: [{ name: '', contentType: 'image/png', isInline: true, contentId: 'logo@client', content: Buffer.from('png') }],
    });
  });

  it('takes the text body when there is no HTML; a message without From or Message-ID leaves them to the sender', async () => {
    expect(await readMimeMessage(base64('To: a@b.test\nSubject: hi\n\nplain\n'))).toMatchObject({ body: { contentType: 'text', content: 'plain\n' }, from: null, internetMessageId: null, internetMessageHeaders: [] });
  });

  it('refuses what is not base64, and base64 of what is not a message with headers', async () => {
    const notBase64 = { status: 400, code: 'ErrorMimeContentInvalidBase64String', message: 'Invalid base64 string for MIME content.' };
    await expect(readMimeMessage('From: a@b.test')).rejects.toThrow(expect.objectContaining(notBase64));
    await expect(readMimeMessage('abc')).rejects.toThrow(expect.objectContaining(notBase64));
    for (const content of ['', 'hello world', '\nbody without headers', 'not a header\nSubject: x\n\n']) {
      await expect(readMimeMessage(base64(content))).rejects.toThrow(expect.objectContaining({ status: 400, code: 'ErrorMimeContentInvalid' }));
    }
  });
});

interface LmtpDelivery {
  from: string;
  to: string[];
  data: string;
}

/** An LMTP server on the loopback that takes every recipient but those `refuse` names, and keeps what it was given. */
async function fakeLmtp(refuse: (recipient: string) => boolean): Promise<{ port: number; delivered: LmtpDelivery[]; close(): Promise<void> }> {
  const delivered: LmtpDelivery[] = [];
  const server = createServer((socket) => {
    let current: LmtpDelivery = { from: '', to: [], data: '' };
    let inData = false;
    let buffer = '';
    const reply = (...lines: string[]) => socket.write(lines.map((l) => `${l}\r\n`).join(''));
    const command = (line: string) => {
      const address = /<(.*)>/.exec(line)?.[1] ?? '';
      if (/^LHLO /i.test(line)) return reply('250 fake');
      if (/^MAIL FROM:/i.test(line)) {
        current = { from: address, to: [], data: '' };
        return reply('250 2.1.0 OK');
      }
      if (/^RCPT TO:/i.test(line)) {
        if (refuse(address)) return reply('550 5.1.1 User does not exist');
        current.to.push(address);
        return reply('250 2.1.5 OK');
      }
      if (/^DATA$/i.test(line)) {
        inData = true;
        return reply('354 OK');
      }
      if (/^QUIT$/i.test(line)) return socket.end('221 2.0.0 Bye\r\n');
      return reply('500 5.5.1 Unknown command');
    };
    socket.write('220 fake LMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!inData) {
          command(line);
        } else if (line !== '.') {
          current.data += `${line}\r\n`;
        } else {
          inData = false;
          delivered.push(current);
          // LMTP answers the data once for every recipient it accepted.
          reply(...current.to.map(() => '250 2.0.0 Saved'));
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no port');
  return {
    port: address.port,
    delivered,
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}

function sentMessage(): StoredMessage {
  return {
    id: 'AAMk1',
    folder: 'sentitems',
    internetMessageId: '<relay-1@sandbox.test>',
    subject: 'Relayed',
    body: { contentType: 'text', content: 'Hello' },
    from: { name: 'Megan', address: 'megan@fabrikam.test' },
    sender: { name: 'Megan', address: 'megan@fabrikam.test' },
    toRecipients: [{ name: 'A', address: 'a@contoso.test' }],
    ccRecipients: [],
    bccRecipients: [{ name: 'Hidden', address: 'hidden@contoso.test' }],
    replyTo: [],
    internetMessageHeaders: [{ name: 'In-Reply-To', value: '<before@customer.example>' }],
    importance: 'normal',
    isReadReceiptRequested: false,
    isDeliveryReceiptRequested: false,
    conversationId: 'AAQk1',
    changeKey: 'CQAAAB1',
    isDraft: false,
    isRead: true,
    attachments: [],
    createdDateTime: 0,
    lastModifiedDateTime: 0,
    receivedDateTime: 0,
    sentDateTime: 0,
  };
}

async function settled(relay: MailRelay, handled: number): Promise<RelayStats> {
  for (let i = 0; i < 200; i += 1) {
    const stats = relay.stats();
    if (stats.relayed + stats.relayFailures >= handled) return stats;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the relay never handled ${handled} recipients`);
}

describe('relaying sent mail over LMTP', () => {
  it('hands the message without Bcc to the recipients in its domains, once each; counts and logs those the server refuses', async () => {
    const lmtp = await fakeLmtp((recipient) => recipient.startsWith('unknown'));
    const logged: string[] = [];
    try {
      const relay = new MailRelay({ lmtp: { host: '127.0.0.1', port: lmtp.port }, domains: ['Contoso.TEST'] }, (message) => logged.push(message));
      relay.relay('megan@fabrikam.test', sentMessage(), ['a@contoso.test', 'A@CONTOSO.test', 'partner@example.com', 'hidden@contoso.test', 'unknown@contoso.test']);
      expect(await settled(relay, 3)).toEqual({ relayed: 2, relayFailures: 1 });
      expect(lmtp.delivered).toHaveLength(1);
      const [delivery] = lmtp.delivered;
      expect(delivery).toMatchObject({ from: 'megan@fabrikam.test', to: ['a@contoso.test', 'hidden@contoso.test'] });
      expect(delivery?.data).toMatch(/^Message-ID: <relay-1@sandbox\.test>\r$/m);
      expect(delivery?.data).toMatch(/^In-Reply-To: <before@customer\.example>\r$/m);
      expect(delivery?.data).not.toMatch(/^Bcc:/im);
      expect(logged).toEqual(['LMTP refused <relay-1@sandbox.test> for unknown@contoso.test']);

      // Switched off, or no recipient in its domains: nothing is handed over.
      relay.relay('megan@fabrikam.test', sentMessage(), ['partner@example.com']);
      relay.configure(null);
      relay.relay('megan@fabrikam.test', sentMessage(), ['a@contoso.test']);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(lmtp.delivered).toHaveLength(1);
    } finally {
      await lmtp.close();
    }
  });

  it('counts every recipient as failed, and logs, when the server cannot be reached', async () => {
    const closed = await fakeLmtp(() => false);
    await closed.close();
    const logged: string[] = [];
    const relay = new MailRelay({ lmtp: { host: '127.0.0.1', port: closed.port }, domains: ['contoso.test'] }, (message) => logged.push(message));
    relay.relay('megan@fabrikam.test', sentMessage(), ['a@contoso.test', 'b@contoso.test']);
    expect(await settled(relay, 2)).toEqual({ relayed: 0, relayFailures: 2 });
    expect(logged).toEqual([`could not relay <relay-1@sandbox.test> to a@contoso.test, b@contoso.test over LMTP at 127.0.0.1:${closed.port}`]);
  });
});
