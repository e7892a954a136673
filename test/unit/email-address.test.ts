import { describe, expect, it } from 'vitest';
import { hasLineBreakOrControl, isMailboxAddress, isMessageIdentifier } from '../../src/domain/email-address.js';

/** RFC 5322 addr-spec as the connector takes it (email-address.ts): what reaches a mailbox, and nothing a header could not carry. */

describe('isMailboxAddress', () => {
  it.each([
    'ada@contoso.com',
    'Ada.Lovelace@contoso.com',
    'ada+newsletter@contoso.com',
    "o'brien@contoso.ie",
    'a@b.co',
    'x@sub.mail.contoso.co.uk',
    "!#$%&'*+/=?^_`{|}~-@contoso.com",
    '1234567890@123.example',
    'ada@xn--bcher-kva.example',
    'ada@my-host.contoso.com',
    'ada@a1.b2',
  ])('takes the dot-atom address %s', (address) => {
    expect(isMailboxAddress(address)).toBe(true);
  });

  it.each([
    '"ada lovelace"@contoso.com',
    '"ada..lovelace"@contoso.com',
    '".ada"@contoso.com',
    '"ada@home"@contoso.com',
    '""@contoso.com',
    '"a\\"b"@contoso.com',
    '"a\\\\b"@contoso.com',
    '"(comment-like) <and> [brackets]"@contoso.com',
  ])('takes the quoted local part %s', (address) => {
    expect(isMailboxAddress(address)).toBe(true);
  });

  it.each(['ada@[192.168.0.1]', 'ada@[IPv6:2001:db8::1]', 'postmaster@[10.0.0.1]'])('takes the address literal %s', (address) => {
    expect(isMailboxAddress(address)).toBe(true);
  });

  it.each([
    ['an empty string', ''],
    ['no @', 'ada.contoso.com'],
    ['no local part', '@contoso.com'],
    ['no domain', 'ada@'],
    ['two @ outside quotes', 'ada@home@contoso.com'],
    ['a domain without a dot', 'ada@localhost'],
    ['a leading dot in the local part', '.ada@contoso.com'],
    ['a trailing dot in the local part', 'ada.@contoso.com'],
    ['consecutive dots in the local part', 'ada..lovelace@contoso.com'],
    ['a leading dot in the domain', 'ada@.contoso.com'],
    ['a trailing dot in the domain', 'ada@contoso.com.'],
    ['consecutive dots in the domain', 'ada@contoso..com'],
    ['a label starting with a hyphen', 'ada@-contoso.com'],
    ['a label ending with a hyphen', 'ada@contoso-.com'],
    ['an underscore in the domain', 'ada@con_toso.com'],
    ['a space in the local part', 'ada lovelace@contoso.com'],
    ['a space in the domain', 'ada@contoso .com'],
    ['a leading space', ' ada@contoso.com'],
    ['a trailing space', 'ada@contoso.com '],
    ['a display name with angle brackets', 'Ada Lovelace <ada@contoso.com>'],
    ['an address in angle brackets', '<ada@contoso.com>'],
    ['a quoted display name', '"Ada" <ada@contoso.com>'],
    ['a comment', 'ada(comment)@contoso.com'],
    ['two addresses', 'ada@contoso.com,bob@contoso.com'],
    ['two addresses with a semicolon', 'ada@contoso.com;bob@contoso.com'],
    ['an unclosed quote', '"ada@contoso.com'],
    ['an unescaped quote inside a quoted local part', '"a"b"@contoso.com'],
    ['a lone backslash in a quoted local part', '"a\\"@contoso.com'],
    ['a non-ASCII local part', 'adä@contoso.com'],
    ['a non-ASCII domain', 'ada@bücher.example'],
    ['an address literal with a bracket inside', 'ada@[1.2.3.4]]'],
    ['an empty address literal', 'ada@[]'],
    ['an address literal with a space', 'ada@[1.2.3 .4]'],
  ])('refuses %s', (_why, address) => {
    expect(isMailboxAddress(address)).toBe(false);
  });

  it.each([
    ['CR', '\r'],
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['NUL', '\0'],
    ['a tab', '\t'],
    ['DEL', '\x7f'],
    ['U+2028', '\u2028'],
  ])('refuses %s anywhere in the address, quoted or not', (_why, char) => {
    expect(isMailboxAddress(`ada${char}@contoso.com`)).toBe(false);
    expect(isMailboxAddress(`ada@contoso.com${char}`)).toBe(false);
    expect(isMailboxAddress(`ada@contoso.com${char}Bcc: eve@evil.example`)).toBe(false);
    expect(isMailboxAddress(`"ada${char}"@contoso.com`)).toBe(false);
    expect(isMailboxAddress(`ada@[1.2.3.4${char}]`)).toBe(false);
  });

  describe('length limits (RFC 5321 §4.5.3.1)', () => {
    it('a local part of 64 characters is taken, 65 is not', () => {
      expect(isMailboxAddress(`${'a'.repeat(64)}@contoso.com`)).toBe(true);
      expect(isMailboxAddress(`${'a'.repeat(65)}@contoso.com`)).toBe(false);
    });

    it('the local-part limit counts a quoted local part with its quotes', () => {
      expect(isMailboxAddress(`"${'a'.repeat(62)}"@contoso.com`)).toBe(true);
      expect(isMailboxAddress(`"${'a'.repeat(63)}"@contoso.com`)).toBe(false);
    });

    it('the local-part limit holds when the quoted local part contains @', () => {
      expect(isMailboxAddress(`"${'a'.repeat(30)}@${'b'.repeat(31)}"@contoso.com`)).toBe(true);
      expect(isMailboxAddress(`"${'a'.repeat(30)}@${'b'.repeat(32)}"@contoso.com`)).toBe(false);
    });

    it('a whole address of 254 characters is taken, 255 is not', () => {
      // Labels of 63, 63 and 61 (or 62) characters: a domain of 189 (or 190).
      const domain = (last: number) => ['d'.repeat(63), 'd'.repeat(63), 'd'.repeat(last)].join('.');
      const at254 = `${'a'.repeat(64)}@${domain(61)}`;
      const at255 = `${'a'.repeat(64)}@${domain(62)}`;
      expect(at254).toHaveLength(254);
      expect(at255).toHaveLength(255);
      expect(isMailboxAddress(at254)).toBe(true);
      expect(isMailboxAddress(at255)).toBe(false);
    });

    it('a DNS label of 63 characters is taken, 64 is not', () => {
      expect(isMailboxAddress(`ada@${'a'.repeat(63)}.com`)).toBe(true);
      expect(isMailboxAddress(`ada@${'a'.repeat(64)}.com`)).toBe(false);
    });

    it('answers quickly on long hostile input', () => {
      const started = performance.now();
      expect(isMailboxAddress(`${'a.'.repeat(50_000)}@`)).toBe(false);
      expect(isMailboxAddress(`ada@${'a-'.repeat(50_000)}`)).toBe(false);
      expect(isMailboxAddress(`"${'\\a'.repeat(50_000)}`)).toBe(false);
      expect(performance.now() - started).toBeLessThan(500);
    });
  });
});

describe('isMessageIdentifier', () => {
  it.each([
    '<abc@mail.contoso.com>',
    '<CAFx=zE+abc.123@mail.gmail.com>',
    '<DM6PR01MB1234.namprd01.prod.outlook.com@x>',
    '<1@2>',
    '<a.b$c%d@[127.0.0.1]>',
  ])('takes %s', (id) => {
    expect(isMessageIdentifier(id)).toBe(true);
  });

  it.each([
    ['no angle brackets', 'abc@mail.contoso.com'],
    ['no closing bracket', '<abc@mail.contoso.com'],
    ['no opening bracket', 'abc@mail.contoso.com>'],
    ['no @', '<abc.mail.contoso.com>'],
    ['nothing left of @', '<@mail.contoso.com>'],
    ['nothing right of @', '<abc@>'],
    ['a space', '<abc def@mail.contoso.com>'],
    ['two identifiers', '<a@b> <c@d>'],
    ['a nested bracket', '<a<b@c>'],
    ['a closing bracket inside', '<a>b@c>'],
    ['CRLF and a header', '<a@b>\r\nBcc: eve@evil.example'],
    ['LF', '<a@b\n>'],
    ['NUL', '<a\0@b>'],
    ['a tab', '<a\t@b>'],
    ['non-ASCII', '<ä@b>'],
    ['U+2028', '<a@b\u2028>'],
    ['an empty string', ''],
  ])('refuses %s', (_why, id) => {
    expect(isMessageIdentifier(id)).toBe(false);
  });

  it('takes at most 998 characters, a header line\'s limit', () => {
    const id = (length: number) => `<${'a'.repeat(length - 4)}@b>`;
    expect(id(998)).toHaveLength(998);
    expect(isMessageIdentifier(id(998))).toBe(true);
    expect(isMessageIdentifier(id(999))).toBe(false);
  });

  it('answers quickly on long hostile input (no quadratic backtracking)', () => {
    const started = performance.now();
    expect(isMessageIdentifier(`<${'@'.repeat(200_000)} `)).toBe(false);
    expect(isMessageIdentifier(`<${'a@'.repeat(100_000)}`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('hasLineBreakOrControl', () => {
  it.each([
    ['CR', 'Hello\rBcc: eve@evil.example'],
    ['LF', 'Hello\nBcc: eve@evil.example'],
    ['CRLF', 'Hello\r\nBcc: eve@evil.example'],
    ['NUL', 'Hello\0'],
    ['U+2028 (line separator)', 'Hello\u2028Bcc: eve@evil.example'],
    ['U+2029 (paragraph separator)', 'Hello\u2029Bcc: eve@evil.example'],
    ['a leading LF', '\nHello'],
    ['a trailing CR', 'Hello\r'],
  ])('finds %s', (_why, text) => {
    expect(hasLineBreakOrControl(text)).toBe(true);
  });

  it.each([
    ['an empty string', ''],
    ['plain text', 'Quarterly report'],
    ['a tab (header whitespace)', 'Quarterly\treport'],
    ['non-ASCII', 'Rapport trimestriel — été 2026 ✓'],
    ['the escaped form of a line break', 'line\\r\\nbreak'],
    ['a colon and what looks like a header', 'Re: Bcc: nobody'],
  ])('passes %s', (_why, text) => {
    expect(hasLineBreakOrControl(text)).toBe(false);
  });
});
