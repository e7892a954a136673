import type { Mailbox } from '../identity/sandbox-state.js';
import { graphErrors } from './errors.js';
import { FOLDER_SEGMENT, findFolder } from './mail-folders.js';
import { READ_MAIL, READ_MAIL_BASIC, WRITE_MAIL } from './mail-permissions.js';
import type { MailStore, StoredMessage } from './mail-store.js';
import { attachmentEntity, messageEntity, projectMessage, selectedMessageProperties } from './message-entity.js';
import { newAttachment, newInternetMessageId, newMessage } from './message-factory.js';
import { parseAttachment, parseMessage } from './message-input.js';
import { authorizedMailbox, mailboxRoutes } from './mailboxes.js';
import { mimeOf } from './mime.js';
import { readMimeMessage } from './mime-input.js';
import { nextLink, odataContext, pageOf } from './odata.js';
import { prefersImmutableIds } from './prefer.js';
import type { GraphEnvironment, GraphRequest, GraphResult, GraphRoute } from './router.js';
import { looksLikeStoreId } from './store-ids.js';

/**
 * Messages of a mailbox (`/me/…` or `/users/{who}/…`):
 * - `POST /messages`: a draft in Drafts (201, the message), with inline file attachments, from
 *   JSON or from base64 MIME (mime-input.ts);
 * - `GET /messages`, `GET /mailFolders/{id}/messages`: newest first, `$select`, `$top` (10 by
 *   default, as Outlook), `$skip` with `@odata.nextLink`, and the one `$filter` a client needs to
 *   find what it sent: `internetMessageId eq '<…>'`;
 * - `GET /messages/{id}`, `…/$value` (MIME), `…/attachments` (with contentBytes), `…/attachments/{id}`;
 * - `POST /messages/{id}/attachments`: a file attachment on a draft.
 * Sending is send-mail.ts; large attachments are upload-sessions.ts.
 */

const DEFAULT_PAGE = 10;
const MAX_PAGE = 1000;
const MESSAGE = '/messages/([^/()]+)';

/** The message a path names: 400 for what is no id, 404 for an id this mailbox does not hold. */
export function findMessage(store: MailStore, mailbox: Mailbox, id: string): StoredMessage {
  const message = store.find(mailbox, id);
  if (message) return message;
  throw looksLikeStoreId(id) ? graphErrors.itemNotFound() : graphErrors.idMalformed();
}

/** `internetMessageId eq '<…>'` (a quote inside doubled, as OData writes it), or undefined without a filter. */
function internetMessageIdFilter(query: URLSearchParams): string | undefined {
  const filter = query.get('$filter');
  if (filter === null) return undefined;
  const match = /^\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*$/i.exec(filter);
  if (!match) throw graphErrors.unsupportedMessageFilter();
  return (match[1] ?? '').replace(/''/g, "'");
}

export function messageRoutes(env: GraphEnvironment): GraphRoute[] {
  const { state } = env.context;
  const { store } = env;

  /** The message as Graph shows it, with the id in the format the request asked for. */
  const entity = (request: GraphRequest, mailbox: Mailbox, message: StoredMessage) => messageEntity(mailbox, message, store.idOf(message, prefersImmutableIds(request.headers)));

  const createDraft = async (request: GraphRequest, who: string | undefined): Promise<GraphResult> => {
    const { caller, json, mime } = request;
    const target = authorizedMailbox(state, caller, who, WRITE_MAIL);
    const input = mime === undefined ? parseMessage(json) : await readMimeMessage(mime);
    const now = env.context.now();
    const self = { name: target.mailbox.displayName, address: target.mailbox.address };
    const from = input.from ?? self;
    const draft = store.add(
      target.mailbox,
      newMessage(state, {
        content: input,
        internetMessageId: input.internetMessageId ?? newInternetMessageId(),
        attachments: input.attachments.map((a) => newAttachment(a, now)),
        folder: 'drafts',
        from,
        sender: from,
        isDraft: true,
        isRead: true,
        now,
        sentDateTime: null,
      }),
    );
    return { status: 201, body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/messages`, undefined, 'entity'), ...projectMessage(entity(request, target.mailbox, draft), undefined) } };
  };

  const list = (request: GraphRequest, who: string | undefined, [byPath, byKey]: string[]): GraphResult => {
    const { caller, query, path } = request;
    const target = authorizedMailbox(state, caller, who, READ_MAIL_BASIC);
    const folderKey = byPath ?? byKey;
    const folder = folderKey === undefined ? undefined : findFolder(target.mailbox, folderKey).name;
    const selected = selectedMessageProperties(query);
    const wanted = internetMessageIdFilter(query);
    const orderBy = query.get('$orderby');
    if (orderBy !== null && !/^\s*receivedDateTime\s+desc\s*$/i.test(orderBy)) throw graphErrors.notModelled(`$orderby=${orderBy} (messages come newest first)`);
    const { top, skip } = pageOf(query, DEFAULT_PAGE, MAX_PAGE, graphErrors.badQueryOption);
    const matching = store.list(target.mailbox, folder).filter((m) => wanted === undefined || m.internetMessageId === wanted);
    const page = matching.slice(skip, skip + top);
    const set = folderKey === undefined ? `${target.entitySet}/messages` : `${target.entitySet}/mailFolders('${folderKey}')/messages`;
    return {
      status: 200,
      body: {
        '@odata.context': odataContext(env.serviceRoot, set, selected, 'collection'),
        value: page.map((m) => projectMessage(entity(request, target.mailbox, m), selected)),
        ...(skip + top < matching.length ? { '@odata.nextLink': nextLink(`${env.serviceRoot}${path}`, query, skip + top) } : {}),
      },
    };
  };

  const get = (request: GraphRequest, who: string | undefined, [id = '']: string[]): GraphResult => {
    const target = authorizedMailbox(state, request.caller, who, READ_MAIL_BASIC);
    const message = findMessage(store, target.mailbox, id);
    const selected = selectedMessageProperties(request.query);
    return { status: 200, body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/messages`, selected, 'entity'), ...projectMessage(entity(request, target.mailbox, message), selected) } };
  };

  const mime = async ({ caller }: GraphRequest, who: string | undefined, [id = '']: string[]): Promise<GraphResult> => {
    const target = authorizedMailbox(state, caller, who, READ_MAIL);
    return { status: 200, text: await mimeOf(findMessage(store, target.mailbox, id)), headers: { 'Content-Type': 'text/plain' } };
  };

  const attachments = ({ caller }: GraphRequest, who: string | undefined, [id = '']: string[]): GraphResult => {
    const target = authorizedMailbox(state, caller, who, READ_MAIL);
    const message = findMessage(store, target.mailbox, id);
    return {
      status: 200,
      body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/messages('${id}')/attachments`, undefined, 'collection'), value: message.attachments.map((a) => attachmentEntity(a)) },
    };
  };

  const attachment = ({ caller }: GraphRequest, who: string | undefined, [id = '', attachmentId = '']: string[]): GraphResult => {
    const target = authorizedMailbox(state, caller, who, READ_MAIL);
    const found = findMessage(store, target.mailbox, id).attachments.find((a) => a.id === attachmentId);
    if (!found) throw looksLikeStoreId(attachmentId) ? graphErrors.itemNotFound() : graphErrors.idMalformed();
    return { status: 200, body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/messages('${id}')/attachments`, undefined, 'entity'), ...attachmentEntity(found) } };
  };

  const addAttachment = ({ caller, json }: GraphRequest, who: string | undefined, [id = '']: string[]): GraphResult => {
    const target = authorizedMailbox(state, caller, who, WRITE_MAIL);
    const message = findMessage(store, target.mailbox, id);
    if (!message.isDraft) throw graphErrors.notADraft();
    const added = newAttachment(parseAttachment(json), env.context.now());
    message.attachments.push(added);
    message.lastModifiedDateTime = added.lastModifiedDateTime;
    return { status: 201, body: { '@odata.context': odataContext(env.serviceRoot, `${target.entitySet}/messages('${id}')/attachments`, undefined, 'entity'), ...attachmentEntity(added) } };
  };

  return [
    ...mailboxRoutes('POST', '/messages', createDraft, 'json-or-mime'),
    ...mailboxRoutes('GET', '/messages', (r, who) => list(r, who, [])),
    ...mailboxRoutes('GET', `${FOLDER_SEGMENT}/messages`, list),
    ...mailboxRoutes('GET', MESSAGE, get),
    ...mailboxRoutes('GET', `${MESSAGE}/\\$value`, mime),
    ...mailboxRoutes('GET', `${MESSAGE}/attachments`, attachments),
    ...mailboxRoutes('GET', `${MESSAGE}/attachments/([^/()]+)`, attachment),
    ...mailboxRoutes('POST', `${MESSAGE}/attachments`, addAttachment, 'json'),
  ];
}
