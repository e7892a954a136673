import type { IncomingHttpHeaders } from 'node:http';

/**
 * Graph's `Prefer` request header (RFC 7240): `IdType="ImmutableId"` (Outlook ids that survive a
 * move) and `odata.maxpagesize=N` (a page size for delta). Several preferences may share one
 * header or come in several; names are matched in any case, values may be quoted.
 */

function preferences(headers: IncomingHttpHeaders): Map<string, string> {
  const raw = headers.prefer;
  const found = new Map<string, string>();
  for (const part of (Array.isArray(raw) ? raw.join(',') : (raw ?? '')).split(',')) {
    const [name = '', ...value] = part.split('=');
    if (name.trim() !== '') found.set(name.trim().toLowerCase(), value.join('=').trim().replace(/^"(.*)"$/, '$1'));
  }
  return found;
}

/** Whether the client asked for immutable ids; Graph then answers `Preference-Applied: IdType="ImmutableId"`. */
export function prefersImmutableIds(headers: IncomingHttpHeaders): boolean {
  return preferences(headers).get('idtype')?.toLowerCase() === 'immutableid';
}

export const IMMUTABLE_ID_APPLIED = { 'Preference-Applied': 'IdType="ImmutableId"' } as const;

/** `odata.maxpagesize`, when it is a positive whole number (anything else is ignored, as a preference may be). */
export function preferredPageSize(headers: IncomingHttpHeaders): number | undefined {
  const value = preferences(headers).get('odata.maxpagesize');
  return value !== undefined && /^\d+$/.test(value) && Number(value) > 0 ? Number(value) : undefined;
}
