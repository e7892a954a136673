import { describe, expect, it } from 'vitest';
import { MailboxThrottle } from '../../local/sandbox/graph/mailbox-limits.js';
import { parseAttachment, parseMessage } from '../../local/sandbox/graph/message-input.js';

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
