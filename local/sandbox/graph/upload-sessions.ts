import { randomBytes, timingSafeEqual } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Handler, Route, SandboxRequest } from '../identity/http.js';
import type { Mailbox } from '../identity/sandbox-state.js';
import { GraphError, errorResponse, graphErrors, graphResponse, requestIds } from './errors.js';
import { WRITE_MAIL } from './mail-permissions.js';
import { newAttachment } from './message-factory.js';
import { typeProperties } from './message-input.js';
import { findMessage } from './messages.js';
import { authorizedMailbox, mailboxRoutes } from './mailboxes.js';
import { MAX_REQUEST_BYTES, type GraphEnvironment, type GraphRequest, type GraphResult, type GraphRoute } from './router.js';
import { newItemId } from './store-ids.js';

/**
 * Large attachments (3 MB to 150 MB), as Outlook takes them ("Attach large files to Outlook
 * messages"): `POST …/messages/{id}/attachments/createUploadSession` with `{ AttachmentItem:
 * { attachmentType: 'file', name, size } }` answers 201 with an `uploadUrl` on the Outlook host
 * (here the sandbox's HTTPS listener under /outlook), pre-authenticated by its `authtoken`. The
 * client PUTs the bytes there in order, each range at most 4 MB, with `Content-Range: bytes
 * a-b/size` and no Authorization header (Outlook refuses one: it carries a Graph token, whose
 * audience is not Outlook's): 200 with the next expected byte until the last range, then 201
 * with the attachment's URL in Location. DELETE on the URL cancels. Uploads count against the
 * per-mailbox limits of the app that made the session.
 */

const MIN_SIZE = 3 * 1024 * 1024;
const MAX_SIZE = 150 * 1024 * 1024;
/** How long a session's URL works; Microsoft does not say, its examples show a few hours. */
const SESSION_SECONDS = 2 * 3600;
export const UPLOAD_PREFIX = '/outlook/api/gv1.0';

interface UploadSession {
  id: string;
  token: string;
  clientId: string;
  mailbox: Mailbox;
  /** `users('{id}@{tenant}')/messages('{id}')`: the path the URL names them by. */
  itemPath: string;
  messageId: string;
  name: string;
  contentType: string;
  isInline: boolean;
  contentId: string | null;
  size: number;
  chunks: Buffer[];
  received: number;
  expiresAt: number;
}

function attachmentItem(json: unknown): { name: string; size: number; contentType: string; isInline: boolean; contentId: string | null } {
  const item = typeProperties(json, ['AttachmentItem'], 'createUploadSession', (name) => graphErrors.unknownParameter(name, 'createUploadSession')).get('AttachmentItem');
  const fields = typeProperties(item ?? {}, ['attachmentType', 'name', 'size', 'contentType', 'isInline', 'contentId'], 'AttachmentItem');
  const type = fields.get('attachmentType');
  if (typeof type !== 'string' || type.toLowerCase() !== 'file') throw graphErrors.notModelled(`upload sessions for attachmentType ${JSON.stringify(type)} (only 'file')`);
  const size = fields.get('size');
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) throw graphErrors.bodyValueInvalid(JSON.stringify(size ?? null), 'Edm.Int64');
  const text = (name: string, fallback: string) => {
    const value = fields.get(name);
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string') throw graphErrors.bodyValueInvalid(JSON.stringify(value), 'Edm.String');
    return value;
  };
  const contentId = fields.get('contentId');
  return {
    name: text('name', ''),
    size,
    contentType: text('contentType', 'application/octet-stream'),
    isInline: fields.get('isInline') === true,
    contentId: typeof contentId === 'string' ? contentId : null,
  };
}

function createUploadSessionRoutes(env: GraphEnvironment, sessions: Map<string, UploadSession>): GraphRoute[] {
  const { state } = env.context;
  const create = ({ caller, json }: GraphRequest, who: string | undefined, [id = '']: string[]): GraphResult => {
    const target = authorizedMailbox(state, caller, who, WRITE_MAIL);
    const message = findMessage(env.store, target.mailbox, id);
    if (!message.isDraft) throw graphErrors.notADraft();
    const item = attachmentItem(json);
    if (item.size < MIN_SIZE) throw graphErrors.attachmentBelowMinimum();
    if (item.size > MAX_SIZE) throw graphErrors.attachmentOverMaximum();
    const owner = state.userByIdOrUpn(target.mailbox.tenantId, target.mailbox.address)?.id ?? target.mailbox.address;
    const session: UploadSession = {
      id: newItemId(),
      token: randomBytes(32).toString('base64url'),
      clientId: caller.clientId,
      mailbox: target.mailbox,
      itemPath: `users('${owner}@${target.mailbox.tenantId}')/messages('${message.id}')`,
      messageId: message.id,
      ...item,
      chunks: [],
      received: 0,
      expiresAt: env.context.now() + SESSION_SECONDS * 1000,
    };
    sessions.set(session.id, session);
    return {
      status: 201,
      body: {
        '@odata.context': `${env.serviceRoot}/$metadata#microsoft.graph.uploadSession`,
        uploadUrl: `${env.context.httpsBase}${UPLOAD_PREFIX}/${session.itemPath}/AttachmentSessions('${session.id}')?authtoken=${session.token}`,
        expirationDateTime: new Date(session.expiresAt).toISOString(),
        nextExpectedRanges: ['0-'],
      },
    };
  };
  return mailboxRoutes('POST', '/messages/([^/()]+)/attachments/(?:microsoft\\.graph\\.)?createUploadSession', create, 'json');
}

const sameToken = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** The audience of the token a client wrongly sent along, as Outlook names it in its refusal. */
function audienceOf(authorization: string): string {
  try {
    const aud = decodeJwt(authorization.replace(/^Bearer\s+/i, '')).aud;
    return Array.isArray(aud) ? aud.join(',') : (aud ?? '');
  } catch {
    return '';
  }
}

/** Where `bytes a-b/total` starts, once it agrees with the session's size and the body's length. */
function rangeStart(header: string | undefined, session: UploadSession, length: number): number {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header?.trim() ?? '');
  if (!match) throw graphErrors.contentRangeInvalid();
  const [start, end, total] = match.slice(1).map(Number) as [number, number, number];
  if (total !== session.size || end < start || end >= total || end - start + 1 !== length) throw graphErrors.contentRangeInvalid();
  return start;
}

function uploadHandler(env: GraphEnvironment, sessions: Map<string, UploadSession>): Handler {
  const { context, throttle } = env;
  const complete = (session: UploadSession): Record<string, string> => {
    const message = findMessage(env.store, session.mailbox, session.messageId);
    const attachment = newAttachment({ name: session.name, contentType: session.contentType, isInline: session.isInline, contentId: session.contentId, content: Buffer.concat(session.chunks) }, context.now());
    message.attachments.push(attachment);
    message.lastModifiedDateTime = attachment.lastModifiedDateTime;
    return { Location: `${context.httpsBase}${UPLOAD_PREFIX}/${session.itemPath}/Attachments('${attachment.id}')` };
  };
  return async (request: SandboxRequest) => {
    const ids = requestIds(request.headers, context.now());
    let release: (() => void) | undefined;
    try {
      throttle.countRequest();
      const authorization = request.headers.authorization;
      if (authorization !== undefined) throw graphErrors.uploadAudience(audienceOf(authorization), context.httpsBase);
      const session = sessions.get(request.params[2] ?? '');
      if (!session || session.messageId !== request.params[1]) throw graphErrors.uploadSessionUnknown();
      if (!sameToken(request.url.searchParams.get('authtoken') ?? '', session.token)) throw graphErrors.tokenInvalid();
      if (context.now() >= session.expiresAt) {
        sessions.delete(session.id);
        throw graphErrors.tokenExpired();
      }
      release = throttle.admit(session.clientId, session.mailbox.address);
      if (request.method === 'DELETE') {
        sessions.delete(session.id);
        return graphResponse(204, undefined, ids);
      }
      const bytes = request.body === undefined ? Buffer.alloc(0) : await request.body.read(MAX_REQUEST_BYTES);
      if (bytes === undefined) throw graphErrors.requestTooLarge();
      const start = rangeStart(request.headers['content-range'], session, bytes.length);
      if (start !== session.received) throw graphErrors.rangeNotExpected(session.received);
      session.chunks.push(bytes);
      session.received += bytes.length;
      if (session.received < session.size) {
        return graphResponse(200, { '@odata.context': `${context.httpsBase}${UPLOAD_PREFIX}/$metadata#${session.itemPath}/AttachmentSessions/$entity`, ExpirationDateTime: new Date(session.expiresAt).toISOString(), nextExpectedRanges: [String(session.received)] }, ids);
      }
      sessions.delete(session.id);
      return graphResponse(201, undefined, ids, complete(session));
    } catch (error) {
      if (error instanceof GraphError) return errorResponse(error, ids);
      throw error;
    } finally {
      release?.();
    }
  };
}

/**
 * The createUploadSession routes (Graph) and the upload URLs' routes (the HTTPS listener, beside
 * Graph), sharing the open sessions. Sessions live in memory only.
 */
export function uploadSessionRoutes(env: GraphEnvironment): { graph: GraphRoute[]; uploads: Route[] } {
  const sessions = new Map<string, UploadSession>();
  const path = new RegExp(`^${UPLOAD_PREFIX.replace(/\./g, '\\.')}/users\\('([^']*)'\\)/messages\\('([^']*)'\\)/AttachmentSessions\\('([^']*)'\\)$`, 'i');
  const handler = uploadHandler(env, sessions);
  return { graph: createUploadSessionRoutes(env, sessions), uploads: ['PUT', 'DELETE'].map((method) => ({ method, path, handler, readsOwnBody: true })) };
}
