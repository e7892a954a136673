/**
 * RFC 5322 addr-spec (`local@domain`), the part of an address that reaches a mailbox. Accepted:
 * a dot-atom or quoted-string local part, and a domain of DNS labels or an address literal. Not
 * accepted: comments, obsolete forms, and anything with a control character, which a header could
 * not carry safely. Display names travel separately, so "Name <a@b>" is not an addr-spec.
 */

const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";
const DOT_ATOM = `${ATEXT}+(?:\\.${ATEXT}+)*`;
// Printable ASCII but `"` and `\`, or a backslash-quoted printable character.
const QUOTED_STRING = '"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\x20-\\x7e])*"';
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DOMAIN = `${LABEL}(?:\\.${LABEL})+`;
const ADDRESS_LITERAL = '\\[[\\x21-\\x5a\\x5e-\\x7e]+\\]';
const ADDR_SPEC = new RegExp(`^(?:${DOT_ATOM}|${QUOTED_STRING})@(?:${DOMAIN}|${ADDRESS_LITERAL})$`);

/** SMTP's limits (RFC 5321 §4.5.3.1): 64 octets of local part, 254 of path. */
const MAX_LOCAL = 64;
const MAX_ADDRESS = 254;

export function isMailboxAddress(text: string): boolean {
  if (text.length > MAX_ADDRESS || !ADDR_SPEC.test(text)) return false;
  return text.slice(0, text.lastIndexOf('@')).length <= MAX_LOCAL;
}

/** A `<id-left@id-right>` message identifier (RFC 5322 §3.6.4), as In-Reply-To and References carry them. */
export function isMessageIdentifier(text: string): boolean {
  return text.length <= 998 && /^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$/.test(text);
}

/** Characters that would end a header line, or that no header may hold: the header-injection guard. */
export function hasLineBreakOrControl(text: string): boolean {
  return /[\r\n\0\u2028\u2029]/.test(text);
}
