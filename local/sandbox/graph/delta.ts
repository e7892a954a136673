import type { Mailbox } from '../identity/sandbox-state.js';
import type { DeltaCursor, DeltaOptions } from './delta-tokens.js';
import { graphErrors } from './errors.js';
import { FOLDER_SEGMENT, findFolder } from './mail-folders.js';
import { READ_MAIL_BASIC } from './mail-permissions.js';
import { mailboxKey, type MailChange, type StoredMessage } from './mail-store.js';
import { authorizedMailbox, mailboxRoutes } from './mailboxes.js';
import { messageEntity, projectMessage, selectedMessageProperties } from './message-entity.js';
import { preferredPageSize, prefersImmutableIds } from './prefer.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';

/**
 * Delta queries for the messages of a folder (`GET /me/mailFolders/{id}/messages/delta`,
 * `/users/{who}/mailFolders/{id}/messages/delta`, also `microsoft.graph.delta()`), as Outlook
 * answers them (delta-query-messages.md, message-delta.md):
 * - the initial round lists the folder's messages, latest arrival first, page by page (`@odata.nextLink`
 *   with a `$skiptoken`), and ends with an `@odata.deltaLink` (`$deltatoken`);
 * - a round from a deltaLink lists what changed in the folder since the last round: messages that
 *   came in (created or moved in) with the selected properties, messages that left (deleted or
 *   moved out) as `{ id, @removed: { reason: 'deleted' } }`;
 * - query options go in the initial request only and ride in the tokens: `$select` (`id` always),
 *   `$filter=receivedDateTime ge|gt {date}` (the only filter), `$top`, the custom `changeType`
 *   (created, updated, deleted: later rounds only, as Microsoft describes it), and
 *   `$orderby=receivedDateTime desc` (the order anyway). The page size is `$top` or the header
 *   `Prefer: odata.maxpagesize=N`, whichever is smaller, 10 without either.
 * - a token the sandbox forgot (delta-tokens.ts) is 410 Gone with `Location`: the initial request
 *   again, with an empty `$deltatoken`; one it cannot read is 400.
 * Permissions are those of listing messages; the request counts against the per-mailbox limits.
 * `/messages/delta` without a folder is refused, as Outlook tracks folders one by one.
 */

const DEFAULT_PAGE = 10;
const MAX_PAGE = 1000;
const DELTA_FUNCTION = '/messages/(?:delta|microsoft\\.graph\\.delta(?:\\(\\))?)';
const MESSAGE_TYPE = '#microsoft.graph.message';

const CHANGE_TYPES = ['created', 'updated', 'deleted'] as const;

/** `receivedDateTime ge|gt {ISO date}`: the one filter Outlook's delta takes. */
function readFilter(query: URLSearchParams): DeltaOptions['filter'] {
  const filter = query.get('$filter');
  if (filter === null) return undefined;
  const match = /^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$/i.exec(filter);
  const at = match?.[2] === undefined ? NaN : Date.parse(match[2]);
  if (!match || Number.isNaN(at)) throw graphErrors.unsupportedMessageFilter();
  return { operator: match[1]?.toLowerCase() === 'gt' ? 'gt' : 'ge', at, text: filter };
}

/** The initial request's options, checked as Graph checks them. */
function readOptions(query: URLSearchParams): DeltaOptions {
  const top = query.get('$top');
  if (top !== null && !/^\s*[1-9]\d*\s*$/.test(top)) throw graphErrors.badQueryOption('$top', top);
  const changeType = query.get('changeType');
  if (changeType !== null && !(CHANGE_TYPES as readonly string[]).includes(changeType.toLowerCase())) throw graphErrors.badQueryOption('changeType', changeType);
  const orderBy = query.get('$orderby');
  if (orderBy !== null && !/^\s*receivedDateTime\s+desc\s*$/i.test(orderBy)) throw graphErrors.notModelled(`$orderby=${orderBy} in a delta query (only receivedDateTime desc)`);
  const search = query.get('$search');
  if (search !== null) throw graphErrors.badQueryOption('$search', search);
  const expand = query.get('$expand');
  if (expand !== null) throw graphErrors.notModelled('$expand');
  const select = selectedMessageProperties(query);
  const filter = readFilter(query);
  return {
    ...(select === undefined ? {} : { select }),
    ...(filter === undefined ? {} : { filter }),
    ...(top === null ? {} : { top: Number(top) }),
    ...(changeType === null ? {} : { changeType: changeType.toLowerCase() as DeltaOptions['changeType'] }),
  };
}

/** The initial request again, as the 410's Location gives it: the options and an empty `$deltatoken`. */
function restartLink(base: string, options: DeltaOptions): string {
  const query = [
    ...(options.select === undefined ? [] : [`$select=${options.select.join(',')}`]),
    ...(options.filter === undefined ? [] : [`$filter=${encodeURIComponent(options.filter.text)}`]),
    ...(options.top === undefined ? [] : [`$top=${String(options.top)}`]),
    ...(options.changeType === undefined ? [] : [`changeType=${options.changeType}`]),
    '$deltatoken=',
  ];
  return `${base}?${query.join('&')}`;
}

const receivedMatches = (message: StoredMessage, filter: DeltaOptions['filter']) =>
  filter === undefined || (filter.operator === 'ge' ? message.receivedDateTime >= filter.at : message.receivedDateTime > filter.at);

/** One entry of a page: where the page ends if it is the last one given, and what the client sees. */
interface Entry {
  position: number;
  item: Record<string, unknown>;
}

export function deltaRoutes(env: GraphEnvironment): GraphRoute[] {
  const { store, deltaTokens } = env;

  /** Where this request's round stands: a new initial round, or the one its token names. */
  const cursorOf = (query: URLSearchParams, mailbox: Mailbox, folder: string, base: string): DeltaCursor => {
    const skipToken = query.get('$skiptoken') ?? '';
    const deltaToken = query.get('$deltatoken') ?? '';
    if (skipToken === '' && deltaToken === '') {
      return { mailbox: mailboxKey(mailbox), folder, options: readOptions(query), phase: 'sync', since: 0, upTo: store.sequence, position: null };
    }
    const read = deltaTokens.read(skipToken !== '' ? skipToken : deltaToken);
    if (read.kind === 'malformed' || read.cursor.mailbox !== mailboxKey(mailbox) || read.cursor.folder !== folder) throw graphErrors.syncStateInvalid();
    if (read.kind === 'stale') throw graphErrors.syncStateNotFound(restartLink(base, read.cursor.options), read.generation, read.highest);
    if (skipToken !== '') return read.cursor;
    if (read.cursor.phase !== 'changes') throw graphErrors.syncStateInvalid();
    // A deltaLink starts the next round: everything that changed from the last round's end until now.
    return { ...read.cursor, upTo: store.sequence, position: null };
  };

  const itemOf = (mailbox: Mailbox, message: StoredMessage, id: string, options: DeltaOptions) => ({
    '@odata.type': MESSAGE_TYPE,
    ...projectMessage(messageEntity(mailbox, message, id), options.select),
  });

  /** The initial round: the folder as it was at the round's start, newest arrival first. */
  const syncEntries = (mailbox: Mailbox, cursor: DeltaCursor, immutable: boolean): Entry[] =>
    store
      .list(mailbox, cursor.folder)
      .map((message) => ({ message, arrival: store.arrivalOf(message) }))
      .filter(({ message, arrival }) => arrival <= cursor.upTo && (cursor.position === null || arrival < cursor.position) && receivedMatches(message, cursor.options.filter))
      .sort((a, b) => b.arrival - a.arrival)
      .map(({ message, arrival }) => ({ position: arrival, item: itemOf(mailbox, message, store.idOf(message, immutable), cursor.options) }));

  /** A later round: each message that changed in the folder once, at its last change, in the order of those. */
  const changeEntries = (mailbox: Mailbox, cursor: DeltaCursor, immutable: boolean): Entry[] => {
    const first = new Map<string, MailChange>();
    const last = new Map<string, MailChange>();
    for (const change of store.changes(mailbox, cursor.folder, cursor.since, cursor.upTo)) {
      if (!first.has(change.message.id)) first.set(change.message.id, change);
      last.delete(change.message.id);
      last.set(change.message.id, change);
    }
    const wanted = cursor.options.changeType;
    const entries: Entry[] = [];
    for (const [id, change] of last) {
      if (cursor.position !== null && change.sequence <= cursor.position) continue;
      const message = store.find(mailbox, id);
      if (message?.folder === cursor.folder) {
        const kind = store.arrivalOf(message) > cursor.since ? 'created' : 'updated';
        if ((wanted === undefined || wanted === kind) && receivedMatches(message, cursor.options.filter)) {
          entries.push({ position: change.sequence, item: itemOf(mailbox, message, store.idOf(message, immutable), cursor.options) });
        }
      } else if (first.get(id)?.kind === 'deleted' && (wanted === undefined || wanted === 'deleted')) {
        // Gone, and it was there when the last round ended (one that came and went since is no news).
        const removedId = immutable ? id : change.regularId;
        entries.push({ position: change.sequence, item: { '@odata.type': MESSAGE_TYPE, id: removedId, '@removed': { reason: 'deleted' } } });
      }
    }
    return entries;
  };

  const delta = (request: GraphRequest, who: string | undefined, [byPath, byKey]: string[]): GraphResult => {
    const target = authorizedMailbox(env.context.state, request.caller, who, READ_MAIL_BASIC);
    const folderKey = byPath ?? byKey ?? '';
    const folder = findFolder(target.mailbox, folderKey);
    const owner = who === undefined ? '/me' : `/users/${encodeURIComponent(who)}`;
    const base = `${env.serviceRoot}${owner}/mailFolders('${encodeURIComponent(folderKey)}')/messages/delta`;
    const cursor = cursorOf(request.query, target.mailbox, folder.name, base);
    const immutable = prefersImmutableIds(request.headers);
    const entries = cursor.phase === 'sync' ? syncEntries(target.mailbox, cursor, immutable) : changeEntries(target.mailbox, cursor, immutable);
    const asked = [cursor.options.top, preferredPageSize(request.headers)].filter((n) => n !== undefined);
    const size = Math.min(MAX_PAGE, ...(asked.length === 0 ? [DEFAULT_PAGE] : asked));
    const page = entries.slice(0, size);
    const lastGiven = page.at(-1);
    const link =
      entries.length > size && lastGiven !== undefined
        ? { '@odata.nextLink': `${base}?$skiptoken=${deltaTokens.issue({ ...cursor, position: lastGiven.position })}` }
        : { '@odata.deltaLink': `${base}?$deltatoken=${deltaTokens.issue({ ...cursor, phase: 'changes', since: cursor.upTo, position: null })}` };
    return {
      status: 200,
      body: { '@odata.context': `${env.serviceRoot}/$metadata#Collection(message)`, ...link, value: page.map((e) => e.item) },
    };
  };

  const folderless = (): GraphResult => {
    throw graphErrors.changeTrackingUnsupported();
  };

  return [...mailboxRoutes('GET', `${FOLDER_SEGMENT}${DELTA_FUNCTION}`, delta), ...mailboxRoutes('GET', DELTA_FUNCTION, folderless)];
}
