import { describe, expect, it } from 'vitest';
import { imapFailure, imapFingerprint } from '../../src/mail/imap-receiver.js';
import { ReceiveAttemptError } from '../../src/mail/mail-receiver.js';
import { Pop3Error } from '../../src/mail/pop3-client.js';
import { newPop3Messages, pop3CursorAfter, pop3Failure, pop3Fingerprint } from '../../src/mail/pop3-receiver.js';
import { SinkFailed, handOver } from '../../src/mail/receive-session.js';

/** The pure parts of the IMAP and POP3 receivers: fingerprints, what is new to a POP3 cursor, and what a failure is. */

const target = { mailbox: 'support@contoso.com', accessToken: 'eyJ0eXAiOiJKV1QifQ.eyJzY3AiOiJJTUFQIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg' };
const xoauth2 = Buffer.from(`user=${target.mailbox}\x01auth=Bearer ${target.accessToken}\x01\x01`).toString('base64');

function listing(...uids: string[]) {
  return uids.map((uid, index) => ({ message: index + 1, uid }));
}

/** An error shaped like the ones imapflow rejects with. */
function imapError(fields: Record<string, unknown>): Error {
  return Object.assign(new Error(typeof fields.message === 'string' ? fields.message : 'Command failed'), fields);
}

describe('imapFingerprint', () => {
  it('Message-ID, RFC822.SIZE and the Date header in ISO form', () => {
    expect(imapFingerprint({ messageId: '<a1@contoso.com>', size: 4711, date: new Date('Mon, 1 Jan 2024 10:00:00 +0200') })).toBe(
      'imap:<a1@contoso.com>|4711|2024-01-01T08:00:00.000Z',
    );
  });

  it('empty parts for what a message lacks, a Date that does not parse as written', () => {
    expect(imapFingerprint({ size: 12 })).toBe('imap:|12|');
    expect(imapFingerprint({ messageId: ' <b@x> ', date: 'the day after tomorrow ' })).toBe('imap:<b@x>||the day after tomorrow');
    expect(imapFingerprint({ messageId: '<c@x>', size: 1, date: new Date(Number.NaN) })).toBe('imap:<c@x>|1|');
  });
});

describe('newPop3Messages', () => {
  it('what comes after the newest remembered message', () => {
    expect(newPop3Messages(listing('a', 'b', 'c', 'd'), ['a', 'b'])).toEqual([
      { message: 3, uid: 'c' },
      { message: 4, uid: 'd' },
    ]);
    expect(newPop3Messages(listing('a', 'b'), ['a', 'b'])).toEqual([]);
  });

  it('when the newest remembered ones were deleted, after the newest one still there', () => {
    expect(newPop3Messages(listing('a', 'c', 'e', 'f'), ['a', 'b', 'c', 'd'])).toEqual([
      { message: 3, uid: 'e' },
      { message: 4, uid: 'f' },
    ]);
  });

  it('when none of them is left (or the maildrop was empty), every message', () => {
    expect(newPop3Messages(listing('x', 'y'), ['a', 'b'])).toEqual(listing('x', 'y'));
    expect(newPop3Messages(listing('x', 'y'), [])).toEqual(listing('x', 'y'));
    expect(newPop3Messages([], ['a'])).toEqual([]);
  });
});

describe('pop3CursorAfter', () => {
  it('remembers the newest ten messages up to the last one handed over', () => {
    const uids = Array.from({ length: 14 }, (_, index) => `m${index + 1}`);
    expect(pop3CursorAfter(listing(...uids), 2, new Set())).toEqual({ recent: uids.slice(2, 12) });
    expect(pop3CursorAfter(listing('a', 'b'), 0, new Set())).toEqual({ recent: ['a', 'b'] });
  });

  it('leaves deleted messages out, so the newest message left in the maildrop comes last', () => {
    expect(pop3CursorAfter(listing('old', 'n1', 'n2', 'n3'), 1, new Set(['n1', 'n2']))).toEqual({ recent: ['old'] });
    expect(pop3CursorAfter(listing('n1'), 0, new Set(['n1']))).toEqual({ recent: [] });
  });
});

describe('pop3Fingerprint', () => {
  it('is the UIDL', () => {
    expect(pop3Fingerprint('AAMkAGI2TG93AAA=')).toBe('pop3:AAMkAGI2TG93AAA=');
  });
});

describe('imapFailure', () => {
  it.each([
    [
      'a refused token (Dovecot)',
      { response: '2 NO [AUTHENTICATIONFAILED] Authentication failed.', responseStatus: 'NO', serverResponseCode: 'AUTHENTICATIONFAILED', authenticationFailed: true },
      { kind: 'authentication', code: 'AUTHENTICATIONFAILED', detail: 'NO [AUTHENTICATIONFAILED] Authentication failed.' },
    ],
    ['a refused token (Exchange)', { response: '2 NO AUTHENTICATE failed.', responseStatus: 'NO', authenticationFailed: true }, { kind: 'authentication', detail: 'NO AUTHENTICATE failed.' }],
    [
      "Exchange's mailbox it will not open",
      { response: 'User is authenticated but not connected.', authenticationFailed: true },
      { kind: 'not_connected', detail: 'User is authenticated but not connected.' },
    ],
    [
      'a temporary refusal of the login',
      { response: '2 NO [UNAVAILABLE] Temporary authentication failure.', serverResponseCode: 'UNAVAILABLE', authenticationFailed: true },
      { kind: 'server', code: 'UNAVAILABLE' },
    ],
    [
      'a throttled command',
      { responseStatus: 'BAD', responseText: 'Request is throttled. Suggested Backoff Time: 92415 milliseconds', code: 'ETHROTTLE', throttleReset: 92415 },
      { kind: 'throttled', code: 'ETHROTTLE', retryAfterSeconds: 93 },
    ],
    ['a STATUS of a missing folder', { message: "Mailbox doesn't exist: Receipts", code: 'NotFound' }, { kind: 'not_found', detail: "Receipts: Mailbox doesn't exist: Receipts" }],
    [
      'an EXAMINE of a missing folder',
      { response: "3 NO [NONEXISTENT] Mailbox doesn't exist: Receipts", serverResponseCode: 'NONEXISTENT', mailboxMissing: true },
      { kind: 'not_found', code: 'NONEXISTENT' },
    ],
    ['a refused connection', { message: 'connect ECONNREFUSED 127.0.0.1:993', code: 'ECONNREFUSED' }, { kind: 'network', code: 'ECONNREFUSED' }],
    ['a certificate nobody vouches for', { message: 'self-signed certificate', code: 'SELF_SIGNED_CERT_IN_CHAIN' }, { kind: 'network' }],
    ['a session the server ended', { message: 'Connection not available', code: 'NoConnection', reason: 'Connection closed.' }, { kind: 'network', detail: 'Connection not available / BYE Connection closed.' }],
    ['anything else', { responseStatus: 'BAD', responseText: 'Error in IMAP command: Unknown command.' }, { kind: 'server', detail: 'BAD Error in IMAP command: Unknown command.' }],
  ] as [string, Record<string, unknown>, Record<string, unknown>][])('%s', (_name, fields, failure) => {
    const error = imapFailure(imapError(fields), target, fields.code === 'NotFound' ? 'Receipts' : undefined);
    expect(error).toBeInstanceOf(ReceiveAttemptError);
    expect(error.failure).toMatchObject({ transport: 'imap', ...failure });
  });

  it('never carries the token or the XOAUTH2 string, whatever the server echoed', () => {
    const error = imapFailure(imapError({ response: `2 NO refused ${xoauth2} for ${target.accessToken}`, authenticationFailed: true }), target);
    expect(error.failure.kind).toBe('authentication');
    for (const text of [error.message, JSON.stringify(error.failure)]) {
      expect(text).not.toContain(target.accessToken);
      expect(text).not.toContain(xoauth2);
    }
  });

  it('leaves a receiver failure as it is', () => {
    const failure = new ReceiveAttemptError({ transport: 'imap', kind: 'not_found', detail: 'gone' });
    expect(imapFailure(failure, target)).toBe(failure);
  });
});

describe('pop3Failure', () => {
  it.each([
    [
      'a refused token',
      new Pop3Error('POP3_ERR', 'AUTH XOAUTH2', 'The POP3 server answered AUTH XOAUTH2 with: -ERR [AUTH] Authentication failed.', '-ERR [AUTH] Authentication failed.', {
        authenticationFailed: true,
      }),
      { kind: 'authentication', code: 'AUTH' },
    ],
    [
      "Exchange's mailbox it will not open",
      new Pop3Error('POP3_ERR', 'STAT', 'The POP3 server answered STAT with: -ERR User is authenticated but not connected.', '-ERR User is authenticated but not connected.'),
      { kind: 'not_connected', code: 'POP3_ERR' },
    ],
    ['a login too soon', new Pop3Error('POP3_ERR', 'AUTH XOAUTH2', 'refused', '-ERR [LOGIN-DELAY] Wait a while.', { authenticationFailed: true }), { kind: 'throttled', code: 'LOGIN-DELAY' }],
    ['a maildrop in use', new Pop3Error('POP3_ERR', 'AUTH XOAUTH2', 'refused', '-ERR [IN-USE] Mailbox locked.', { authenticationFailed: true }), { kind: 'server', code: 'IN-USE' }],
    ['a silent server', new Pop3Error('ETIMEDOUT', 'UIDL', 'The POP3 server did not answer UIDL within 10 ms.'), { kind: 'network', code: 'ETIMEDOUT' }],
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:995'), { code: 'ECONNREFUSED' }), { kind: 'network', code: 'ECONNREFUSED' }],
    ['a reply that is not POP3', new Pop3Error('POP3_PROTOCOL', 'STAT', 'malformed', '+OK lots'), { kind: 'server', code: 'POP3_PROTOCOL' }],
  ])('%s', (_name, error, failure) => {
    expect(pop3Failure(error, target).failure).toMatchObject({ transport: 'pop3', ...failure });
  });

  it('never carries the token', () => {
    const error = pop3Failure(new Pop3Error('POP3_ERR', 'RETR 1', `answered with -ERR ${target.accessToken}`, `-ERR ${target.accessToken}`), target);
    expect(JSON.stringify(error.failure)).not.toContain(target.accessToken);
    expect(error.message).not.toContain(target.accessToken);
  });
});

describe('handOver', () => {
  const message = { folder: 'INBOX', fingerprint: 'imap:<a@x>|1|', raw: () => Promise.resolve(Buffer.from('a')) };

  it("marks the sink's failure as the sink's", async () => {
    const failure = new Error('storage is down');
    const thrown = await handOver(() => Promise.reject(failure), message).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(SinkFailed);
    expect((thrown as SinkFailed).error).toBe(failure);
  });

  it('lets raw() download only while the sink has the message', async () => {
    let later: (() => Promise<Buffer>) | undefined;
    await handOver(async (found) => {
      expect((await found.raw()).toString()).toBe('a');
      later = () => found.raw();
    }, message);
    await expect(later?.()).rejects.toThrow(/after the sink had taken the message/);
  });
});
