import { exportSPKI, generateKeyPair, exportJWK, SignJWT, type CryptoKey } from 'jose';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../../local/azurite.js';
import { startLocalHost, type LocalHost } from '../../local/host/host.js';
import { AdminError, buildAdminCli, type AdminDeps } from '../../src/admin/admin-cli.js';
import type { OpenApiDocument } from '../../src/api/openapi.js';
import { apiRoutes } from '../../src/api/routes/index.js';
import { getServices, type Services } from '../../src/composition.js';
import type { StoredEvent } from '../../src/domain/events.js';
import { derivedId, newId } from '../../src/domain/ids.js';
import { InboxContent } from '../../src/receiving/inbox-content.js';
import { keys } from '../../src/store/repositories.js';
import { provisionStorage } from '../../src/store/provision-storage.js';
import { startKeyServer, type KeyServer } from '../support/key-server.js';
import { OpenApiValidator } from '../support/openapi-validator.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { waitFor } from '../support/wait.js';

/**
 * The vendor API end to end: the real function app (functions/*.ts) in the local host, on an
 * Azurite of its own, administered through the admin CLI, called over HTTP with API keys and
 * signed tokens, delivering events to a webhook receiver that verifies them with the
 * `standardwebhooks` package. Every response is checked against the published OpenAPI document.
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
const ISSUER = 'https://vendor.example/tokens';

let azurite: RunningAzurite;
let host: LocalHost;
let services: Services;
let keyServer: KeyServer;
let receiver: WebhookReceiver;
let validator: OpenApiValidator;
let directory: string;
let signingKey: CryptoKey;
/** The issuer's public key as PEM: what an attacker would use as an HMAC secret. */
let publicKeyPem: string;
const defaultCas = tls.getCACertificates('default');
const contractProblems: string[] = [];

/** API keys made with the CLI: all customers, customer A only, customer B only. */
const credentials = { all: '', a: '', b: '' };
const ids = { a: 'acme', b: 'globex', c: 'initech' };
const secrets = { a: '', c: '' };

async function cli(args: string[], deps?: AdminDeps): Promise<string> {
  const lines: string[] = [];
  const program = buildAdminCli(
    () =>
      Promise.resolve(
        deps ?? {
          repositories: services.repositories,
          webhookSecrets: services.webhookSecrets,
          replay: { events: services.repositories.events, queues: services.queues },
          allowPrivateNetworkUrls: services.config.allowPrivateNetworkUrls,
          now: () => new Date(),
        },
      ),
    { out: (text) => lines.push(text), err: (text) => lines.push(text) },
  );
  await program.parseAsync(['node', 'connector', ...args]);
  return lines.join('\n');
}

interface CallOptions {
  params?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
  credential?: string | null;
}

interface CallResult {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Calls an operation by its name, and checks the answer against the OpenAPI document. */
async function call(name: string, options: CallOptions = {}): Promise<CallResult> {
  const route = apiRoutes.find((r) => r.name === name);
  if (!route) throw new Error(`no route ${name}`);
  const path = route.path.replace(/\{(\w+)\}/g, (_, param: string) => encodeURIComponent(options.params?.[param] ?? ''));
  const url = new URL(`${host.baseUrl}/api/${path}`);
  for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
  const headers: Record<string, string> = { ...options.headers };
  const credential = options.credential === undefined ? credentials.all : options.credential;
  if (credential !== null) headers.authorization = `Bearer ${credential}`;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method: route.method, headers, ...(body !== undefined && { body }) });
  const text = await response.text();
  const parsed: unknown = text === '' ? undefined : /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : text;
  contractProblems.push(...validator.check(`/api/${route.path}`, route.method, response.status, response.headers.get('content-type'), parsed));
  return { status: response.status, headers: response.headers, body: parsed };
}

async function token(claims: Record<string, unknown>, options: { kid?: string; key?: CryptoKey; lifetime?: number; iat?: number } = {}): Promise<string> {
  const iat = options.iat ?? Math.floor(Date.now() / 1000) - 5;
  return new SignJWT({ sub: ids.a, ...claims })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: options.kid ?? 'vendor-key-1' })
    .setIssuer(ISSUER)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetime ?? 300))
    .sign(options.key ?? signingKey);
}

/** A received message of the mailbox, as ingest keeps one: its row and its MIME. */
async function receivedMessage(customerId: string, connectionId: string, mailboxId: string): Promise<string> {
  const id = derivedId('rcv', [customerId, mailboxId, 'graph:AAMk-test']);
  const receivedAt = new Date();
  const blobName = InboxContent.blobName(receivedAt, customerId, id);
  const mime = 'From: a@customer.example\r\nSubject: hi\r\nMessage-ID: <r1@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/csv; name=a.csv\r\nContent-Disposition: attachment; filename=a.csv\r\n\r\nx,y\r\n--b--\r\n';
  await services.inboxContent.put(blobName, Buffer.from(mime));
  await services.repositories.inbox.create(keys.inboundMessage(customerId, id), {
    id, customerId, connectionId, mailboxId, mailbox: 'support@globex.example', transport: 'graph', folder: 'Inbox', eventId: newId('evt'), emitted: true,
    receivedAt: receivedAt.toISOString(), size: mime.length, internetMessageId: '<r1@customer.example>', subject: 'hi', blobName,
    rawExpiresAt: new Date(receivedAt.getTime() + 86_400_000).toISOString(), attachments: [{ index: 0, filename: 'a.csv', contentType: 'text/csv', size: 3, inline: false }],
  });
  return id;
}

function problemType(result: CallResult): unknown {
  return (result.body as { type?: unknown } | undefined)?.type;
}

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'api-test-'));
  // An Azurite of its own: webhook endpoints registered here must not meet other tests' events.
  azurite = await startAzuriteOnFreePorts();
  keyServer = await startKeyServer({ caDirectory: join(directory, 'ca') });
  tls.setDefaultCACertificates([...defaultCas, keyServer.caPem]);
  const pair = await generateKeyPair('RS256', { extractable: true });
  signingKey = pair.privateKey;
  publicKeyPem = await exportSPKI(pair.publicKey);
  keyServer.serve({ body: JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'vendor-key-1', alg: 'RS256', use: 'sig' }] }) });
  receiver = await startWebhookReceiver({ secrets: [] });

  Object.assign(process.env, {
    AzureWebJobsStorage: azurite.connectionString,
    SECRET_STORE: 'local',
    LOCAL_SECRET_STORE_DIR: join(directory, 'secrets'),
    ALLOW_PRIVATE_NETWORK_URLS: 'true',
    WEBHOOK_RETRY_SCHEDULE: '200ms,200ms,200ms,200ms',
    LOG_LEVEL: 'error',
  });
  services = await getServices();
  await provisionStorage(services.storage);

  credentials.all = /m365c_\S+/.exec(await cli(['keys', 'create', '--all', '--name', 'tests']))?.[0] ?? '';
  credentials.a = /m365c_\S+/.exec(await cli(['keys', 'create', '--customer', ids.a]))?.[0] ?? '';
  credentials.b = /m365c_\S+/.exec(await cli(['keys', 'create', '--customer', ids.b]))?.[0] ?? '';
  await cli(['issuers', 'add', '--issuer', ISSUER, '--key-url', keyServer.url, '--all']);
  // Endpoints before any event, so the host's 30-second endpoint cache already knows them.
  secrets.a = /whsec_\S+/.exec(await cli(['webhooks', 'add', '--url', `${receiver.url}/a`, '--customer', ids.a]))?.[0] ?? '';
  secrets.c = /whsec_\S+/.exec(await cli(['webhooks', 'add', '--url', `${receiver.url}/c`, '--customer', ids.c]))?.[0] ?? '';
  receiver.secrets = [secrets.a, secrets.c];

  host = await startLocalHost({ appDir: root, main: 'functions/*.ts', port: 0, hostId: 'api-test' });
  const document = await fetch(`${host.baseUrl}/api/openapi.json`);
  validator = new OpenApiValidator((await document.json()) as OpenApiDocument);
}, 120_000);

afterAll(async () => {
  await host.stop();
  await receiver.close();
  await keyServer.stop();
  await azurite.stop();
  tls.setDefaultCACertificates(defaultCas);
  await rm(directory, { recursive: true, force: true });
});

describe('vendor API', () => {
  it('documents every HTTP function it registers in the OpenAPI document', async () => {
    const document = (await (await fetch(`${host.baseUrl}/api/openapi.json`)).json()) as OpenApiDocument;
    expect(document.openapi).toBe('3.1.0');
    // The connect pages (HTML for people, under /api/connect) and the URLs Graph posts notifications to are not part of the vendor API.
    const http = host.functions.filter((f) => f.trigger === 'http' && !f.name.startsWith('connect-') && !f.name.startsWith('graph-'));
    expect(http.length).toBe(apiRoutes.length);
    for (const fn of http) {
      for (const method of fn.methods ?? []) {
        expect(document.paths[fn.detail]?.[method.toLowerCase()], `${method} ${fn.detail}`).toBeDefined();
      }
    }
  });

  it('accepts an API key for all customers and creates customers under the vendor\'s ids', async () => {
    for (const id of [ids.a, ids.b, ids.c]) {
      const created = await call('customers-put', { params: { customerId: id }, body: { displayName: `Customer ${id}` } });
      expect(created.status).toBe(201);
    }
    const again = await call('customers-put', { params: { customerId: ids.a }, body: { tags: { plan: 'pro' } } });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: ids.a, displayName: `Customer ${ids.a}`, tags: { plan: 'pro' } });
    const listed = await call('customers-list');
    expect((listed.body as { items: { id: string }[] }).items.map((c) => c.id).sort()).toEqual([ids.a, ids.b, ids.c].sort());
  });

  it('accepts a customer\'s API key for that customer only, and lists only that customer', async () => {
    expect((await call('customers-get', { params: { customerId: ids.a }, credential: credentials.a })).status).toBe(200);
    const listed = await call('customers-list', { credential: credentials.a });
    expect((listed.body as { items: { id: string }[] }).items.map((c) => c.id)).toEqual([ids.a]);
  });

  it('accepts a signed token for the customer in sub, whose context claims become tags', async () => {
    const signed = await token({ context: { crm_account: '4711' }, lwicontexts: JSON.stringify({ region: 'eu' }) });
    const created = await call('connections-create', {
      params: { customerId: ids.a },
      body: { mode: 'delegated', tags: { region: 'us' } },
      credential: signed,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ customerId: ids.a, state: 'pending', mode: 'delegated', tags: { crm_account: '4711', region: 'us' } });
    expect(created.headers.get('location')).toMatch(/^\/api\/v1\/customers\/acme\/connections\/con_/);
    expect((await call('customers-get', { params: { customerId: ids.b }, credential: signed })).status).toBe(404);
  });

  describe('refuses with 401 problem+json', () => {
    const unsigned = (header: object, payload: object) =>
      `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;
    const now = () => Math.floor(Date.now() / 1000);

    it.each([
      ['no credentials', () => Promise.resolve(null)],
      ['an unknown API key', () => Promise.resolve(`m365c_abcdefghijkl_${'A'.repeat(43)}`)],
      ['a malformed credential', () => Promise.resolve('not-a-credential')],
      ['an expired token', () => token({}, { iat: now() - 1000, lifetime: 300 })],
      ['a token not yet valid', () => token({ nbf: now() + 600 }, { iat: now() + 590 })],
      ['a token with an unknown kid', () => token({}, { kid: 'someone-elses-key' })],
      ['a token from an unregistered issuer', async () => (await token({})).replace(/^[^.]+\.[^.]+/, (head) => {
        const [h, p] = head.split('.');
        const payload = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>;
        return `${h ?? ''}.${Buffer.from(JSON.stringify({ ...payload, iss: 'https://intruder.example' })).toString('base64url')}`;
      })],
      ['a token with alg none', () => Promise.resolve(unsigned({ alg: 'none', typ: 'JWT', kid: 'vendor-key-1' }, { iss: ISSUER, sub: ids.a, iat: now(), exp: now() + 60 }))],
      ['an HS256 token signed with the issuer\'s own public key as secret', () => {
        const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'vendor-key-1' })).toString('base64url');
        const payload = Buffer.from(JSON.stringify({ iss: ISSUER, sub: ids.a, iat: now(), exp: now() + 60 })).toString('base64url');
        const signature = createHmac('sha256', publicKeyPem).update(`${header}.${payload}`).digest('base64url');
        return Promise.resolve(`${header}.${payload}.${signature}`);
      }],
      ['a tampered token', async () => {
        const [h, p, s] = (await token({})).split('.');
        const payload = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>;
        return `${h ?? ''}.${Buffer.from(JSON.stringify({ ...payload, sub: ids.b })).toString('base64url')}.${s ?? ''}`;
      }],
      ['a token living longer than 10 minutes', () => token({}, { lifetime: 3600 })],
    ])('for %s', async (_what, credential) => {
      const result = await call('customers-get', { params: { customerId: ids.a }, credential: await credential() });
      expect(result.status).toBe(401);
      expect(result.headers.get('content-type')).toBe('application/problem+json');
      expect(result.headers.get('www-authenticate')).toMatch(/^Bearer realm="m365-connector"/);
      expect(problemType(result)).toBe('urn:m365-connector:problem:unauthorized');
    });

    it('for a revoked API key', async () => {
      const key = /m365c_\S+/.exec(await cli(['keys', 'create', '--customer', ids.a]))?.[0] ?? '';
      await cli(['keys', 'revoke', /m365c_([a-z0-9]{12})_/.exec(key)?.[1] ?? '']);
      expect((await call('customers-get', { params: { customerId: ids.a }, credential: key })).status).toBe(401);
    });
  });

  it('answers 404, never 403, for every resource of another customer, on every route', async () => {
    // Customer B's resources exist: a connection, a mailbox and an event.
    const connection = (await call('connections-create', { params: { customerId: ids.b }, body: { mode: 'application' } })).body as { id: string };
    const mailboxId = newId('mbx');
    const at = new Date().toISOString();
    await services.repositories.mailboxes.create(keys.mailbox(ids.b, connection.id, mailboxId), {
      id: mailboxId, customerId: ids.b, connectionId: connection.id, address: 'support@globex.example', kind: 'shared',
      sendTransport: 'graph', receiveTransport: 'imap', createdAt: at, updatedAt: at,
    });
    const events = (await call('events-list', { params: { customerId: ids.b } })).body as { items: StoredEvent[] };
    const eventId = events.items[0]?.id ?? '';
    // And a message B's mailbox received, with an attachment.
    const received = await receivedMessage(ids.b, connection.id, mailboxId);
    const params = { customerId: ids.b, connectionId: connection.id, mailboxId, eventId, messageId: received, index: '0' };
    const bodies: Record<string, unknown> = {
      'customers-put': { displayName: 'taken over' },
      'connections-create': { mode: 'delegated' },
      'connections-update': { tags: { owner: 'intruder' } },
      'events-replay-failed': { since: '2020-01-01T00:00:00Z' },
      'mailboxes-add': { address: 'intruder@globex.example' },
      'messages-send': { to: ['victim@globex.example'], subject: 'intruder', text: 'hi' },
      'attachments-upload': { not: 'really a file' },
      'mailboxes-update': { receive: { intervalSeconds: 600 } },
    };

    const scoped = apiRoutes.filter((route) => route.authenticated && route.path.includes('{customerId}'));
    expect(scoped.map((r) => r.name).sort()).toEqual([
      'attachments-upload',
      'connections-check', 'connections-consent-link', 'connections-create', 'connections-disconnect', 'connections-exchange-setup', 'connections-get',
      'connections-list', 'connections-update', 'customers-delete', 'customers-get', 'customers-put', 'events-get', 'events-list',
      'events-replay', 'events-replay-failed', 'mailboxes-add', 'mailboxes-get', 'mailboxes-list', 'mailboxes-remove', 'mailboxes-update',
      'messages-attachment', 'messages-get', 'messages-raw', 'messages-send',
    ]);
    const asA = [credentials.a, await token({})];
    for (const route of scoped) {
      for (const credential of asA) {
        const result = await call(route.name, { params, credential, ...(bodies[route.name] !== undefined && { body: bodies[route.name] }) });
        expect(result.status, `${route.name} with customer A's ${credential.startsWith('m365c_') ? 'API key' : 'token'}`).toBe(404);
        expect(problemType(result)).toBe('urn:m365-connector:problem:not-found');
      }
    }
    // A's own customer in the path with B's resource ids finds nothing either: reads stay in A's partition.
    const crossed = { ...params, customerId: ids.a };
    const underA = ['connections-get', 'connections-update', 'connections-disconnect', 'connections-consent-link', 'connections-check', 'connections-exchange-setup', 'mailboxes-list', 'mailboxes-get', 'mailboxes-add', 'mailboxes-remove', 'mailboxes-update', 'events-get', 'events-replay', 'messages-send', 'messages-get', 'messages-raw', 'messages-attachment', 'attachments-upload'];
    for (const route of scoped.filter((r) => underA.includes(r.name))) {
      const result = await call(route.name, { params: crossed, credential: credentials.a, ...(bodies[route.name] !== undefined && { body: bodies[route.name] }) });
      expect(result.status, `${route.name} with B's ids under A`).toBe(404);
    }
    // Nothing of B's changed, and B's own key sees all of it.
    for (const route of scoped.filter((r) => r.method === 'GET')) {
      // An application connection that sends and receives over Graph has no Exchange PowerShell: 409.
      const status = route.name === 'connections-exchange-setup' ? 409 : 200;
      expect((await call(route.name, { params, credential: credentials.b })).status, route.name).toBe(status);
    }
    expect((await call('mailboxes-get', { params, credential: credentials.b })).body).not.toHaveProperty('receive');
    const still = (await call('connections-get', { params, credential: credentials.b })).body;
    expect(still).toMatchObject({ state: 'pending', tags: {} });
    expect((await call('customers-get', { params, credential: credentials.b })).body).toMatchObject({ displayName: `Customer ${ids.b}` });
  });

  it('validates requests with field errors and answers unknown operations with 404', async () => {
    const bad = await call('connections-create', { params: { customerId: ids.a }, body: { mode: 'carrier-pigeon', tags: { 'bad key!': 'x' }, extra: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ type: 'urn:m365-connector:problem:validation-error', status: 400 });
    const pointers = (bad.body as { errors: { pointer: string }[] }).errors.map((e) => e.pointer);
    expect(pointers).toEqual(expect.arrayContaining(['/body/mode', '/body/tags/bad key!']));

    expect((await call('connections-create', { params: { customerId: ids.a }, rawBody: '{"mode":' })).status).toBe(400);
    expect((await call('connections-create', { params: { customerId: ids.a }, rawBody: 'mode=delegated', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect((await call('connections-create', { params: { customerId: ids.a }, rawBody: JSON.stringify({ mode: 'delegated', displayName: 'x'.repeat(1024 * 1024) }) })).status).toBe(413);
    expect((await call('connections-list', { params: { customerId: ids.a }, query: { limit: '1000' } })).status).toBe(400);
    expect((await call('connections-list', { params: { customerId: ids.a }, query: { cursor: 'forged' } })).status).toBe(400);
    const forged = Buffer.from(JSON.stringify({ l: 'connections', t: 'x' })).toString('base64url');
    expect((await call('connections-list', { params: { customerId: ids.a }, query: { cursor: forged } })).status).toBe(400);
    const notAToken = Buffer.from(JSON.stringify({ l: 'connections', t: Buffer.from(JSON.stringify({ nextRowKey: 1 })).toString('base64') })).toString('base64url');
    expect((await call('connections-list', { params: { customerId: ids.a }, query: { cursor: notAToken } })).status).toBe(400);
    expect((await call('connections-list', { params: { customerId: 'no-such-customer' } })).status).toBe(404);
    expect((await call('connections-get', { params: { customerId: ids.a, connectionId: 'con_not-an-id' } })).status).toBe(404);
    expect((await fetch(`${host.baseUrl}/api/v1/nothing-here`)).status).toBe(404);
  });

  it('never stores more tags than allowed, however they are merged', async () => {
    const many = (prefix: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 'v']));
    expect((await call('customers-put', { params: { customerId: ids.a }, body: { tags: many('t', 21) } })).status).toBe(400);
    const twenty = await call('customers-put', { params: { customerId: ids.a }, body: { tags: many('t', 20) } });
    expect(twenty.status).toBe(200);
    // PUT replaces the tags: another 20 do not add up to 40.
    expect((await call('customers-put', { params: { customerId: ids.a }, body: { tags: many('u', 20) } })).body).toMatchObject({ tags: many('u', 20) });
    expect((await call('customers-get', { params: { customerId: ids.a } })).status).toBe(200);

    const connection = (await call('connections-create', { params: { customerId: ids.a }, body: { mode: 'delegated', tags: many('c', 20) } })).body as { id: string };
    const params = { customerId: ids.a, connectionId: connection.id };
    const over = await call('connections-update', { params, body: { tags: { extra: 'one too many' } } });
    expect(over.status).toBe(400);
    expect((over.body as { errors: { pointer: string }[] }).errors[0]?.pointer).toBe('/body/tags');
    expect((await call('connections-update', { params, body: { tags: { c0: null, extra: 'swapped' } } })).status).toBe(200);
    expect((await call('connections-list', { params: { customerId: ids.a } })).status).toBe(200);
    const signed = await token({ context: many('k', 15) });
    expect((await call('connections-create', { params: { customerId: ids.a }, body: { mode: 'delegated', tags: many('b', 10) }, credential: signed })).status).toBe(400);
  });

  it('answers health as documented', async () => {
    const health = await call('health', { credential: null });
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'healthy' });
  });

  it('pages through connections, updates tags and disconnects idempotently', async () => {
    const created: string[] = [];
    for (let i = 0; i < 3; i++) {
      created.push(((await call('connections-create', { params: { customerId: ids.c }, body: { mode: 'delegated', displayName: `c${i}` } })).body as { id: string }).id);
    }
    const first = (await call('connections-list', { params: { customerId: ids.c }, query: { limit: '2' } })).body as { items: { id: string }[]; nextCursor?: string };
    expect(first.items).toHaveLength(2);
    const second = (await call('connections-list', { params: { customerId: ids.c }, query: { limit: '2', cursor: first.nextCursor ?? '' } })).body as { items: { id: string }[] };
    expect([...first.items, ...second.items].map((c) => c.id)).toEqual(created);

    const params = { customerId: ids.c, connectionId: created[0] ?? '' };
    const patched = await call('connections-update', { params, body: { tags: { team: 'support', region: 'eu' } } });
    expect((patched.body as { tags: object }).tags).toEqual({ team: 'support', region: 'eu' });
    const removed = await call('connections-update', { params, body: { tags: { region: null } } });
    expect((removed.body as { tags: object }).tags).toEqual({ team: 'support' });

    const disconnected = await call('connections-disconnect', { params });
    expect(disconnected.body).toMatchObject({ state: 'disconnected', stateReason: { code: 'disconnected_by_vendor' } });
    expect((await call('connections-disconnect', { params })).status).toBe(200);
    const stateEvents = ((await call('events-list', { params: { customerId: ids.c }, query: { type: 'connection.state_changed' } })).body as { items: StoredEvent[] }).items;
    expect(stateEvents.filter((e) => e.connectionId === params.connectionId)).toHaveLength(1);
    expect((await call('customers-delete', { params: { customerId: ids.c } })).status).toBe(409);
  });

  it('delivers events to the customer\'s webhook endpoint, signed per Standard Webhooks', async () => {
    const connection = (await call('connections-create', { params: { customerId: ids.a }, body: { mode: 'application' } })).body as { id: string };
    const request = await waitFor(() => receiver.requests.find((r) => r.path === '/a' && r.body.includes(connection.id)), 20_000);
    expect(request.verifiedBy).toEqual([secrets.a]);
    const payload = JSON.parse(request.body) as { id: string; type: string; customerId: string; data: { connection: { id: string } } };
    expect(payload).toMatchObject({ type: 'connection.created', customerId: ids.a, data: { connection: { id: connection.id } } });
    expect(request.headers['webhook-id']).toBe(payload.id);
    expect(receiver.requests.filter((r) => r.path === '/c' && r.body.includes(connection.id))).toHaveLength(0);
  });

  it('retries a failing receiver and records every attempt; replay re-delivers with the same webhook-id', async () => {
    const index = receiver.requests.length;
    // Only this connection's event fails, whatever other deliveries are still under way.
    let failures = 3;
    receiver.reply = (request) => (request.body.includes('flaky-receiver') && failures-- > 0 ? { status: 503 } : { status: 204 });
    const connection = (await call('connections-create', { params: { customerId: ids.c }, body: { mode: 'delegated', tags: { test: 'flaky-receiver' } } })).body as { id: string };
    const mine = () => receiver.requests.slice(index).filter((r) => r.path === '/c' && r.body.includes(connection.id));
    await waitFor(() => mine().length >= 4, 30_000);
    const eventId = String(mine()[0]?.headers['webhook-id']);
    expect(mine().map((r) => r.headers['webhook-id'])).toEqual([eventId, eventId, eventId, eventId]);
    expect(mine().every((r) => r.verifiedBy.length === 1)).toBe(true);

    const event = await waitFor(async () => {
      const found = (await call('events-get', { params: { customerId: ids.c, eventId } })).body as StoredEvent;
      return found.deliveries[0]?.status === 'delivered' ? found : undefined;
    });
    expect(event.deliveries[0]?.attempts.map((a) => [a.outcome, a.httpStatus])).toEqual([
      ['retry', 503], ['retry', 503], ['retry', 503], ['delivered', 204],
    ]);
    expect(event.deliveries[0]?.attempts.every((a) => a.latencyMs >= 0)).toBe(true);

    const replayed = await call('events-replay', { params: { customerId: ids.c, eventId } });
    expect(replayed).toMatchObject({ status: 202, body: { deliveries: 1 } });
    await waitFor(() => mine().length === 5, 20_000);
    expect(mine()[4]?.headers['webhook-id']).toBe(eventId);
    expect(mine()[4]?.verifiedBy).toEqual([secrets.c]);
  }, 60_000);

  it('admin CLI refuses a key URL on a loopback address outside local development', async () => {
    const strict: AdminDeps = {
      repositories: services.repositories,
      webhookSecrets: services.webhookSecrets,
      replay: { events: services.repositories.events, queues: services.queues },
      allowPrivateNetworkUrls: false,
      now: () => new Date(),
    };
    const connectionsBefore = keyServer.connections;
    await expect(cli(['issuers', 'add', '--issuer', 'https://other.example', '--key-url', keyServer.url, '--all'], strict)).rejects.toThrow(AdminError);
    await expect(cli(['issuers', 'add', '--issuer', 'https://other.example', '--key-url', keyServer.url, '--all'], strict)).rejects.toThrow(/not a public address/);
    expect(await services.repositories.jwtIssuers.get(keys.jwtIssuer('https://other.example'))).toBeUndefined();
    expect(keyServer.connections).toBe(connectionsBefore);
  });

  it('answered every call as the OpenAPI document says', () => {
    expect(contractProblems).toEqual([]);
  });
});
