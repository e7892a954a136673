import type { MessageContent } from '../domain/outbound-message.js';
import { errorFields, fetchErrorCode } from './error-fields.js';
import { SendAttemptError, type MailSender, type OutgoingMessage, type SendTarget } from './mail-transport.js';
import { composeMime, type AttachmentBytes } from './mime-message.js';

/**
 * Sending through Microsoft Graph (microsoft.md §5.1). A message that fits in one request goes as
 * one `sendMail`. A larger one becomes a draft: attachments under 3 MB are added one request each,
 * larger ones through an upload session in chunks of at most 4 MB (the upload URL is
 * pre-authenticated and refuses an Authorization header), then the draft is sent.
 *
 * Graph's JSON takes only `x-` headers, at most five; threading headers (In-Reply-To, References)
 * and the list headers go through Graph's MIME form instead, where the message is written by
 * nodemailer exactly as SMTP would send it. Either way the Message-ID is the connector's, so the
 * message can be found in Sent Items after an attempt whose outcome is unknown.
 */

/** Graph's request cap (4 MB); a body over it is refused with 413. */
export const GRAPH_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Attachments from this size go through an upload session; smaller ones fit a request of their own. */
export const UPLOAD_SESSION_MIN_BYTES = 3 * 1024 * 1024;
/** 12 × 320 KiB: under the 4 MB a range may have, and a multiple of the 320 KiB Microsoft's upload APIs like. */
export const UPLOAD_CHUNK_BYTES = 12 * 320 * 1024;
const REQUEST_TIMEOUT_MS = 60_000;
const UPLOAD_TIMEOUT_MS = 120_000;
const MAX_GRAPH_JSON_HEADERS = 5;

export interface GraphSenderOptions {
  /** Graph's origin in the connection's cloud, e.g. https://graph.microsoft.com */
  graphUrl: string;
}

export function graphSender(options: GraphSenderOptions): MailSender {
  const base = `${options.graphUrl.replace(/\/+$/, '')}/v1.0`;
  return {
    async send(target, message) {
      const api = graphApi(base, target);
      const { content } = message;
      const large = content.attachments.map((a, index) => ({ a, index })).filter(({ a }) => a.size >= UPLOAD_SESSION_MIN_BYTES);
      const small = content.attachments.map((a, index) => ({ a, index })).filter(({ a }) => a.size < UPLOAD_SESSION_MIN_BYTES);
      const smallBytes = await Promise.all(small.map(async ({ index }) => ({ index, content: await message.attachment(index) })));

      if (needsMime(content)) {
        const mime = (await composeMime(content, smallBytes)).toString('base64');
        if (large.length === 0 && mime.length <= GRAPH_MAX_REQUEST_BYTES) {
          await api.call('POST', '/sendMail', { text: mime, sending: true });
          return;
        }
        // The draft's MIME carries no attachment, so it stays under the request limit; each is added on its own.
        const draft = await api.call('POST', '/messages', { text: (await composeMime(content, [])).toString('base64') });
        await finishDraft(api, draftId(draft), message, large.map(({ index }) => index), smallBytes);
        return;
      }

      const json = graphMessage(content);
      const withAttachments = { ...json, attachments: smallBytes.map((bytes) => fileAttachment(content, bytes)) };
      const request = JSON.stringify({ message: withAttachments, saveToSentItems: content.saveToSentItems });
      if (large.length === 0 && Buffer.byteLength(request) <= GRAPH_MAX_REQUEST_BYTES) {
        await api.call('POST', '/sendMail', { json: request, sending: true });
        return;
      }
      const draft = await api.call('POST', '/messages', { json: JSON.stringify(json) });
      await finishDraft(api, draftId(draft), message, large.map(({ index }) => index), smallBytes);
    },

    async findSent(target, internetMessageId) {
      const api = graphApi(base, target);
      const query = new URLSearchParams({
        $filter: `internetMessageId eq '${internetMessageId.replace(/'/g, "''")}'`,
        $select: 'id',
        $top: '1',
      });
      let found: { value?: unknown[] } | undefined;
      try {
        found = (await api.call('GET', `/mailFolders/sentitems/messages?${query.toString()}`, {})) as { value?: unknown[] } | undefined;
      } catch (error) {
        // An app granted Mail.Send alone may send but not read: it cannot look, which is no reason to fail the message.
        if (error instanceof SendAttemptError && error.signal.transport === 'graph' && error.signal.status === 403) return undefined;
        throw error;
      }
      return Array.isArray(found?.value) && found.value.length > 0;
    },
  };
}

/** Graph's JSON cannot carry these; its MIME form can. */
function needsMime(content: MessageContent): boolean {
  const names = Object.keys(content.headers);
  return content.inReplyTo !== undefined || content.references.length > 0 || names.length > MAX_GRAPH_JSON_HEADERS || names.some((name) => !/^x-/i.test(name));
}

type Recipient = MessageContent['to'][number];
const recipients = (list: readonly Recipient[]) => list.map((r) => ({ emailAddress: { address: r.address, ...(r.name !== undefined && { name: r.name }) } }));

function graphMessage(content: MessageContent): Record<string, unknown> {
  const headers = Object.entries(content.headers).map(([name, value]) => ({ name, value }));
  return {
    subject: content.subject,
    // Graph keeps one body; Exchange derives the plain-text part from HTML itself.
    body: content.html !== undefined ? { contentType: 'HTML', content: content.html } : { contentType: 'Text', content: content.text ?? '' },
    toRecipients: recipients(content.to),
    ccRecipients: recipients(content.cc),
    bccRecipients: recipients(content.bcc),
    replyTo: recipients(content.replyTo),
    internetMessageId: content.messageId,
    ...(headers.length > 0 && { internetMessageHeaders: headers }),
  };
}

function fileAttachment(content: MessageContent, bytes: AttachmentBytes): Record<string, unknown> {
  const meta = content.attachments[bytes.index];
  if (!meta) throw new RangeError(`no attachment ${String(bytes.index)}`);
  return {
    '@odata.type': '#microsoft.graph.fileAttachment',
    name: meta.filename,
    contentType: meta.contentType,
    contentBytes: bytes.content.toString('base64'),
    isInline: meta.inline,
    ...(meta.contentId !== undefined && { contentId: meta.contentId }),
  };
}

function draftId(draft: unknown): string {
  const id = (draft as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string') throw new SendAttemptError({ transport: 'graph', status: 502, code: 'UnexpectedResponse', message: 'the draft came back without an id', sending: false });
  return id;
}

async function finishDraft(api: GraphApi, id: string, message: OutgoingMessage, large: number[], small: AttachmentBytes[]): Promise<void> {
  const path = `/messages/${encodeURIComponent(id)}`;
  for (const bytes of small) {
    await api.call('POST', `${path}/attachments`, { json: JSON.stringify(fileAttachment(message.content, bytes)) });
  }
  for (const index of large) {
    const meta = message.content.attachments[index];
    if (!meta) throw new RangeError(`no attachment ${String(index)}`);
    const session = (await api.call('POST', `${path}/attachments/createUploadSession`, {
      json: JSON.stringify({
        AttachmentItem: {
          attachmentType: 'file',
          name: meta.filename,
          size: meta.size,
          contentType: meta.contentType,
          isInline: meta.inline,
          ...(meta.contentId !== undefined && { contentId: meta.contentId }),
        },
      }),
    })) as { uploadUrl?: unknown } | undefined;
    if (typeof session?.uploadUrl !== 'string') {
      throw new SendAttemptError({ transport: 'graph', status: 502, code: 'UnexpectedResponse', message: 'the upload session came back without an uploadUrl', sending: false });
    }
    await upload(session.uploadUrl, await message.attachment(index));
  }
  await api.call('POST', `${path}/send`, { sending: true });
}

async function upload(uploadUrl: string, bytes: Buffer): Promise<void> {
  for (let start = 0; start < bytes.length; start += UPLOAD_CHUNK_BYTES) {
    const chunk = bytes.subarray(start, Math.min(bytes.length, start + UPLOAD_CHUNK_BYTES));
    // No Authorization header: the URL carries its own token, and Outlook refuses a Graph token on it.
    const response = await graphFetch(
      uploadUrl,
      {
        method: 'PUT',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `bytes ${String(start)}-${String(start + chunk.length - 1)}/${String(bytes.length)}`,
        },
        body: chunk,
      },
      UPLOAD_TIMEOUT_MS,
      false,
    );
    await readAnswer(response, false);
  }
}

interface GraphApi {
  call(method: 'GET' | 'POST', path: string, body: { json?: string; text?: string; sending?: boolean }): Promise<unknown>;
}

function graphApi(base: string, target: SendTarget): GraphApi {
  const mailboxBase = `${base}/users/${encodeURIComponent(target.mailbox)}`;
  return {
    async call(method, path, { json, text, sending = false }) {
      const headers: Record<string, string> = { authorization: `Bearer ${target.accessToken}`, accept: 'application/json' };
      if (json !== undefined) headers['content-type'] = 'application/json';
      if (text !== undefined) headers['content-type'] = 'text/plain';
      const response = await graphFetch(
        `${mailboxBase}${path}`,
        { method, headers, ...((json ?? text) !== undefined && { body: json ?? text }) },
        REQUEST_TIMEOUT_MS,
        sending,
      );
      return readAnswer(response, sending);
    },
  };
}

async function graphFetch(url: string, init: RequestInit, timeoutMs: number, sending: boolean): Promise<Response> {
  try {
    // A redirect would carry the token to wherever it points.
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const code = fetchErrorCode(error);
    throw new SendAttemptError({ transport: 'network', ...(code !== undefined && { code }), message: errorMessage(error), sending });
  }
}

async function readAnswer(response: Response, sending: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    const code = fetchErrorCode(error);
    throw new SendAttemptError({ transport: 'network', ...(code !== undefined && { code }), message: errorMessage(error), sending });
  }
  const json = parseJson(text);
  if (response.ok) return json;
  const { code, message } = ((json as { error?: unknown } | undefined)?.error ?? {}) as { code?: unknown; message?: unknown };
  const retryAfter = retryAfterSeconds(response.headers.get('retry-after'));
  throw new SendAttemptError({
    transport: 'graph',
    status: response.status,
    ...(typeof code === 'string' && { code }),
    ...(typeof message === 'string' && { message: message.slice(0, 500) }),
    ...(retryAfter !== undefined && { retryAfterSeconds: retryAfter }),
    sending,
  });
}

/** Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterSeconds(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function errorMessage(error: unknown): string {
  const message = errorFields(error).message;
  return typeof message === 'string' ? message : 'request failed';
}
