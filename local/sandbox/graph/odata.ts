import type { GraphError } from './errors.js';

/**
 * The OData bits the sandbox Graph honours: `$select` (property names matched case-insensitively,
 * answered in the type's spelling) and the `@odata.context` URL that names what an answer holds.
 */

/**
 * The properties `$select` names, or undefined without one. A name the type does not have is the
 * error `unknown` makes (directory and Outlook types word it differently).
 */
export function selectedProperties(query: URLSearchParams, properties: readonly string[], unknown: (name: string) => GraphError): string[] | undefined {
  const select = query.get('$select');
  if (select === null) return undefined;
  const selected: string[] = [];
  for (const name of select.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const property = properties.find((p) => p.toLowerCase() === name.toLowerCase());
    if (property === undefined) throw unknown(name);
    if (!selected.includes(property)) selected.push(property);
  }
  return selected.length === 0 ? undefined : selected;
}

/** The entity with only the selected properties, plus those the service always returns (Outlook's `id`). */
export function project(entity: Readonly<Record<string, unknown>>, selected: readonly string[] | undefined, always: readonly string[] = []): Record<string, unknown> {
  if (selected === undefined) return { ...entity };
  const keep = new Set([...always, ...selected]);
  return Object.fromEntries(Object.entries(entity).filter(([name]) => keep.has(name)));
}

/** `<root>/$metadata#users('…')/mailFolders(displayName)/$entity`: the set, the selection, and whether it is one entity. */
export function odataContext(serviceRoot: string, entitySet: string, selected: readonly string[] | undefined, shape: 'entity' | 'collection'): string {
  const selection = selected === undefined ? '' : `(${selected.join(',')})`;
  return `${serviceRoot}/$metadata#${entitySet}${selection}${shape === 'entity' ? '/$entity' : ''}`;
}

/** `$top` and `$skip` of a list: Graph's default page size unless asked, at most `maxTop` an answer. */
export function pageOf(query: URLSearchParams, defaultTop: number, maxTop: number, invalid: (option: string, value: string) => GraphError): { top: number; skip: number } {
  const read = (option: string, fallback: number) => {
    const value = query.get(option);
    if (value === null) return fallback;
    if (!/^\d+$/.test(value.trim())) throw invalid(option, value);
    return Number(value);
  };
  return { top: Math.min(read('$top', defaultTop), maxTop), skip: read('$skip', 0) };
}

/** The same request for the next page, as `@odata.nextLink` gives it. */
export function nextLink(url: string, query: URLSearchParams, skip: number): string {
  const next = new URLSearchParams(query);
  next.set('$skip', String(skip));
  return `${url}?${next.toString().replace(/%24/g, '$')}`;
}
