import fc from 'fast-check';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../../local/azurite.js';
import { compareRoutes, compileRoute, type CompiledRoute } from '../../local/host/route-template.js';
import { MAX_BODY_BYTES } from '../../src/api/http-adapter.js';
import type { OpenApiDocument } from '../../src/api/openapi.js';
import { PROBLEM_TYPES, problemSchema, problemTypeUri, type ProblemType } from '../../src/api/problem.js';
import type { ApiRoute } from '../../src/api/route.js';
import { apiRoutes } from '../../src/api/routes/index.js';
import type { ApiServices } from '../../src/api/services.js';
import type { Connection } from '../../src/domain/connection.js';
import { derivedId, newId } from '../../src/domain/ids.js';
import { InboxContent } from '../../src/receiving/inbox-content.js';
import { keys } from '../../src/store/repositories.js';
import { UNCHANGED } from '../../src/store/table-repository.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { OpenApiValidator } from '../support/openapi-validator.js';
import { mailboxOf } from '../support/receive-environment.js';
import { SandboxBrowser, type ArrivedAtApp, type SandboxPage, page, arrived } from '../support/sandbox-browser.js';
import { sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { closeProbes, encodeSegment, probe, rawProbe, type ProbeAnswer, type ProbeRequest } from './http-probe.js';
import { snapshotStorage, storageChanges, type StorageSnapshot } from './storage-snapshot.js';

/**
 * Hostile input against the real function app in the local host, on an Azurite of its own: every
 * HTTP function the app registers (the vendor API's routes enumerated from the route table and
 * checked against the OpenAPI document, the connect pages, Graph's notification URLs) gets
 * malformed JSON, wrong types, missing and extra fields, bodies over the limits, CR/LF where a
 * header could be made of it, Unicode edge cases, bad ids and wrong content types, fixed cases and
 * fast-check generated ones (seed FC_SEED, printed on failure).
 *
 * The oracle is the route's own declaration: what its schemas and limits refuse must be refused
 * with a 4xx application/problem+json that is a valid problem, in the adapter's order (credentials,
 * size, media type, JSON, ids, query, headers, body), and must leave Table, Queue and Blob storage
 * exactly as they were (snapshots before and after). What the schemas accept may be answered
 * either way, but never with a 5xx, and a 4xx answer still stores nothing. Queue- and
 * timer-triggered functions are switched off, so a queued message stays where a snapshot sees it.
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
const SEED = Number(process.env.FC_SEED ?? 424242);
const RUNS = Number(process.env.FC_RUNS ?? 10);
const CUSTOMER = 'acme';

let azurite: RunningAzurite;
let env: ConnectEnvironment;
let kit: SendTestKit;
let contoso: Directory;
let fabrikam: Directory;
let validator: OpenApiValidator;
let apiKey: string;
let application: Connection;
let mailboxAddress: string;
let fixtures: Record<string, string>;
let hostRoutes: { name: string; methods: Set<string>; route: CompiledRoute }[];

/** What each route was sent and how it answered, for the report at the end. */
const tally = { requests: 0, rejected: 0, answered: 0, skipped: 0, generated: 0 };
const contractProblems = new Set<string>();

// ---------------------------------------------------------------------------------------------
// The oracle: what the route's declaration says of a request.

type Prediction =
  | { kind: 'reject'; status: number; why: string; route: string }
  | { kind: 'answer'; route: string }
  /** No function's route matches: the host's own empty 404, as the Functions host answers. */
  | { kind: 'host-404' }
  /** A function outside the vendor API (connect pages, Graph) would take it. */
  | { kind: 'other-function'; name: string };

const JSON_MEDIA_TYPE = /^application\/([a-z.+-]+\+)?json\s*(;|$)/i;
const empty = z.object({});

function resolve(method: string, path: string): { name: string; params: Record<string, string> } | undefined {
  const url = new URL(path, 'http://localhost');
  const pathname = url.pathname;
  if (!pathname.toLowerCase().startsWith('/api/')) return undefined;
  const rest = pathname.slice('/api'.length);
  for (const candidate of hostRoutes) {
    if (candidate.methods.size > 0 && !candidate.methods.has(method)) continue;
    const params = candidate.route.match(rest);
    if (params) return { name: candidate.name, params };
  }
  return undefined;
}

/** A header value as the server reads it: optional whitespace around it is not part of it. */
function headerValue(headers: Record<string, string>, name: string): string | undefined {
  const found = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return found === undefined ? undefined : found[1].replace(/^[ \t]+|[ \t]+$/g, '');
}

function credentialAccepted(headers: Record<string, string>): boolean {
  const authorization = headerValue(headers, 'authorization');
  if (authorization !== undefined) return /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1] === apiKey;
  return headerValue(headers, 'x-api-key') === apiKey;
}

const predictions = new WeakMap<ProbeRequest, Prediction>();

function predict(request: ProbeRequest): Prediction {
  let prediction = predictions.get(request);
  if (!prediction) {
    prediction = predictUncached(request);
    predictions.set(request, prediction);
  }
  return prediction;
}

function predictUncached(request: ProbeRequest): Prediction {
  const target = resolve(request.method, request.path);
  if (!target) return { kind: 'host-404' };
  const route = apiRoutes.find((candidate) => candidate.name === target.name);
  if (!route) return { kind: 'other-function', name: target.name };
  const reject = (status: number, why: string): Prediction => ({ kind: 'reject', status, why, route: route.name });
  const headers = request.headers ?? {};
  if (route.authenticated && !credentialAccepted(headers)) return reject(401, 'credentials');
  const size = request.body === undefined ? 0 : Buffer.isBuffer(request.body) ? request.body.length : Buffer.byteLength(request.body, 'utf8');
  const limit = route.upload ? route.upload.maxBytes : (route.maxBodyBytes ?? MAX_BODY_BYTES);
  // The declared Content-Length is checked first, on a GET too; then the Functions programming
  // model hands a GET no body, whatever came with it.
  if (size > limit) return reject(413, 'body size');
  const bytes = request.method === 'GET' || request.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(request.body) ? request.body : Buffer.from(request.body, 'utf8');
  let body: unknown;
  if (!route.upload && bytes.length > 0) {
    if (!JSON_MEDIA_TYPE.test(headerValue(headers, 'content-type') ?? '')) return reject(415, 'media type');
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      return reject(400, 'not JSON');
    }
  }
  if (!(route.params ?? empty).safeParse(target.params).success) return reject(404, 'ids');
  const search = new URL(request.path, 'http://localhost').searchParams;
  const query = Object.fromEntries([...new Set(search.keys())].map((key) => [key, search.getAll(key).join(',')]));
  if (!(route.query ?? empty).safeParse(query).success) return reject(400, 'query');
  const declared = Object.keys((route.headers as { shape?: Record<string, unknown> } | undefined)?.shape ?? {});
  const read = Object.fromEntries(declared.flatMap((name) => {
    const value = headerValue(headers, name);
    return value === undefined ? [] : [[name, value]];
  }));
  if (!(route.headers ?? empty).safeParse(read).success) return reject(400, 'headers');
  if (route.body && body === undefined && !route.body.safeParse(undefined).success) return reject(400, 'body missing');
  if (!route.body && !route.upload && body !== undefined) return reject(400, 'body not expected');
  if (route.body && !route.body.safeParse(body).success) return reject(400, 'body');
  return { kind: 'answer', route: route.name };
}

// ---------------------------------------------------------------------------------------------
// What an answer must look like.

const PROBLEM_KEYS = new Set(['type', 'title', 'status', 'detail', 'instance', 'errors']);

function problemFaults(answer: ProbeAnswer): string[] {
  if (answer.headers['content-type'] !== 'application/problem+json') return [`content type ${String(answer.headers['content-type'])}, not application/problem+json`];
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    return ['the body is not JSON'];
  }
  const parsed = problemSchema.safeParse(body);
  if (!parsed.success) return [`not a problem: ${parsed.error.issues.map((i) => `${i.path.join('/')} ${i.message}`).join('; ')}`];
  const faults: string[] = [];
  const problem = parsed.data;
  const extra = Object.keys(body as object).filter((key) => !PROBLEM_KEYS.has(key));
  if (extra.length > 0) faults.push(`unexpected members ${extra.join(', ')}`);
  const type = (Object.keys(PROBLEM_TYPES) as ProblemType[]).find((candidate) => problemTypeUri(candidate) === problem.type);
  if (!type) faults.push(`unknown type ${problem.type}`);
  else if (PROBLEM_TYPES[type].title !== problem.title) faults.push(`title "${problem.title}" is not the title of ${type}`);
  if (problem.status !== answer.status) faults.push(`status ${problem.status} in the body, ${answer.status} on the response`);
  if (problem.detail.trim() === '') faults.push('an empty detail');
  if (problem.instance !== undefined && problem.instance !== `urn:uuid:${answer.headers['x-request-id'] ?? ''}`) faults.push('instance is not the request id');
  if (apiKey && answer.text.includes(apiKey.slice(-20))) faults.push('the problem repeats the API key');
  return faults;
}

interface Outcome {
  request: ProbeRequest;
  label: string;
  prediction: Prediction;
  answer: ProbeAnswer;
  faults: string[];
}

function describeRequest(request: ProbeRequest): string {
  const body = request.body === undefined ? '' : Buffer.isBuffer(request.body) ? ` <${request.body.length} bytes>` : ` ${request.body.length > 300 ? `${JSON.stringify(request.body.slice(0, 300))}… (${request.body.length} chars)` : JSON.stringify(request.body)}`;
  const headers = Object.entries(request.headers ?? {})
    .filter(([name]) => name.toLowerCase() !== 'authorization' || !request.headers?.[name]?.includes(apiKey))
    .map(([name, value]) => `${name}: ${JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value)}`)
    .join(', ');
  const path = request.path.length > 300 ? `${request.path.slice(0, 300)}…` : request.path;
  return `${request.method} ${path}${headers ? ` [${headers}]` : ''}${body}`;
}

function judge(label: string, request: ProbeRequest, prediction: Prediction, answer: ProbeAnswer): Outcome {
  const faults: string[] = [];
  if (answer.status >= 500) faults.push(`answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  else if (prediction.kind === 'host-404') {
    if (answer.status !== 404 || answer.text !== '') faults.push(`no function's route matches, yet it answered ${answer.status}`);
  } else if (prediction.kind === 'reject') {
    if (answer.status !== prediction.status) faults.push(`expected ${prediction.status} (${prediction.why}), got ${answer.status}: ${answer.text.slice(0, 300)}`);
    else faults.push(...problemFaults(answer));
  } else if (prediction.kind === 'answer' && answer.status >= 400) {
    faults.push(...problemFaults(answer));
  }
  if (prediction.kind === 'reject' || prediction.kind === 'answer') {
    const route = apiRoutes.find((candidate) => candidate.name === prediction.route);
    if (route && answer.headers['content-type']?.includes('json') && answer.status >= 400) {
      let body: unknown;
      try {
        body = JSON.parse(answer.text);
      } catch {
        body = answer.text;
      }
      for (const problem of validator.check(`/api/${route.path}`, route.method, answer.status, answer.headers['content-type'], body)) contractProblems.add(problem);
    }
  }
  return { request, label, prediction, answer, faults };
}

async function send(label: string, request: ProbeRequest): Promise<Outcome> {
  tally.requests += 1;
  try {
    return judge(label, request, predict(request), await probe(env.host.port, request));
  } catch (error) {
    throw new Error(`${label}: ${String(error)}\n    ${describeRequest(request)}`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------
// Requests for a route.

/** Never sent when the route's declaration would accept them: they would end the fixtures. */
const DESTRUCTIVE = new Set(['customers-delete', 'connections-disconnect', 'mailboxes-remove']);

function pathOf(route: ApiRoute<ApiServices>, params: Record<string, string>, query = ''): string {
  return `/api/${route.path.replace(/\{(\w+)\}/g, (_, name: string) => params[name] ?? encodeSegment(fixtures[name] ?? ''))}${query}`;
}

function authorized(extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${apiKey}`, ...extra };
}

/** A request the route takes (when the fixtures allow), the starting point of every variation. */
function validRequest(route: ApiRoute<ApiServices>): ProbeRequest {
  const sample = validBodies()[route.name];
  if (route.upload) return { method: route.method, path: pathOf(route, {}), headers: authorized({ 'content-type': 'text/plain' }), body: 'hello' };
  if (sample === undefined) return { method: route.method, path: pathOf(route, {}), headers: route.authenticated ? authorized() : {} };
  return { method: route.method, path: pathOf(route, {}), headers: authorized({ 'content-type': 'application/json' }), body: JSON.stringify(sample) };
}

function validBodies(): Record<string, unknown> {
  const domain = contoso.domain;
  return {
    'customers-put': { displayName: 'Acme Corporation', tags: { plan: 'pro', region: 'eu' } },
    'connections-create': {
      mode: 'application',
      transports: { send: 'graph', receive: 'graph' },
      appId: 'default',
      displayName: 'Support',
      tags: { team: 'support' },
      mailboxes: [{ address: `helpdesk@${domain}`, displayName: 'Help desk', kind: 'shared', receive: { folders: ['Inbox'], intervalSeconds: 300 } }],
    },
    'connections-update': { tags: { team: 'support', old: null } },
    'connections-check': { mailboxes: [mailboxAddress] },
    'connections-consent-link': { purpose: 'connect' },
    'mailboxes-add': { address: `sales@${domain}`, displayName: 'Sales', kind: 'shared', receive: { folders: ['Inbox', 'Orders'], intervalSeconds: 120 } },
    'mailboxes-update': { receive: { folders: ['Inbox'], intervalSeconds: 600, deleteAfterReceive: false } },
    'messages-send': {
      from: mailboxAddress,
      to: [`adele@${domain}`, { address: `bob@${domain}`, name: 'Bob Kelly' }],
      cc: [{ address: `carol@${domain}`, name: 'Carol' }],
      bcc: [`audit@${domain}`],
      replyTo: [{ address: `replies@${domain}`, name: 'Replies' }],
      subject: 'Your ticket',
      text: 'Hello',
      html: '<p>Hello <img src="cid:logo"></p>',
      headers: { 'X-Ticket': '42', 'List-Id': '<support.contoso.example>' },
      inReplyTo: '<first@customer.example>',
      references: ['<first@customer.example>'],
      attachments: [
        { filename: 'notes.txt', contentType: 'text/plain', content: 'aGVsbG8=' },
        { filename: 'logo.png', contentType: 'image/png', content: 'iVBORw==', inline: true, contentId: 'logo' },
      ],
      sendAt: new Date(Date.now() + 3_600_000).toISOString(),
      saveToSentItems: true,
    },
    'events-replay-failed': { since: '2020-01-01T00:00:00Z' },
  };
}

const CRLF_INJECTIONS = ['x\r\nBcc: victim@evil.example', 'x\nX-Injected: 1', 'x\rX-Injected: 1', 'x\u0000y'];
const UNICODE_EDGES = [
  '\ud800', 'a\udfffb', '\u202efdp.exe', 'a\u2028b\u2029c', '\ufeffx', 'x\u200by', 'ａｃｍｅ', 'e\u0301\u0301\u0301', '😀'.repeat(64),
  '\u0085next', '%0d%0aX-Injected:%201', '<script>alert(1)</script>', "' or PartitionKey ne '", '', ' ', '\t', 'x'.repeat(70_000),
];
const WRONG_TYPES: unknown[] = [null, 42, true, [], {}, 'text'];

/** Every path to a value in `value`, with the value there. */
function leaves(value: unknown, path: (string | number)[] = []): { path: (string | number)[]; value: unknown }[] {
  if (Array.isArray(value)) return [{ path, value }, ...value.flatMap((item, i) => leaves(item, [...path, i]))];
  if (value !== null && typeof value === 'object') return [{ path, value }, ...Object.entries(value).flatMap(([key, item]) => leaves(item, [...path, key]))];
  return [{ path, value }];
}

function withValue(value: unknown, path: (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return (value as unknown[]).map((item, i) => (i === head ? withValue(item, rest, replacement) : item));
  const record = value as Record<string, unknown>;
  return { ...record, [String(head)]: withValue(record[String(head)], rest, replacement) };
}

function without(value: unknown, path: (string | number)[]): unknown {
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1];
  const parent = leaves(value).find((leaf) => leaf.path.join('\u0000') === parentPath.join('\u0000'))?.value;
  if (Array.isArray(parent)) return withValue(value, parentPath, parent.filter((_, i) => i !== last));
  const { [String(last)]: _removed, ...rest } = parent as Record<string, unknown>;
  return withValue(value, parentPath, rest);
}

/** Look-alike characters in an address: Cyrillic о and ѕ, a fullwidth @, a trailing dot, a CR/LF. */
function homoglyphs(address: string): string[] {
  return [address.replace(/o/g, 'о'), address.replace(/^s|s(?=[^@]*@)/, 'ѕ'), address.replace('@', '＠'), `${address}.`, `${address}\r\nBcc: victim@evil.example`, address.toUpperCase()];
}

interface Case {
  label: string;
  request: ProbeRequest;
}

function fixedCases(route: ApiRoute<ApiServices>): Case[] {
  const valid = validRequest(route);
  const cases: Case[] = [];
  const add = (label: string, request: Partial<ProbeRequest>) => cases.push({ label, request: { ...valid, ...request } });
  const headersWith = (headers: Record<string, string>) => ({ ...Object.fromEntries(Object.entries(valid.headers ?? {}).filter(([name]) => !(name in headers) && name !== 'authorization')), ...headers });

  // Credentials: checked before anything else.
  if (route.authenticated) {
    add('no credentials', { headers: headersWith({}) });
    add('a malformed credential', { headers: headersWith({ authorization: 'Bearer not-a-credential' }) });
    add('an unknown API key', { headers: headersWith({ authorization: `Bearer m365c_abcdefghijkl_${'A'.repeat(43)}` }) });
    add('the API key with one character changed', { headers: headersWith({ authorization: `Bearer ${apiKey.slice(0, -1)}${apiKey.endsWith('A') ? 'B' : 'A'}` }) });
    add('Basic credentials', { headers: headersWith({ authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` }) });
    add('an unsigned token', { headers: headersWith({ authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"sub":"${CUSTOMER}"}`).toString('base64url')}.` }) });
    add('Latin-1 bytes in X-API-Key', { headers: headersWith({ 'x-api-key': `m365c_\u00e9\u00ff${'\u00e0'.repeat(40)}` }) });
    add('an 8 KB credential', { headers: headersWith({ authorization: `Bearer ${'A'.repeat(8000)}` }) });
    add('no credentials and malformed JSON', { headers: headersWith({ 'content-type': 'application/json' }), body: '{"oops":' });
  }

  // Ids in the path.
  const BAD_IDS = [
    'x', 'con_01arz3ndektsv4rrffq69g5fav', 'mbx_01ARZ3NDEKTSV4RRFFQ69G5FAV', `con_${'0'.repeat(27)}`, '..', '-acme', 'a'.repeat(129), 'a'.repeat(5000),
    'ａｃｍｅ', '\u202eemca', 'acme\u0000', 'acme\r\nX-Injected: 1', '\ud800', "acme' or PartitionKey ne '", 'acme%2Fglobex', '%E0%A4%A',
  ];
  const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1] ?? '');
  for (const name of names) {
    // Every bad id in the last parameter; the ones before it (checked as the last one of a shorter route) get a few.
    for (const bad of name === names.at(-1) ? BAD_IDS : BAD_IDS.filter((_, i) => i % 3 === 0)) {
      // Ones with % are sent as written (a bad escape, an encoded slash).
      const raw = bad.includes('%') ? bad : encodeSegment(bad);
      add(`${name} = ${JSON.stringify(bad.length > 40 ? `${bad.slice(0, 20)}… (${bad.length})` : bad)}`, { path: pathOf(route, { [name]: raw }) });
    }
    if (route.method !== 'DELETE') add(`${name} traversal`, { path: pathOf(route, { [name]: '..%2F..%2F' }) });
  }

  // The query string.
  if (route.query) {
    const shape = (route.query as unknown as { shape: Record<string, unknown> }).shape;
    const BAD_QUERY = ['', '-1', '101', 'NaN', '１０', 'x'.repeat(5000), 'a\r\nb', '\ud800', '2020-13-45T25:61:00Z', "' or 1 eq 1"];
    for (const key of Object.keys(shape)) {
      for (const bad of BAD_QUERY) add(`?${key}=${JSON.stringify(bad.slice(0, 30))}`, { path: pathOf(route, {}, `?${key}=${encodeSegment(bad)}`) });
      add(`?${key} twice`, { path: pathOf(route, {}, `?${key}=1&${key}=2`) });
    }
    if ('cursor' in shape) {
      for (const list of ['customers', 'connections', 'mailboxes', 'events']) {
        for (const token of ['x', Buffer.from(JSON.stringify({ nextRowKey: 1 })).toString('base64'), Buffer.from(JSON.stringify({ nextPartitionKey: 'globex', nextRowKey: '' })).toString('base64')]) {
          const cursor = Buffer.from(JSON.stringify({ l: list, t: token })).toString('base64url');
          cases.push({ label: `a forged ${list} cursor`, request: { ...valid, path: pathOf(route, {}, `?cursor=${cursor}`) } });
        }
      }
    }
  }

  // Headers the route reads.
  if (route.headers && 'idempotency-key' in (route.headers as unknown as { shape: Record<string, unknown> }).shape) {
    for (const bad of ['', 'has space', 'tab\tinside', '\u00e9t\u00e9', 'x'.repeat(256), '\u0080']) add(`Idempotency-Key ${JSON.stringify(bad.slice(0, 20))}`, { headers: { ...valid.headers, 'idempotency-key': bad } });
  }

  // Bodies.
  const sample = validBodies()[route.name];
  if (route.upload) {
    add('an empty upload', { body: '' });
    add('a 256-character Content-Type', { headers: authorized({ 'content-type': `text/${'x'.repeat(251)}` }) });
    add('a JSON upload', { headers: authorized({ 'content-type': 'application/json' }), body: '{"not":"really a file"}' });
    return cases;
  }
  if (!route.body) {
    add('a JSON body where none is taken', { headers: { ...valid.headers, 'content-type': 'application/json' }, body: '{}' });
    add('a JSON null where none is taken', { headers: { ...valid.headers, 'content-type': 'application/json' }, body: 'null' });
    add('a text body where none is taken', { headers: { ...valid.headers, 'content-type': 'text/plain' }, body: 'hello' });
    add('a body over the limit where none is taken', { headers: { ...valid.headers, 'content-type': 'application/json' }, body: `"${'x'.repeat(MAX_BODY_BYTES)}"` });
    return cases;
  }

  const jsonHeaders = { ...valid.headers, 'content-type': 'application/json' };
  const MALFORMED = [
    '{', '{"a":', '{"a":1,}', "{'a':1}", '{"a":1}}', '[1,2', 'nul', 'NaN', 'undefined', '\ufeff{}', '{"a":"\\ud800', '{"a":"\\x41"}', '{"a":01}',
    '{"a":"tab\tinside"}', '{}{}', '// comment\n{}', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, `{"a":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`,
  ];
  for (const text of MALFORMED) add(`malformed JSON ${JSON.stringify(text.slice(0, 24))}`, { headers: jsonHeaders, body: text });
  for (const value of [null, 0, 'text', [], [sample], true]) add(`a JSON ${JSON.stringify(value).slice(0, 20)} body`, { headers: jsonHeaders, body: JSON.stringify(value) });
  add('no body', { headers: jsonHeaders, body: undefined });
  add('invalid UTF-8 bytes', { headers: jsonHeaders, body: Buffer.concat([Buffer.from('{"displayName":"'), Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff]), Buffer.from('"}')]) });
  add('prototype pollution', { headers: jsonHeaders, body: `{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}}}` });
  const limit = route.maxBodyBytes ?? MAX_BODY_BYTES;
  // 64 MB for messages: still sent once, as the limit is what this checks.
  add(`a body of ${limit + 1} bytes`, { headers: jsonHeaders, body: `{"displayName":"${'x'.repeat(limit - 16)}"}` });

  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonx', 'json', 'text/json', 'application/json-seq', '']) {
    add(`Content-Type ${JSON.stringify(type)}`, { headers: { ...valid.headers, 'content-type': type } });
  }
  add('no Content-Type', { headers: Object.fromEntries(Object.entries(valid.headers ?? {}).filter(([name]) => name !== 'content-type')) });

  // Fields: missing, extra, of the wrong type, too long, with CR/LF and Unicode edge cases.
  const body = (value: unknown) => ({ headers: jsonHeaders, body: JSON.stringify(value) });
  const all = leaves(sample).filter((leaf) => leaf.path.length > 0);
  all.forEach((leaf, index) => {
    const where = `/${leaf.path.join('/')}`;
    const top = leaf.path.length === 1;
    add(`without ${where}`, body(without(sample, leaf.path)));
    for (const wrong of top ? WRONG_TYPES : WRONG_TYPES.slice(0, 2)) add(`${where} = ${JSON.stringify(wrong)}`, body(withValue(sample, leaf.path, wrong)));
    if (typeof leaf.value === 'string') {
      const edges = [...CRLF_INJECTIONS, ...UNICODE_EDGES.filter((_, i) => (i + index) % 6 === 0), 'x'.repeat(70_000)];
      if (leaf.value.includes('@')) edges.push(...homoglyphs(leaf.value));
      for (const edge of edges) add(`${where} = ${JSON.stringify(edge.slice(0, 24))}${edge.length > 24 ? `… (${edge.length})` : ''}`, body(withValue(sample, leaf.path, edge)));
    }
    if (top && Array.isArray(leaf.value) && leaf.value.length > 0) add(`${where} with 1001 items`, body(withValue(sample, leaf.path, Array.from({ length: 1001 }, (): unknown => (leaf.value as unknown[])[0]))));
    if (leaf.value !== null && typeof leaf.value === 'object' && !Array.isArray(leaf.value)) {
      add(`${where} with an extra member`, body(withValue(sample, leaf.path, { ...leaf.value, 'extra\r\nX-Injected': 'x' })));
    }
  });
  add('an extra top-level member', body({ ...(sample as object), unexpected: true }));
  add('100 000 extra members', body({ ...(sample as object), ...Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v'])) }));
  return cases;
}

// fast-check: near-valid requests for the route, with hostile strings where they do the most harm.

const HOSTILE_UNIT = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('\r', '\n', '\u0000', '\ud800', '\udfff', '\u202e', '\u2028', '\ufeff', '\u200b', '"', '\\', '/', '%', '?', '#', '.', '@', '<', '>', "'", ' ', '\t', 'é', 'ѕ', 'о', '＠', '😀', 'e\u0301') },
  { weight: 3, arbitrary: fc.constantFrom('a', 'Z', '0', '-', '_', ':') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
);
const hostileString = fc.string({ unit: HOSTILE_UNIT, maxLength: 40 });
/** Header values: what Node's client can put on the wire (tab, printable ASCII, Latin-1). */
const headerString = fc.string({ unit: fc.oneof(fc.constantFrom('\t', ' ', 'é', '\u00ff', '\u0080'), fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c))), maxLength: 300 });
const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), hostileString);

function generatedRequest(route: ApiRoute<ApiServices>): fc.Arbitrary<{ label: string; request: ProbeRequest }> {
  const valid = validRequest(route);
  const paramNames = [...route.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1] ?? '');
  const params = fc.record(Object.fromEntries(paramNames.map((name) => [name, fc.oneof({ weight: 4, arbitrary: fc.constant(encodeSegment(fixtures[name] ?? '')) }, { weight: 1, arbitrary: hostileString.map(encodeSegment) })])));
  const queryKeys = Object.keys((route.query as unknown as { shape?: Record<string, unknown> } | undefined)?.shape ?? {});
  const query = queryKeys.length === 0 ? fc.constant('') : fc.dictionary(fc.constantFrom(...queryKeys, 'extra'), hostileString, { maxKeys: 3 }).map((entries) => {
    const pairs = Object.entries(entries).map(([key, value]) => `${key}=${encodeSegment(value)}`);
    return pairs.length === 0 ? '' : `?${pairs.join('&')}`;
  });
  const credential = fc.oneof({ weight: 6, arbitrary: fc.constant<Record<string, string>>({ authorization: `Bearer ${apiKey}` }) }, { weight: 1, arbitrary: headerString.map((value) => ({ authorization: `Bearer ${value}` })) });
  const sample = validBodies()[route.name];
  let body: fc.Arbitrary<{ contentType: string; body?: string | Buffer }>;
  if (route.upload) {
    body = fc.record({ contentType: fc.oneof(fc.constant('application/pdf'), headerString), body: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) });
  } else if (sample !== null && typeof sample === 'object') {
    const members = Object.fromEntries(Object.entries(sample).map(([key, value]) => [key, fc.oneof({ weight: 3, arbitrary: fc.constant(value) }, { weight: 1, arbitrary: anyJson })]));
    // Each member may be missing, and an extra one may come along.
    const nearValid = fc.record({ ...members, extra: anyJson }, { requiredKeys: [] });
    body = fc.record({
      contentType: fc.oneof({ weight: 8, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: headerString }),
      body: fc.oneof({ weight: 4, arbitrary: nearValid.map((value) => JSON.stringify(value)) }, { weight: 1, arbitrary: anyJson.map((value) => JSON.stringify(value)) }, { weight: 1, arbitrary: fc.string({ maxLength: 60 }) }),
    });
  } else {
    body = fc.oneof(fc.constant({ contentType: 'application/json' }), fc.record({ contentType: fc.oneof(fc.constant('application/json'), headerString), body: anyJson.map((value) => JSON.stringify(value)) }));
  }
  const idempotencyKey = route.headers ? fc.option(headerString, { nil: undefined }) : fc.constant(undefined);
  return fc.record({ params, query, credential, body, idempotencyKey }).map(({ params: values, query: search, credential: auth, body: content, idempotencyKey: key }) => {
    const headers: Record<string, string> = {
      ...(route.authenticated && auth),
      ...(content.body !== undefined && { 'content-type': content.contentType }),
      ...(key !== undefined && { 'idempotency-key': key }),
    };
    const request: ProbeRequest = { method: valid.method, path: pathOf(route, values, search), headers, ...(content.body !== undefined && { body: content.body }) };
    return { label: 'generated', request };
  });
}

// ---------------------------------------------------------------------------------------------
// Running a route's cases.

async function inParallel<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  }));
  return results;
}

function report(outcomes: readonly Outcome[]): string[] {
  return outcomes.filter((outcome) => outcome.faults.length > 0).map((outcome) => `${outcome.label}: ${outcome.faults.join('; ')}\n    ${describeRequest(outcome.request)}`);
}

/** Sends each request alone between two snapshots; the ones that changed storage, with what they changed. */
async function whichStored(cases: readonly Case[], why: string): Promise<string[]> {
  const found: string[] = [];
  for (const c of cases) {
    const before = await snapshotStorage(env.services.storage);
    const outcome = await send(c.label, c.request);
    const changes = storageChanges(before, await snapshotStorage(env.services.storage));
    if (changes.length > 0) found.push(`${c.label}: ${why} (answered ${outcome.answer.status}), yet stored ${changes.join(', ')}\n    ${describeRequest(c.request)}`);
  }
  return found;
}

/**
 * Sends everything the declaration refuses, in parallel between two snapshots that must be equal
 * (for a GET, everything: reading stores nothing); on a difference each is sent again alone to
 * name the one that stored. What the declaration accepts goes one by one (no races between them);
 * those answered with a 4xx are sent again between two snapshots: a refusal stores nothing.
 */
async function exercise(route: ApiRoute<ApiServices>, cases: readonly Case[], generated: readonly Case[]): Promise<string[]> {
  const failures: string[] = [];
  const all = [...cases, ...generated];
  const refused = all.filter((c) => predict(c.request).kind !== 'answer');
  const accepted = all.filter((c) => predict(c.request).kind === 'answer');
  if (DESTRUCTIVE.has(route.name)) tally.skipped += accepted.length;
  const sendable = DESTRUCTIVE.has(route.name) ? [] : accepted;
  const readOnly = route.method === 'GET';
  tally.rejected += refused.length;
  tally.answered += sendable.length;

  const batch = readOnly ? [...refused, ...sendable] : refused;
  const before = await snapshotStorage(env.services.storage);
  failures.push(...report(await inParallel(batch, 6, (c) => send(c.label, c.request))));
  const changes = storageChanges(before, await snapshotStorage(env.services.storage));
  if (changes.length > 0) {
    const culprits = await whichStored(batch, readOnly ? 'a read' : 'refused by the declaration');
    failures.push(...(culprits.length > 0 ? culprits : [`storage changed while ${route.name} refused requests, but no one request changes it alone: ${changes.join(', ')}`]));
  }
  if (readOnly) return failures;

  const answered: Outcome[] = [];
  for (const c of sendable) answered.push(await send(c.label, c.request));
  failures.push(...report(answered));
  const refusedByHandler = answered.filter((outcome) => outcome.answer.status >= 400).map((outcome) => ({ label: outcome.label, request: outcome.request }));
  if (refusedByHandler.length > 0) {
    const again = await snapshotStorage(env.services.storage);
    const repeated = await inParallel(refusedByHandler, 1, (c) => send(c.label, c.request));
    const changed = storageChanges(again, await snapshotStorage(env.services.storage));
    if (changed.length > 0) {
      // A repeat that now succeeds (the first try lost a race) changes storage rightly; the others must not.
      const stillRefused = refusedByHandler.filter((_, i) => (repeated[i]?.answer.status ?? 0) >= 400);
      failures.push(...(await whichStored(stillRefused, 'refused by the route')).filter((line) => !/answered [23]\d\d/.test(line)));
    }
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------

/** A received message of the mailbox, as ingest keeps one: its row and its MIME. */
async function receivedMessage(connection: Connection, mailboxId: string): Promise<string> {
  const id = derivedId('rcv', [connection.customerId, mailboxId, 'graph:AAMk-bad-input']);
  const receivedAt = new Date();
  const blobName = InboxContent.blobName(receivedAt, connection.customerId, id);
  const mime = 'From: a@customer.example\r\nSubject: hi\r\nMessage-ID: <r1@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/csv; name=a.csv\r\nContent-Disposition: attachment; filename=a.csv\r\n\r\nx,y\r\n--b--\r\n';
  await env.services.inboxContent.put(blobName, Buffer.from(mime));
  await env.services.repositories.inbox.create(keys.inboundMessage(connection.customerId, id), {
    id, customerId: connection.customerId, connectionId: connection.id, mailboxId, mailbox: mailboxAddress, transport: 'graph', folder: 'Inbox', eventId: newId('evt'), emitted: true,
    receivedAt: receivedAt.toISOString(), size: mime.length, internetMessageId: '<r1@customer.example>', subject: 'hi', blobName,
    rawExpiresAt: new Date(receivedAt.getTime() + 86_400_000).toISOString(), attachments: [{ index: 0, filename: 'a.csv', contentType: 'text/csv', size: 3, inline: false }],
  });
  return id;
}

/** Queue- and timer-triggered functions of the app, from its entry files: switched off here. */
async function backgroundFunctions(): Promise<string[]> {
  const names: string[] = [];
  for (const file of await readdir(join(root, 'functions'))) {
    const source = await readFile(join(root, 'functions', file), 'utf8');
    for (const match of source.matchAll(/app\.(?:timer|storageQueue)\(\s*'([^']+)'/g)) names.push(match[1] ?? '');
  }
  return names;
}

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'bad-input-'));
  azurite = await startAzuriteOnFreePorts();
  const disabled = Object.fromEntries((await backgroundFunctions()).map((name) => [`AzureWebJobs.${name}.Disabled`, 'true']));
  env = await startConnectEnvironment({ storageConnectionString: azurite.connectionString, env: { ALLOW_ROPC: 'true', LOG_LEVEL: 'error', ...disabled } });
  hostRoutes = env.host.functions
    .filter((fn) => fn.trigger === 'http')
    .map((fn) => ({ name: fn.name, methods: new Set(fn.methods ?? []), route: compileRoute(fn.detail.replace(/^\/api\//, '')) }))
    .sort((a, b) => compareRoutes(a.route, b.route));
  kit = await sendTestKit(env);
  apiKey = kit.authorization.replace(/^Bearer /, '');
  contoso = await env.createDirectory('Contoso Bad Input');
  fabrikam = await env.createDirectory('Fabrikam Bad Input');
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
  mailboxAddress = `support@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: mailboxAddress, displayName: 'Support' });
  await env.createConnection({ customerId: CUSTOMER, mode: 'delegated' });
  application = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [mailboxAddress]);
  const mailbox = await mailboxOf(env, application, mailboxAddress);
  const events = await env.services.repositories.events.all(CUSTOMER);
  const upload = await probe(env.host.port, { method: 'POST', path: `/api/v1/customers/${CUSTOMER}/connections/${application.id}/attachments`, headers: authorized({ 'content-type': 'text/plain' }), body: 'hi' });
  expect(upload.status).toBe(201);
  fixtures = {
    customerId: CUSTOMER,
    connectionId: application.id,
    mailboxId: mailbox.id,
    eventId: events[0]?.id ?? newId('evt'),
    messageId: await receivedMessage(application, mailbox.id),
    index: '0',
  };
  validator = new OpenApiValidator(JSON.parse((await probe(env.host.port, { method: 'GET', path: '/api/openapi.json' })).text) as OpenApiDocument);
}, 120_000);

afterAll(async () => {
  closeProbes();
  await env.stop();
  await azurite.stop();
  await rm(scratch, { recursive: true, force: true });
  console.info(`bad input: ${tally.requests} requests (${tally.generated} generated by fast-check, seed ${SEED}): ${tally.rejected} refused by the declaration, ${tally.answered} accepted by it, ${tally.skipped} accepted ones not sent (destructive)`);
  if (contractProblems.size > 0) console.info(`answers the OpenAPI document does not describe:\n  ${[...contractProblems].sort().join('\n  ')}`);
});

describe('every vendor API route, from the route table', () => {
  it('covers every route, and the OpenAPI document describes exactly these', async () => {
    const document = JSON.parse((await probe(env.host.port, { method: 'GET', path: '/api/openapi.json' })).text) as OpenApiDocument;
    const documented = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
    expect(documented.sort()).toEqual(apiRoutes.map((route) => `${route.method} /api/${route.path}`).sort());
    const registered = env.host.functions.filter((fn) => fn.trigger === 'http' && !fn.name.startsWith('connect-') && !fn.name.startsWith('graph-'));
    expect(registered.map((fn) => fn.name).sort()).toEqual(apiRoutes.map((route) => route.name).sort());
  });

  it('sees what a request could store: a changed entity, a queued message, a new blob (the snapshots work)', async () => {
    const before = await snapshotStorage(env.services.storage);
    await env.services.repositories.customers.update(keys.customer(CUSTOMER), (current) => current ?? UNCHANGED);
    await env.services.storage.queueService.getQueueClient('send-mail').sendMessage('eyJ0ZXN0IjoxfQ==');
    await env.services.storage.blobService.getContainerClient('uploads').uploadBlockBlob('snapshot-check', 'x', 1);
    expect(storageChanges(before, await snapshotStorage(env.services.storage))).toEqual(['+ blob uploads snapshot-check', '~ queue send-mail', `~ table customers customer ${CUSTOMER}`]);
  });

  for (const route of apiRoutes) {
    it(`${route.name}: ${route.method} /api/${route.path}`, async () => {
      const cases = fixedCases(route);
      const generated = fc.sample(generatedRequest(route), { seed: SEED + apiRoutes.indexOf(route), numRuns: RUNS });
      tally.generated += generated.length;
      const failures = await exercise(route, cases, generated);
      expect(failures, `FC_SEED=${SEED} FC_RUNS=${RUNS}\n${failures.join('\n')}`).toEqual([]);
    });
  }
});

describe('raw HTTP that no client should send', () => {
  it('CR or LF inside a header value, a NUL, an obsolete line folding, a huge header: refused before the app, nothing stored', async () => {
    const before = await snapshotStorage(env.services.storage);
    const path = `/api/v1/customers/${CUSTOMER}`;
    const body = '{"displayName":"Injected"}';
    const head = (headers: string) => Buffer.from(`PUT ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${headers}\r\n${body}`, 'latin1');
    const raws = [
      head(`Authorization: Bearer ${apiKey}\rX-Injected: 1\r\n`),
      head(`Authorization: Bearer ${apiKey}\nX-Injected: 1\r\n`),
      head(`Authorization: Bearer ${apiKey}\r\nIdempotency-Key: a\rb\r\n`),
      head(`Authorization: Bearer ${apiKey}\u0000\r\n`),
      head(`Authorization: Bearer\r\n ${apiKey}\r\n`),
      head(`Authorization: Bearer ${apiKey}\r\nX-Big: ${'x'.repeat(70_000)}\r\n`),
      Buffer.from(`PUT ${path}\r\nX-Injected: 1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, 'latin1'),
    ];
    for (const raw of raws) {
      const answer = await rawProbe(env.host.port, raw);
      expect(answer.status, raw.toString('latin1').slice(0, 120)).toBeGreaterThanOrEqual(400);
      expect(answer.status, raw.toString('latin1').slice(0, 120)).toBeLessThan(500);
    }
    expect(storageChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);
    expect((await env.services.repositories.customers.get(keys.customer(CUSTOMER)))?.value.displayName).not.toBe('Injected');
  });
});

// ---------------------------------------------------------------------------------------------
// The connect pages and Graph's URLs: HTML for people and plain answers for Graph, so not
// problem+json; what holds for them is no 5xx, no stack trace, no redirect off the site, nothing stored.

function pageFaults(answer: ProbeAnswer): string[] {
  const faults: string[] = [];
  if (answer.status >= 500) faults.push(`answered ${answer.status}`);
  if (/\bat [\w.<>]+ \(|Error: |node:internal|\/src\//.test(answer.text)) faults.push('the page shows a stack trace or source path');
  const location = answer.headers.location;
  if (location !== undefined && !location.startsWith('/api/connect/')) faults.push(`redirects to ${location}`);
  return faults;
}

const GARBAGE_SEGMENTS = ['a.b', 'A'.repeat(43), '%00', '%0D%0ASet-Cookie:%20a=b', '%ED%A0%80', '%E2%80%AEknil', 'x'.repeat(5000), '%3Cscript%3Ealert(1)%3C%2Fscript%3E'];
const GARBAGE_QUERIES = ['', '?lang=%00', '?lang=%0d%0aSet-Cookie:%20a=b', '?state=forged&admin_consent=True&tenant=x&error=access_denied&error_description=%0d%0aX-Injected:%201', `?validationToken=${'x'.repeat(5000)}&lang=${'x'.repeat(3000)}`];
const GARBAGE_BODIES: { type?: string; body?: string | Buffer }[] = [
  {},
  { type: 'text/plain', body: 'garbage' },
  { type: 'application/x-www-form-urlencoded', body: 'state=forged&code=x' },
  { type: 'application/x-www-form-urlencoded', body: `state=${'A'.repeat(43)}&code=${'x'.repeat(70_000)}` },
  { type: 'application/x-www-form-urlencoded', body: 'state=%ED%A0%80&error=%0d%0a' },
  { type: 'application/json', body: '{"value":' },
  { type: 'application/json', body: '{"value":[{"subscriptionId":""}]}' },
  { type: 'application/json', body: `{"value":[{"subscriptionId":"${'s'.repeat(201)}"}]}` },
  { type: 'application/json', body: `{"value":${JSON.stringify(Array.from({ length: 1001 }, () => ({ subscriptionId: 'x' })))}}` },
  { type: 'application/json', body: `{"value":[{"subscriptionId":"x","clientState":"${'c'.repeat(257)}"}]}` },
  { type: 'application/json', body: `{"value":"${'x'.repeat(1024 * 1024)}"}` },
  { type: 'application/json', body: Buffer.from([0xff, 0xfe, 0x00, 0x7b]) },
];

describe('connect pages and Graph notification URLs, every one the host registers', () => {
  it('garbage in every path parameter, query and body: never a 5xx, a stack trace or a redirect elsewhere, nothing stored', async () => {
    const others = env.host.functions.filter((fn) => fn.trigger === 'http' && (fn.name.startsWith('connect-') || fn.name.startsWith('graph-')));
    expect(others.length).toBeGreaterThanOrEqual(9);
    const requests: { fn: string; request: ProbeRequest }[] = [];
    for (const fn of others) {
      const template = fn.detail;
      const hasParams = /\{\w+\}/.test(template);
      const paths = hasParams ? GARBAGE_SEGMENTS.map((segment) => template.replace(/\{\w+\}/g, segment)) : [template];
      for (const method of fn.methods ?? []) {
        for (const path of paths) {
          for (const query of GARBAGE_QUERIES) {
            // Every body with the first path only: bodies and paths do not meet anywhere.
            for (const garbage of path === paths[0] && query === '' ? GARBAGE_BODIES : [{}]) {
              requests.push({
                fn: fn.name,
                request: { method, path: `${path}${query}`, headers: garbage.type === undefined ? {} : { 'content-type': garbage.type }, ...(garbage.body !== undefined && { body: garbage.body }) },
              });
            }
          }
        }
      }
    }
    const before = await snapshotStorage(env.services.storage);
    const failures: string[] = [];
    const outcomes = await inParallel(requests, 6, async ({ fn, request }) => ({ fn, request, answer: await probe(env.host.port, request) }));
    tally.requests += outcomes.length;
    for (const { fn, request, answer } of outcomes) {
      const faults = pageFaults(answer);
      if (fn.startsWith('graph-') && !(answer.status === 200 && new URL(request.path, 'http://x').searchParams.has('validationToken')) && answer.status !== 400 && answer.status !== 413 && answer.status !== 404) faults.push(`Graph's URL answered ${answer.status}`);
      if (faults.length > 0) failures.push(`${fn}: ${faults.join('; ')}\n    ${describeRequest(request)}`);
    }
    expect(failures).toEqual([]);
    expect(storageChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);
  });

  it('Graph notifications: fast-check bodies are refused with 400 and store nothing, or taken with 202 and queued with the clientState hashed', async () => {
    const clientStates: string[] = [];
    const notification = fc.record(
      { subscriptionId: fc.oneof(hostileString, fc.uuid()), clientState: fc.oneof(hostileString, fc.string({ minLength: 12, maxLength: 300 })), resource: hostileString, changeType: fc.constantFrom('created', 'updated', 'x'), lifecycleEvent: hostileString },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.record({ value: fc.array(notification, { maxLength: 5 }) }).map((value) => JSON.stringify(value)),
      fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
      hostileString,
    );
    const queue = env.services.storage.queueService.getQueueClient('graph-notification');
    const queued = async () => (await queue.getProperties()).approximateMessagesCount ?? 0;
    const before = await snapshotStorage(env.services.storage);
    let count = await queued();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('notifications', 'lifecycle'), body, async (kind, text) => {
        tally.requests += 1;
        tally.generated += 1;
        const answer = await probe(env.host.port, { method: 'POST', path: `/api/graph/${kind}`, headers: { 'content-type': 'application/json' }, body: text });
        const was = count;
        count = await queued();
        if (answer.status === 202) {
          for (const state of (JSON.parse(text) as { value: { clientState?: string }[] }).value.map((n) => n.clientState)) if (state !== undefined && state.length >= 12) clientStates.push(state);
          return true;
        }
        return answer.status === 400 && count === was;
      }),
      { seed: SEED, numRuns: RUNS * 3 },
    );
    // Graph's URLs write nowhere but their queue.
    expect(storageChanges(before, await snapshotStorage(env.services.storage)).filter((change) => change !== '~ queue graph-notification')).toEqual([]);
    // The queued messages hold no clientState as it was sent.
    const peeked = await queue.peekMessages({ numberOfMessages: 32 });
    const texts = peeked.peekedMessageItems.map((message) => Buffer.from(message.messageText, 'base64').toString('utf8') + message.messageText).join('\n');
    for (const state of clientStates) expect(texts.includes(state), 'a clientState was queued as sent').toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Sign-ins that must not connect anything.

function hasButton(shown: SandboxPage | ArrivedAtApp, text: string): shown is SandboxPage {
  return shown.kind === 'page' && shown.forms.some((form) => form.buttons.some((button) => button.text.includes(text)));
}

async function pickAndAccept(picker: SandboxPage, upn: string): Promise<SandboxPage | ArrivedAtApp> {
  const next = await picker.click(upn);
  return hasButton(next, 'Accept') ? next.click('Accept') : next;
}

/** The authorize URL the landing page's button leads to, held back. */
async function heldAuthorizeUrl(link: string): Promise<URL> {
  const landing = page(await new SandboxBrowser([env.sandbox.browserBase]).open(link));
  return new URL(arrived(await landing.click('Continue to Microsoft')).url);
}

/** The callback a delegated sign-in as `upn` would send, held back; `alter` changes the authorize URL first. */
async function heldCallback(link: string, upn: string, alter: (url: URL) => void = () => undefined): Promise<ArrivedAtApp> {
  const url = await heldAuthorizeUrl(link);
  alter(url);
  const picker = page(await new SandboxBrowser([`${env.baseUrl}/api/connect/callback`]).open(url.toString()));
  return arrived(await pickAndAccept(picker, upn));
}

async function post(url: string, params: URLSearchParams): Promise<SandboxPage> {
  return page(await new SandboxBrowser([]).navigate('POST', new URL(url), params));
}

/** Storage changes, but for the ones a refused sign-in makes by design: its state used up, the result page it shows. */
function unexpectedChanges(before: StorageSnapshot, after: StorageSnapshot): string[] {
  return storageChanges(before, after).filter((change) => !/^~ table signinstates /.test(change) && !/^\+ table connectresults /.test(change));
}

describe('forged, replayed and mixed-up sign-ins; tampered and expired links', () => {
  it('a tampered, re-targeted or expired link shows a page and stores nothing, nor does its start button', async () => {
    const connection = await env.createConnection({ customerId: CUSTOMER, mode: 'delegated' });
    const links = await env.badLinks(connection);
    const before = await snapshotStorage(env.services.storage);
    for (const bad of [links.alteredPayload, links.alteredSignature, links.expired, `${links.genuine}x`, links.genuine.replace(/\.[^.]*$/, ''), `${links.genuine}.extra`]) {
      const shown = page(await new SandboxBrowser([]).open(bad));
      expect(shown.status, bad).toBe(410);
      const start = await probe(env.host.port, { method: 'POST', path: new URL(`${bad}/start`).pathname });
      expect([303, 410], bad).toContain(start.status);
      expect(pageFaults(start)).toEqual([]);
    }
    expect(storageChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);
  });

  it('a forged state, a replayed state and a state of the wrong step are refused; the replay changes nothing', async () => {
    const connection = await env.createConnection({ customerId: CUSTOMER, mode: 'delegated' });
    const callback = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    const state = callback.params.get('state') ?? '';

    let before = await snapshotStorage(env.services.storage);
    for (const forged of [`${state.slice(0, -1)}${state.endsWith('A') ? 'B' : 'A'}`, 'A'.repeat(43), `${state}x`, '', state.toLowerCase()]) {
      const params = new URLSearchParams(callback.params);
      params.set('state', forged);
      expect((await post(callback.url.toString(), params)).status, forged).toBe(410);
    }
    // A sign-in state where the admin-consent callback expects one.
    const wrongStep = await probe(env.host.port, { method: 'GET', path: `/api/connect/admin-callback?admin_consent=True&tenant=${contoso.tenant.id}&state=${state}` });
    expect(wrongStep.status).toBe(303);
    expect(unexpectedChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);

    // Used up by the wrong step: the genuine answer now finds it used.
    const genuine = await post(callback.url.toString(), callback.params);
    expect(genuine.status).toBe(410);
    expect(await env.connection(connection)).toMatchObject({ state: 'pending' });

    const fresh = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    expect((await post(fresh.url.toString(), fresh.params)).heading).toBe('Microsoft 365 is connected');
    before = await snapshotStorage(env.services.storage);
    const tokens = await env.tokenCache(connection.id);
    const replayed = await post(fresh.url.toString(), fresh.params);
    expect(replayed.status).toBe(410);
    expect(storageChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);
    expect(await env.tokenCache(connection.id)).toBe(tokens);
  });

  it('a sign-in result from another tenant than the connection\'s is refused, and the connection keeps its tenant, user and tokens', async () => {
    const connection = await env.createConnection({ customerId: CUSTOMER, mode: 'delegated' });
    const first = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    expect((await post(first.url.toString(), first.params)).heading).toBe('Microsoft 365 is connected');
    const stored = await env.connection(connection);
    const tokens = await env.tokenCache(connection.id);

    // The reconnect asks Microsoft for Contoso's user; the person signs in at Fabrikam all the same.
    const foreign = await heldCallback(await env.link(connection), fabrikam.user.userPrincipalName, (url) => {
      url.searchParams.delete('domain_hint');
      url.searchParams.delete('login_hint');
    });
    const before = await snapshotStorage(env.services.storage);
    const refused = await post(foreign.url.toString(), foreign.params);
    expect(refused.status).toBe(403);
    expect(refused.text).toContain(contoso.tenant.id);
    expect(unexpectedChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);
    expect(await env.connection(connection)).toEqual(stored);
    expect(await env.tokenCache(connection.id)).toBe(tokens);

    // The code of one connection's sign-in with another connection's state: PKCE does not match.
    const other = await env.createConnection({ customerId: CUSTOMER, mode: 'delegated' });
    const forOther = await heldCallback(await env.link(other), fabrikam.user.userPrincipalName);
    const forThis = await heldCallback(await env.link(connection), contoso.user.userPrincipalName);
    const mixed = new URLSearchParams(forOther.params);
    mixed.set('state', forThis.params.get('state') ?? '');
    const beforeMixed = await snapshotStorage(env.services.storage);
    expect((await post(forThis.url.toString(), mixed)).status).toBeGreaterThanOrEqual(400);
    expect(unexpectedChanges(beforeMixed, await snapshotStorage(env.services.storage))).toEqual([]);
    expect(await env.connection(other)).toMatchObject({ state: 'pending' });
    expect(await env.tokenCache(other.id)).toBeUndefined();
  });

  it('an admin-consent answer naming another (consented) tenant is refused and connects nothing', async () => {
    await env.sandbox.control.grantConsent(fabrikam.tenant.id, { clientId: env.clientId });
    const connection = await env.createConnection({ customerId: CUSTOMER, mode: 'application' });
    const held = new SandboxBrowser([`${env.baseUrl}/api/connect/admin-callback`]);
    const signedIn = page(await page(await page(await held.open(await env.link(connection))).click('Continue to Microsoft')).click(contoso.admin.userPrincipalName));
    const atConsent = hasButton(signedIn, contoso.admin.userPrincipalName) ? page(await signedIn.click(contoso.admin.userPrincipalName)) : signedIn;
    const callback = arrived(await atConsent.click('Accept'));
    expect(callback.params.get('tenant')).toBe(contoso.tenant.id);

    const before = await snapshotStorage(env.services.storage);
    for (const tenant of [fabrikam.tenant.id, 'common', '%00', `${contoso.tenant.id}\r\nX-Injected: 1`]) {
      const forged = new URL(callback.url);
      forged.searchParams.set('tenant', tenant);
      const answer = await probe(env.host.port, { method: 'GET', path: `${forged.pathname}${forged.search}` });
      expect(answer.status, tenant).toBe(303);
      expect(pageFaults(answer)).toEqual([]);
    }
    expect(unexpectedChanges(before, await snapshotStorage(env.services.storage))).toEqual([]);
    expect(await env.connection(connection)).toMatchObject({ state: 'pending' });
    expect((await env.connection(connection)).tenantId).toBeUndefined();
  });
});
