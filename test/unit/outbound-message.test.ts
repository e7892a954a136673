import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_CUSTOM_HEADERS,
  MAX_RECIPIENTS,
  estimatedMimeSize,
  isAllowedHeader,
  messageRequestSchema,
  messageView,
  messageViewSchema,
  outboundMessageSchema,
  type OutboundMessage,
} from '../../src/domain/outbound-message.js';

/** The send request as the API takes it (outbound-message.ts): what it accepts, what it refuses, and that nothing reaches a header with a line break. */

const MB = 1024 * 1024;
const UPLOAD_ID = 'att_01JD5Z3X7K9M2N4P6Q8R0S1T2V';
const minimal = { to: ['ada@contoso.com'], text: 'Hello' };

function parse(input: Record<string, unknown>) {
  return messageRequestSchema.safeParse({ ...minimal, ...input });
}

/** The request's issues as "path: message", or [] when it parsed. */
function issues(input: Record<string, unknown>): string[] {
  const result = parse(input);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

function accepted(input: Record<string, unknown>) {
  const result = parse(input);
  if (!result.success) throw new Error(`expected the request to parse: ${JSON.stringify(result.error.issues)}`);
  return result.data;
}

const recipients = (count: number, domain = 'contoso.com') => Array.from({ length: count }, (_, i) => `user${String(i)}@${domain}`);

describe('a minimal request', () => {
  it('gets the defaults: Sent Items kept, empty lists, empty subject', () => {
    expect(accepted({})).toEqual({
      to: [{ address: 'ada@contoso.com' }],
      cc: [],
      bcc: [],
      replyTo: [],
      subject: '',
      text: 'Hello',
      headers: {},
      references: [],
      attachments: [],
      saveToSentItems: true,
    });
  });

  it('keeps saveToSentItems false when asked', () => {
    expect(accepted({ saveToSentItems: false }).saveToSentItems).toBe(false);
  });

  it('refuses fields it does not know', () => {
    expect(issues({ priority: 'high' })).not.toEqual([]);
    expect(issues({ sender: 'eve@evil.example' })).not.toEqual([]);
  });
});

describe('recipients', () => {
  it('takes strings and { address, name } alike, and gives objects back', () => {
    const message = accepted({
      to: ['ada@contoso.com', { address: 'bob@contoso.com', name: 'Bob Builder' }],
      cc: [{ address: 'carol@contoso.com' }],
      bcc: ['dave@contoso.com'],
      replyTo: [{ address: 'support@contoso.com', name: 'Support' }],
    });
    expect(message.to).toEqual([{ address: 'ada@contoso.com' }, { address: 'bob@contoso.com', name: 'Bob Builder' }]);
    expect(message.cc).toEqual([{ address: 'carol@contoso.com' }]);
    expect(message.bcc).toEqual([{ address: 'dave@contoso.com' }]);
    expect(message.replyTo).toEqual([{ address: 'support@contoso.com', name: 'Support' }]);
  });

  it('takes names with commas, quotes and non-ASCII characters (they are encoded, not split)', () => {
    expect(accepted({ to: [{ address: 'ada@contoso.com', name: 'Lovelace, Ada "The Countess" — Ω' }] }).to[0]?.name).toBe('Lovelace, Ada "The Countess" — Ω');
  });

  it('needs at least one recipient in to, cc or bcc', () => {
    expect(issues({ to: [] })).toEqual(['to: needs at least one recipient in to, cc or bcc']);
    expect(issues({ to: undefined })).toEqual(['to: needs at least one recipient in to, cc or bcc']);
    expect(issues({ to: [], replyTo: ['ada@contoso.com'] })).toEqual(['to: needs at least one recipient in to, cc or bcc']);
    expect(issues({ to: [], cc: ['ada@contoso.com'] })).toEqual([]);
    expect(issues({ to: [], bcc: ['ada@contoso.com'] })).toEqual([]);
  });

  it(`takes ${String(MAX_RECIPIENTS)} recipients in all, not one more`, () => {
    expect(issues({ to: recipients(MAX_RECIPIENTS) })).toEqual([]);
    expect(issues({ to: recipients(200), cc: recipients(200, 'fabrikam.com'), bcc: recipients(100, 'example.org') })).toEqual([]);
    expect(issues({ to: recipients(200), cc: recipients(200, 'fabrikam.com'), bcc: recipients(101, 'example.org') })).toEqual(['to: at most 500 recipients in all']);
    expect(issues({ to: recipients(MAX_RECIPIENTS + 1) })).not.toEqual([]);
  });

  it('takes at most 10 reply-to addresses', () => {
    expect(issues({ replyTo: recipients(10) })).toEqual([]);
    expect(issues({ replyTo: recipients(11) })).not.toEqual([]);
  });

  it.each([
    'Ada <ada@contoso.com>',
    'ada@contoso.com, bob@contoso.com',
    'ada',
    'ada@localhost',
    'ada@contoso.com\r\nBcc: eve@evil.example',
    '',
  ])('refuses the address %j, in every field', (address) => {
    for (const field of ['to', 'cc', 'bcc', 'replyTo']) {
      expect(issues({ [field]: [address] })).not.toEqual([]);
      expect(issues({ [field]: [{ address, name: 'Ada' }] })).not.toEqual([]);
    }
    expect(issues({ from: address })).not.toEqual([]);
  });

  it('refuses a recipient object with fields it does not know, or without an address', () => {
    expect(issues({ to: [{ address: 'ada@contoso.com', type: 'bcc' }] })).not.toEqual([]);
    expect(issues({ to: [{ name: 'Ada' }] })).not.toEqual([]);
  });

  it('takes a name of 256 characters, not 257', () => {
    expect(issues({ to: [{ address: 'ada@contoso.com', name: 'n'.repeat(256) }] })).toEqual([]);
    expect(issues({ to: [{ address: 'ada@contoso.com', name: 'n'.repeat(257) }] })).not.toEqual([]);
  });

  it('takes a from address, and leaves it out when not given', () => {
    expect(accepted({ from: 'sales@contoso.com' }).from).toBe('sales@contoso.com');
    expect(accepted({})).not.toHaveProperty('from');
  });
});

describe('body', () => {
  it('needs text, html or both', () => {
    expect(issues({ text: undefined })).toEqual(['text: needs text, html or both']);
    expect(issues({ text: undefined, html: '<p>Hello</p>' })).toEqual([]);
    expect(issues({ html: '<p>Hello</p>' })).toEqual([]);
  });

  it('takes an empty text body (it is there, just empty)', () => {
    expect(issues({ text: '' })).toEqual([]);
  });

  it('takes line breaks in the body: it is not a header', () => {
    expect(accepted({ text: 'line 1\r\nline 2\n\nBcc: not a header', html: '<p>a</p>\n<p>b</p>' }).text).toBe('line 1\r\nline 2\n\nBcc: not a header');
  });
});

describe('header injection: no value that reaches a header may hold a line break', () => {
  const breaks: [string, string][] = [
    ['CR', '\r'],
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['NUL', '\0'],
    ['U+2028', '\u2028'],
    ['U+2029', '\u2029'],
  ];
  const injected = (char: string) => `Hello${char}Bcc: eve@evil.example`;

  it.each(breaks)('the subject, with %s', (_why, char) => {
    expect(issues({ subject: injected(char) })).toEqual([expect.stringMatching(/^subject: must not contain line breaks/)]);
  });

  it.each(breaks)('a recipient name, in to, cc, bcc and replyTo, with %s', (_why, char) => {
    for (const field of ['to', 'cc', 'bcc', 'replyTo']) {
      expect(issues({ [field]: [{ address: 'ada@contoso.com', name: injected(char) }] })).toEqual([expect.stringMatching(new RegExp(`^${field}\\.0\\.name: must not contain line breaks`))]);
    }
  });

  it.each(breaks)('a header value, with %s', (_why, char) => {
    expect(issues({ headers: { 'X-Campaign': injected(char) } })).toEqual([expect.stringMatching(/^headers\.X-Campaign: must not contain line breaks/)]);
  });

  it.each(breaks)('a header name, with %s', (_why, char) => {
    expect(issues({ headers: { [`X-Campaign${char}Bcc`]: 'eve@evil.example' } })).not.toEqual([]);
  });

  it.each(breaks)('an attachment filename, with %s', (_why, char) => {
    expect(issues({ attachments: [{ filename: `report${char}.pdf`, content: 'AAAA' }] })).toEqual([expect.stringMatching(/^attachments\.0\.filename: must not contain line breaks/)]);
  });

  it.each(breaks)('an attachment contentId, with %s', (_why, char) => {
    expect(issues({ attachments: [{ filename: 'logo.png', content: 'AAAA', inline: true, contentId: `logo${char}x` }] })).not.toEqual([]);
  });

  it.each(breaks)('an attachment content type, with %s', (_why, char) => {
    expect(issues({ attachments: [{ filename: 'logo.png', content: 'AAAA', contentType: `image/png${char}X-Evil: 1` }] })).not.toEqual([]);
  });

  it.each(breaks)('inReplyTo and references, with %s', (_why, char) => {
    expect(issues({ inReplyTo: `<a@b>${char}Bcc: eve@evil.example` })).not.toEqual([]);
    expect(issues({ references: ['<a@b>', `<c@d>${char}Bcc: eve@evil.example`] })).not.toEqual([]);
  });

  it.each(breaks)('a from or recipient address, with %s', (_why, char) => {
    expect(issues({ from: `sales@contoso.com${char}` })).not.toEqual([]);
    expect(issues({ to: [`ada@contoso.com${char}`] })).not.toEqual([]);
  });

  it('takes a tab and non-ASCII text in a subject', () => {
    expect(accepted({ subject: 'Rapport\ttrimestriel — été ✓' }).subject).toBe('Rapport\ttrimestriel — été ✓');
  });

  it('takes a subject of 998 characters, not 999', () => {
    expect(issues({ subject: 's'.repeat(998) })).toEqual([]);
    expect(issues({ subject: 's'.repeat(999) })).not.toEqual([]);
  });
});

describe('custom headers', () => {
  it.each(['X-Campaign', 'x-campaign-id', 'X-Mailer-Ref-2', 'List-Id', 'List-Unsubscribe', 'list-unsubscribe-post', 'Auto-Submitted', 'X-MS-Something', 'X-MSExchange'])(
    '%s may be set',
    (name) => {
      expect(isAllowedHeader(name)).toBe(true);
      expect(accepted({ headers: { [name]: 'value' } }).headers).toEqual({ [name]: 'value' });
    },
  );

  it.each([
    'X-MS-Exchange-Organization-SCL',
    'x-ms-exchange-organization-authas',
    'X-MS-Exchange-Transport-CrossTenantHeadersStamped',
    'Received',
    'From',
    'Sender',
    'To',
    'Cc',
    'Bcc',
    'Reply-To',
    'Subject',
    'Message-ID',
    'In-Reply-To',
    'References',
    'Date',
    'MIME-Version',
    'Content-Type',
    'Content-Transfer-Encoding',
    'Return-Path',
    'DKIM-Signature',
    'Authentication-Results',
    'X-',
    'X_Campaign',
    'X-Campaign:',
    'X-Campaign Id',
    'List-Unsubscribe-Other',
    '',
  ])('%j may not be set', (name) => {
    expect(isAllowedHeader(name)).toBe(false);
    expect(issues({ headers: { [name]: 'value' } })).not.toEqual([]);
  });

  it('refuses one name twice in different case', () => {
    expect(issues({ headers: { 'X-Campaign': 'a', 'x-campaign': 'b' } })).toEqual(['headers: names a header twice (names ignore case)']);
    expect(issues({ headers: { 'List-Unsubscribe': '<mailto:u@contoso.com>', 'LIST-UNSUBSCRIBE': '<https://contoso.com/u>' } })).not.toEqual([]);
  });

  it(`takes ${String(MAX_CUSTOM_HEADERS)} headers, not more`, () => {
    const headers = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`X-Header-${String(i)}`, String(i)]));
    expect(issues({ headers: headers(MAX_CUSTOM_HEADERS) })).toEqual([]);
    expect(issues({ headers: headers(MAX_CUSTOM_HEADERS + 1) })).toEqual([`headers: an object of at most ${String(MAX_CUSTOM_HEADERS)} headers`]);
    // Counted before any header is checked: a hundred thousand of them make one issue, not as many.
    expect(issues({ headers: headers(100_000) })).toHaveLength(1);
  });

  it('takes the List-Unsubscribe pair bulk senders need (RFC 8058)', () => {
    const headers = { 'List-Unsubscribe': '<https://contoso.com/unsubscribe/abc>, <mailto:unsubscribe@contoso.com>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' };
    expect(accepted({ headers }).headers).toEqual(headers);
  });

  it('limits a name to 76 characters and a value to 998', () => {
    expect(issues({ headers: { [`X-${'a'.repeat(74)}`]: 'v' } })).toEqual([]);
    expect(issues({ headers: { [`X-${'a'.repeat(75)}`]: 'v' } })).not.toEqual([]);
    expect(issues({ headers: { 'X-Long': 'v'.repeat(998) } })).toEqual([]);
    expect(issues({ headers: { 'X-Long': 'v'.repeat(999) } })).not.toEqual([]);
  });

  it('refuses a value that is not a string', () => {
    expect(issues({ headers: { 'X-Count': 3 } })).not.toEqual([]);
    expect(issues({ headers: { 'X-List': ['a', 'b'] } })).not.toEqual([]);
  });
});

describe('attachments', () => {
  it('takes base64 content, with the defaults', () => {
    expect(accepted({ attachments: [{ filename: 'report.pdf', content: 'JVBERi0xLjQK' }] }).attachments).toEqual([{ filename: 'report.pdf', content: 'JVBERi0xLjQK', inline: false }]);
  });

  it('takes an upload id instead', () => {
    expect(accepted({ attachments: [{ filename: 'big.zip', uploadId: UPLOAD_ID, contentType: 'application/zip' }] }).attachments[0]).toEqual({
      filename: 'big.zip',
      uploadId: UPLOAD_ID,
      contentType: 'application/zip',
      inline: false,
    });
  });

  it('needs exactly one of content and uploadId', () => {
    expect(issues({ attachments: [{ filename: 'a.txt' }] })).toEqual(['attachments.0: needs exactly one of content (base64) and uploadId']);
    expect(issues({ attachments: [{ filename: 'a.txt', content: 'AAAA', uploadId: UPLOAD_ID }] })).toEqual(['attachments.0: needs exactly one of content (base64) and uploadId']);
  });

  it.each(['AAAA', 'AA==', 'AAA=', 'SGVsbG8sIHdvcmxkIQ==', 'a+/b', ''])('takes the base64 %j', (content) => {
    expect(issues({ attachments: [{ filename: 'a.bin', content }] })).toEqual([]);
  });

  it.each([
    ['a length not a multiple of 4', 'AAA'],
    ['padding in the middle', 'AA==AAAA'],
    ['three padding characters', 'A==='],
    ['only padding', '===='],
    ['line breaks (MIME-wrapped base64)', 'AAAA\r\nAAAA'],
    ['spaces', 'AAAA AAAA'],
    ['base64url characters', 'ab-_'],
    ['a data URL', 'data:application/pdf;base64,JVBERi0xLjQK'],
  ])('refuses content with %s', (_why, content) => {
    expect(issues({ attachments: [{ filename: 'a.bin', content }] })).toEqual(['attachments.0.content: is not base64']);
  });

  it('checks base64 content of many megabytes without overflowing the stack', () => {
    const content = Buffer.alloc(6 * MB, 0x5a).toString('base64');
    expect(issues({ attachments: [{ filename: 'scan.pdf', content }] })).toEqual([]);
    expect(issues({ attachments: [{ filename: 'scan.pdf', content: `${content.slice(0, -4)}A===` }] })).toEqual(['attachments.0.content: is not base64']);
  });

  it.each([
    ['too short', 'att_01JD5Z3X7K9M2N4P6Q8R0S1T2'],
    ['too long', 'att_01JD5Z3X7K9M2N4P6Q8R0S1T2VW'],
    ['lower case', 'att_01jd5z3x7k9m2n4p6q8r0s1t2v'],
    ['an I, L, O or U (not Crockford)', 'att_01JD5Z3X7K9M2N4P6Q8R0S1T2U'],
    ['another prefix', 'msg_01JD5Z3X7K9M2N4P6Q8R0S1T2V'],
    ['a path', '../att_01JD5Z3X7K9M2N4P6Q8R0S1T2V'],
  ])('refuses an upload id %s', (_why, uploadId) => {
    expect(issues({ attachments: [{ filename: 'a.bin', uploadId }] })).not.toEqual([]);
  });

  it('an inline attachment needs a contentId', () => {
    expect(issues({ attachments: [{ filename: 'logo.png', content: 'AAAA', inline: true }] })).toEqual(['attachments.0: an inline attachment needs a contentId']);
    expect(accepted({ attachments: [{ filename: 'logo.png', content: 'AAAA', inline: true, contentId: 'logo@contoso' }] }).attachments[0]).toMatchObject({ inline: true, contentId: 'logo@contoso' });
  });

  it('a contentId is bare: no angle brackets, no spaces', () => {
    for (const contentId of ['<logo@contoso>', 'logo contoso', '']) {
      expect(issues({ attachments: [{ filename: 'logo.png', content: 'AAAA', inline: true, contentId }] })).not.toEqual([]);
    }
  });

  it('needs a filename of 1 to 255 characters', () => {
    expect(issues({ attachments: [{ filename: '', content: 'AAAA' }] })).not.toEqual([]);
    expect(issues({ attachments: [{ filename: 'f'.repeat(255), content: 'AAAA' }] })).toEqual([]);
    expect(issues({ attachments: [{ filename: 'f'.repeat(256), content: 'AAAA' }] })).not.toEqual([]);
  });

  it.each(['application/pdf', 'image/svg+xml', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'text/x.custom'])('takes the media type %s', (contentType) => {
    expect(issues({ attachments: [{ filename: 'a', content: 'AAAA', contentType }] })).toEqual([]);
  });

  it.each(['pdf', 'text/plain; charset=utf-8', 'text/', '/plain', 'text/plain/x', 'text plain'])('refuses the media type %j', (contentType) => {
    expect(issues({ attachments: [{ filename: 'a', content: 'AAAA', contentType }] })).toEqual(['attachments.0.contentType: is not a media type like application/pdf']);
  });

  it('refuses fields it does not know', () => {
    expect(issues({ attachments: [{ filename: 'a', content: 'AAAA', path: '/etc/passwd' }] })).not.toEqual([]);
    expect(issues({ attachments: [{ filename: 'a', content: 'AAAA', href: 'https://contoso.com/a' }] })).not.toEqual([]);
  });

  it('takes at most 250 attachments', () => {
    const attachment = { filename: 'a.txt', content: 'AAAA' };
    expect(issues({ attachments: Array.from({ length: 250 }, () => attachment) })).toEqual([]);
    expect(issues({ attachments: Array.from({ length: 251 }, () => attachment) })).not.toEqual([]);
  });
});

describe('threading', () => {
  it('takes inReplyTo and references as <id@host>', () => {
    const message = accepted({ inReplyTo: '<abc@mail.contoso.com>', references: ['<root@mail.contoso.com>', '<abc@mail.contoso.com>'] });
    expect(message.inReplyTo).toBe('<abc@mail.contoso.com>');
    expect(message.references).toEqual(['<root@mail.contoso.com>', '<abc@mail.contoso.com>']);
  });

  it.each(['abc@mail.contoso.com', '<abc>', '<a@b> <c@d>', '', '<a b@c>'])('refuses %j', (id) => {
    expect(issues({ inReplyTo: id })).toEqual(['inReplyTo: is not a message identifier like <id@host>']);
    expect(issues({ references: [id] })).toEqual(['references.0: is not a message identifier like <id@host>']);
  });

  it('refuses references as one space-separated string', () => {
    expect(issues({ references: '<a@b> <c@d>' })).not.toEqual([]);
  });

  it('takes at most 100 references', () => {
    const ids = (count: number) => Array.from({ length: count }, (_, i) => `<m${String(i)}@contoso.com>`);
    expect(issues({ references: ids(100) })).toEqual([]);
    expect(issues({ references: ids(101) })).not.toEqual([]);
  });
});

describe('sendAt', () => {
  it.each(['2026-11-23T09:00:00Z', '2026-11-23T09:00:00.000Z', '2026-11-23T10:00:00+01:00', '2026-11-23T03:30:00-05:30'])('takes %s', (sendAt) => {
    expect(accepted({ sendAt }).sendAt).toBe(sendAt);
  });

  it.each(['2026-11-23T09:00:00', '2026-11-23', '09:00', 'tomorrow', '2026-11-23 09:00:00Z', '1763888400000'])('refuses %j (no offset, or not ISO 8601)', (sendAt) => {
    expect(issues({ sendAt })).not.toEqual([]);
  });

  it('refuses a number', () => {
    expect(issues({ sendAt: 1_763_888_400_000 })).not.toEqual([]);
  });
});

describe('estimatedMimeSize', () => {
  const size = (attachmentBytes: number[], bodyBytes = 1000) => estimatedMimeSize({ bodyBytes, attachmentBytes, recipients: 1, headerBytes: 200 });

  it('grows attachments by about 4/3 (base64) plus line breaks', () => {
    const withoutAttachment = size([]);
    const growth = size([3 * MB]) - withoutAttachment;
    expect(growth / (3 * MB)).toBeGreaterThan(4 / 3);
    expect(growth / (3 * MB)).toBeLessThan(1.4);
  });

  it('is at least the bytes it is given, and grows with each part', () => {
    expect(size([])).toBeGreaterThan(1000 + 200);
    expect(size([], 2000)).toBeGreaterThan(size([], 1000));
    expect(size([100, 100])).toBeGreaterThan(size([100]));
    expect(estimatedMimeSize({ bodyBytes: 0, attachmentBytes: [], recipients: 500, headerBytes: 0 })).toBeGreaterThan(estimatedMimeSize({ bodyBytes: 0, attachmentBytes: [], recipients: 1, headerBytes: 0 }));
  });

  it('is a whole number', () => {
    expect(Number.isInteger(size([1, 2, 3], 7))).toBe(true);
  });

  it('a 20 MB attachment stays under Exchange\'s 35 MB default; a 27 MB one goes over', () => {
    expect(size([20 * MB])).toBeLessThan(DEFAULT_MAX_MESSAGE_BYTES);
    expect(size([27 * MB])).toBeGreaterThan(DEFAULT_MAX_MESSAGE_BYTES);
  });

  it('counts several attachments together', () => {
    expect(size([10 * MB, 10 * MB, 7 * MB])).toBeGreaterThan(DEFAULT_MAX_MESSAGE_BYTES);
    expect(size([5 * MB, 5 * MB])).toBeLessThan(DEFAULT_MAX_MESSAGE_BYTES);
  });
});

describe('messageView', () => {
  const at = '2026-11-22T12:00:00.000Z';
  const message: OutboundMessage = {
    id: 'msg_01JD5Z3X7K9M2N4P6Q8R0S1T2V',
    customerId: 'acme',
    connectionId: 'con_01JD5Z3X7K9M2N4P6Q8R0S1T2V',
    mailboxId: 'mbx_01JD5Z3X7K9M2N4P6Q8R0S1T2V',
    from: 'sales@contoso.com',
    transport: 'graph',
    internetMessageId: '<abc@contoso.com>',
    status: 'sending',
    size: 12_345,
    recipients: 2,
    content: { container: 'outbox', name: 'acme/msg_01JD5Z3X7K9M2N4P6Q8R0S1T2V.json', bytes: 4_096 },
    requestHash: 'b'.repeat(64),
    idempotencyKey: 'order-1042',
    sendAt: at,
    expiresAt: at,
    nextAttemptAt: at,
    sendingUntil: at,
    verifyBeforeSend: true,
    reservation: { id: 'r1', at },
    attemptCount: 1,
    attempts: [{ number: 1, startedAt: at, transport: 'graph', outcome: 'in_progress' }],
    lastEvent: { id: 'evt_01JD5Z3X7K9M2N4P6Q8R0S1T2V', type: 'message.deferred', occurredAt: at, data: {} },
    createdAt: at,
    updatedAt: at,
  };

  it('is a valid outbound message to start with', () => {
    expect(outboundMessageSchema.safeParse(message).success).toBe(true);
  });

  it('hides the content, the request hash, the reservation, the last event, the sending deadline, the verify flag and the idempotency key', () => {
    const view = messageView(message);
    for (const hidden of ['content', 'requestHash', 'reservation', 'lastEvent', 'sendingUntil', 'verifyBeforeSend', 'idempotencyKey']) {
      expect(view).not.toHaveProperty(hidden);
    }
  });

  it('keeps everything else, unchanged', () => {
    const { content: _c, requestHash: _r, reservation: _s, lastEvent: _e, sendingUntil: _u, verifyBeforeSend: _v, idempotencyKey: _k, ...rest } = message;
    expect(messageView(message)).toEqual(rest);
  });

  it('gives what the Message schema describes', () => {
    const view = messageView(message);
    expect(messageViewSchema.parse(view)).toEqual(view);
    for (const key of Object.keys(view)) expect(messageViewSchema.shape).toHaveProperty(key);
    for (const hidden of ['content', 'requestHash', 'reservation', 'lastEvent', 'sendingUntil', 'verifyBeforeSend', 'idempotencyKey']) {
      expect(messageViewSchema.shape).not.toHaveProperty(hidden);
    }
  });

  it('does not change the message it was given', () => {
    const copy = structuredClone(message);
    messageView(message);
    expect(message).toEqual(copy);
  });
});
