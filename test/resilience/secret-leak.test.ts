import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAzuriteOnFreePorts, type RunningAzurite } from '../../local/azurite.js';
import { buildAdminCli } from '../../src/admin/admin-cli.js';
import { adminDeps } from '../../src/admin/admin-deps.js';
import type { Connection } from '../../src/domain/connection.js';
import type { OutboundMessage } from '../../src/domain/outbound-message.js';
import { keys } from '../../src/store/repositories.js';
import { QUEUES } from '../../src/store/storage-layout.js';
import { UNCHANGED } from '../../src/store/table-repository.js';
import { captureTelemetry, type CapturedTelemetry } from '../support/captured-telemetry.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { mailboxOf } from '../support/receive-environment.js';
import { SandboxBrowser, page } from '../support/sandbox-browser.js';
import { mailbox, mailHostSettings } from '../support/test-mail-server.js';
import { waitFor } from '../support/wait.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { closeProbes, probe, type ProbeAnswer } from './http-probe.js';
import { allEntities } from './storage-snapshot.js';

/**
 * No credential leaves the places meant for it. One customer's mail goes end to end through the
 * real function app in the local host, on an Azurite of its own: the admin CLI makes the API key
 * and the webhook endpoint, a user connects through the sandbox's sign-in pages (authorization
 * code + PKCE), an administrator consents for an application connection, a user is signed in by
 * password with the CLI (SMTP and IMAP with XOAUTH2 against the test Dovecot/Postfix, when this
 * machine runs it), messages go out through the API, mailboxes are looked at, tokens are
 * refreshed, Microsoft refuses things with its own error bodies (a revoked session, an unknown
 * mailbox), the API refuses bad requests, events reach a webhook receiver.
 *
 * Captured meanwhile: every OpenTelemetry log record, span and metric point; every line written
 * to stdout or stderr; every line a function wrote through its invocation context (the Functions
 * log hook); every webhook request; every API answer; every CLI output. Afterwards: every entity of
 * every table, every queue message and blob left. None of it may hold a secret the run knows
 * (the client secret, API key, webhook signing secret, the secret store's own key and every value
 * it holds, each token of each msal token cache, access tokens, the authorization code, the
 * password, the XOAUTH2 strings made of the tokens), nor anything shaped like one (a JWT, a
 * Microsoft refresh token or code, a bearer header, an XOAUTH2 string, an unredacted API key or
 * webhook secret, an Entra client secret).
 */

const mailServer = inject('mailServer');
const root = fileURLToPath(new URL('../../', import.meta.url));
const CUSTOMER = 'leak-customer';
const PASSWORD = 'Tr0ub4dor&3-leak-test';

let telemetry: CapturedTelemetry;
let azurite: RunningAzurite;
let env: ConnectEnvironment;
let receiver: WebhookReceiver;
let contoso: Directory;
let scratch: string;
const defaultCas = tls.getCACertificates('default');

/** Everything that left the connector, by where it went. */
const corpus = {
  stdout: [] as string[],
  /** What `npm run connector` printed in a process of its own: its JSON log lines (no OpenTelemetry there). */
  childCli: [] as string[],
  functionLog: [] as string[],
  api: [] as string[],
  cli: [] as string[],
  pages: [] as string[],
};
/** Secrets the run made or handled, by what they are. */
const secrets = new Map<string, string>();
/** Output of the CLI commands whose job is to print a secret once (keys create, webhooks add). */
const printedOnPurpose: string[] = [];
const restore: (() => void)[] = [];
const facts = { childCliLines: 0, connected: 0, sent: 0, failedWithMicrosoftError: '', received: 0, refreshed: false, reauth: '', problems: 0, xoauth2: false };

function remember(what: string, value: string | undefined): void {
  if (value !== undefined && value.length >= 12 && !secrets.has(value)) secrets.set(value, what);
}

/** The values of the secret store, and each token inside a token cache. */
async function harvestSecretStore(): Promise<void> {
  for await (const listing of env.services.secrets.list()) {
    const value = (await env.services.secrets.get(listing.name))?.value;
    if (value === undefined) continue;
    remember(`secret store: ${listing.name}`, value);
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      continue;
    }
    // msal's cache keeps each token under "secret" (AccessToken, RefreshToken, IdToken), as the webhook secrets document does.
    const walk = (node: unknown, path: string[]): void => {
      if (typeof node === 'string' && path.at(-1)?.toLowerCase() === 'secret') remember(`secret store: ${listing.name} ${path[0] ?? ''} secret`, node);
      else if (node !== null && typeof node === 'object') for (const [key, item] of Object.entries(node)) walk(item, [...path, key]);
    };
    walk(parsed, []);
  }
}

/** Access tokens the connector would use now, and the XOAUTH2 strings that would carry them. */
async function harvestAccessTokens(connection: Connection, resources: readonly ('graph' | 'outlook')[], user: string): Promise<void> {
  for (const resource of resources) {
    const { token } = await env.identity.accessTokens.getAccessToken(connection, resource);
    remember(`${resource} access token of ${connection.id}`, token);
    const xoauth2 = `user=${user}\x01auth=Bearer ${token}\x01\x01`;
    remember('XOAUTH2 string', xoauth2);
    remember('XOAUTH2 string, base64', Buffer.from(xoauth2).toString('base64'));
  }
}

/** Calls the vendor API; a string body goes as it is (malformed JSON), anything else as JSON. */
async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ProbeAnswer> {
  const answer = await probe(env.host.port, {
    method,
    path: `/api/v1/${path}`,
    headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  corpus.api.push(`${method} ${path} → ${answer.status} ${JSON.stringify(answer.headers)}\n${answer.text}`);
  if (answer.headers['content-type'] === 'application/problem+json') facts.problems += 1;
  return answer;
}

async function cli(args: string[], options: { printsSecret?: boolean } = {}): Promise<string> {
  const lines: string[] = [];
  const program = buildAdminCli(() => Promise.resolve(adminDeps(env.services, () => Promise.resolve(PASSWORD))), { out: (text) => lines.push(text), err: (text) => lines.push(text) });
  try {
    await program.parseAsync(['node', 'connector', ...args]);
  } catch (error) {
    lines.push(`(exit) ${String(error)}`);
  }
  const output = lines.join('\n');
  (options.printsSecret ? printedOnPurpose : corpus.cli).push(`connector ${args.join(' ')}\n${output}`);
  return output;
}

/** The admin CLI as `npm run connector` runs it, in a process of its own (logs as JSON lines), against the same storage and secret store. */
async function childCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const caFile = join(scratch, 'ca.pem');
  await writeFile(caFile, [env.sandbox.caPem, mailServer?.caPem ?? ''].join('\n'));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/admin/main.ts'), ...args], {
      cwd: root,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile, LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const result = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      corpus.childCli.push(`connector ${args.join(' ')} (exit ${String(code)})\n${result.stdout}\n${result.stderr}`);
      resolve(result);
    });
  });
}

let apiKey = '';

/** A page the browser shows; the connector's own pages are kept to be looked at. */
function seen(result: Parameters<typeof page>[0]): ReturnType<typeof page> {
  const shown = page(result);
  if (shown.url.toString().startsWith(env.baseUrl)) corpus.pages.push(shown.html);
  return shown;
}

async function settled(messageId: string): Promise<OutboundMessage> {
  return waitFor(async () => {
    const message = (await env.services.repositories.outbox.get(keys.outboundMessage(CUSTOMER, messageId)))?.value;
    return (message?.status === 'sent' || message?.status === 'failed') && message;
  }, 30_000);
}

async function dueNow(connection: Connection): Promise<void> {
  await env.identity.health.ensure(connection);
  await env.services.repositories.connectionHealth.update(keys.connectionHealth(CUSTOMER, connection.id), (current) =>
    current ? { ...current, dueAt: new Date(Date.now() - 60_000).toISOString() } : UNCHANGED,
  );
  await env.services.queues.publish(QUEUES.refreshConnection, { customerId: CUSTOMER, connectionId: connection.id });
}

beforeAll(async () => {
  telemetry = captureTelemetry();
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      corpus.stdout.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return write(chunk, ...rest);
    });
    restore.push(() => {
      stream.write = write;
    });
  }
  scratch = await mkdtemp(join(tmpdir(), 'secret-leak-'));
  azurite = await startAzuriteOnFreePorts();
  env = await startConnectEnvironment({
    storageConnectionString: azurite.connectionString,
    ...(mailServer && { signingKey: mailServer.sandboxSigningKey }),
    env: { ALLOW_ROPC: 'true', ALLOW_PRIVATE_NETWORK_URLS: 'true', LOG_LEVEL: 'debug', WEBHOOK_RETRY_SCHEDULE: '200ms,200ms', ...(mailServer && mailHostSettings()) },
  });
  if (mailServer) tls.setDefaultCACertificates([...tls.getCACertificates('default'), mailServer.caPem]);
  remember('client secret', (await env.services.secrets.get('entra-client-secret'))?.value);
  // Every line a function writes through its invocation context, as the Functions host gets it.
  const { app } = await import('@azure/functions');
  app.hook.log((context) => {
    corpus.functionLog.push(`${context.level} ${context.category} ${context.message}`);
  });

  // The admin CLI: an API key and a webhook endpoint, each printed once on purpose.
  receiver = await startWebhookReceiver({ secrets: [] });
  apiKey = /m365c_\S+/.exec(await cli(['keys', 'create', '--all', '--name', 'leak test'], { printsSecret: true }))?.[0] ?? '';
  const webhookSecret = /whsec_\S+/.exec(await cli(['webhooks', 'add', '--url', `${receiver.url}/hook`, '--all'], { printsSecret: true }))?.[0] ?? '';
  receiver.secrets = [webhookSecret];
  remember('API key', apiKey);
  remember('API key secret part', apiKey.replace(/^m365c_[a-z0-9]{12}_/, ''));
  remember('webhook signing secret', webhookSecret);
  remember('webhook signing secret, base64', webhookSecret.replace(/^whsec_/, ''));
  remember('webhook signing key, hex', Buffer.from(webhookSecret.replace(/^whsec_/, ''), 'base64').toString('hex'));
  remember('user password', PASSWORD);

  contoso = await env.createDirectory('Contoso Leak', mailServer?.tenants[0]);
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
  const support = `support@${contoso.domain}`;
  const ghost = `ghost@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: support, displayName: 'Support' });
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: `adele@${contoso.domain}`, displayName: 'Adele Vance' });
  expect((await api('PUT', `customers/${CUSTOMER}`, { displayName: 'Leak Test Customer', tags: { plan: 'pro' } })).status).toBe(201);

  // A delegated connection through the sign-in pages: the callback is held to learn its code.
  const delegated = JSON.parse((await api('POST', `customers/${CUSTOMER}/connections`, { mode: 'delegated' })).text) as Connection & { consent: { url: string } };
  const held = new SandboxBrowser([`${env.baseUrl}/api/connect/callback`]);
  const picker = seen(await seen(await held.open(delegated.consent.url)).click('Continue to Microsoft'));
  let step = await picker.click(contoso.user.userPrincipalName);
  if (step.kind === 'page' && step.forms.some((form) => form.buttons.some((b) => b.text.includes('Accept')))) step = await step.click('Accept');
  if (step.kind !== 'app') throw new Error(`the sign-in did not come back: ${step.text}`);
  remember('authorization code', step.params.get('code') ?? undefined);
  expect(seen(await new SandboxBrowser([]).navigate('POST', step.url, step.params)).heading).toBe('Microsoft 365 is connected');
  facts.connected += 1;
  const megan = await env.connection(delegated);

  // An application connection: the administrator signs in and consents for the organization.
  const application = JSON.parse((await api('POST', `customers/${CUSTOMER}/connections`, { mode: 'application', mailboxes: [{ address: support }, { address: ghost }] })).text) as Connection & { consent: { url: string } };
  const adminPicker = seen(await seen(await new SandboxBrowser([]).open(application.consent.url)).click('Continue to Microsoft'));
  let shown = seen(await adminPicker.click(contoso.admin.userPrincipalName));
  if (shown.forms.some((form) => form.buttons.some((b) => b.text.includes('Accept'))) && !/adminconsent/.test(shown.url.pathname)) shown = seen(await shown.click('Accept'));
  if (/adminconsent/.test(shown.url.pathname) && shown.forms.some((form) => form.buttons.some((b) => b.text.includes(contoso.admin.userPrincipalName)))) shown = seen(await shown.click(contoso.admin.userPrincipalName));
  expect(seen(await shown.click('Accept')).heading).toBe('Microsoft 365 is connected');
  facts.connected += 1;
  const app1 = await env.connection(application);

  // A delegated connection over SMTP and IMAP, signed in by password with the CLI.
  let mailUser: { connection: Connection; upn: string } | undefined;
  if (mailServer) {
    const upn = `sender-${randomUUID().slice(0, 8)}@${contoso.domain}`;
    await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: upn, displayName: 'Mail Sender', password: PASSWORD });
    const created = JSON.parse((await api('POST', `customers/${CUSTOMER}/connections`, { mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } })).text) as Connection;
    const connected = await cli(['connect', '--customer', CUSTOMER, '--connection', created.id, '--password', '--username', upn]);
    expect(connected).toContain('is connected');
    facts.connected += 1;
    mailUser = { connection: await env.connection(created), upn };
  }
  await harvestSecretStore();
  await harvestAccessTokens(megan, ['graph'], contoso.user.userPrincipalName);
  await harvestAccessTokens(app1, ['graph'], support);
  if (mailUser) await harvestAccessTokens(mailUser.connection, ['outlook'], mailUser.upn);

  // Sends through the API: Graph (delegated, application), SMTP; one from a mailbox Microsoft does not know.
  const sends = [
    { connection: megan, body: { to: [`adele@${contoso.domain}`], subject: 'From Megan', text: 'Hello' } },
    { connection: app1, body: { from: support, to: [`adele@${contoso.domain}`], subject: 'From support', html: '<p>Hello</p>', attachments: [{ filename: 'a.txt', content: 'aGVsbG8=' }] } },
    { connection: app1, body: { from: ghost, to: [`adele@${contoso.domain}`], subject: 'From nobody', text: 'Hello' } },
    ...(mailUser ? [{ connection: mailUser.connection, body: { to: [mailbox('leak-to')], subject: 'Over SMTP', text: 'Hello over SMTP' } }] : []),
  ];
  const outcomes: OutboundMessage[] = [];
  for (const send of sends) {
    const answer = await api('POST', `customers/${CUSTOMER}/connections/${send.connection.id}/messages`, send.body, { 'idempotency-key': randomUUID() });
    expect(answer.status, answer.text).toBe(202);
    outcomes.push(await settled((JSON.parse(answer.text) as OutboundMessage).id));
  }
  facts.sent = outcomes.filter((message) => message.status === 'sent').length;
  facts.failedWithMicrosoftError = outcomes.find((message) => message.status === 'failed')?.lastError?.code ?? '';
  facts.xoauth2 = outcomes.some((message) => message.transport === 'smtp' && message.status === 'sent');

  // Looks at mailboxes: Graph (a new message in it), and IMAP.
  const internetMessageId = `<${randomUUID()}@customer.example>`;
  await env.sandbox.control.injectMessage({ address: support, from: 'customer@fabrikam.example', subject: 'Help', text: 'Please', internetMessageId });
  const supportMailbox = await mailboxOf(env, app1, support);
  await env.services.queues.publish(QUEUES.pollMailbox, { customerId: CUSTOMER, connectionId: app1.id, mailboxId: supportMailbox.id, reason: 'manual' });
  if (mailUser) {
    const own = await mailboxOf(env, mailUser.connection, mailUser.upn);
    await env.services.queues.publish(QUEUES.pollMailbox, { customerId: CUSTOMER, connectionId: mailUser.connection.id, mailboxId: own.id, reason: 'manual' });
  }
  await waitFor(async () => {
    const received = (await env.services.repositories.events.all(CUSTOMER)).filter((event) => event.type === 'message.received');
    facts.received = received.length;
    return received.length >= 1;
  }, 30_000);
  if (mailUser) {
    const own = await mailboxOf(env, mailUser.connection, mailUser.upn);
    await waitFor(async () => (await telemetry.metricPoints()).some((point) => point.name === 'receive.polls' && point.attributes.mailboxId === own.id), 30_000);
  }

  // A token refresh, then Microsoft refusing one: the user's sessions were revoked.
  await dueNow(megan);
  facts.refreshed = await waitFor(() => telemetry.logRecords().some((record) => record.body === 'tokens refreshed' && record.attributes.connectionId === megan.id), 30_000);
  await harvestSecretStore();
  await env.sandbox.control.revokeSessions(contoso.tenant.id, contoso.user.id);
  await dueNow(megan);
  facts.reauth = await waitFor(async () => {
    const state = (await env.connection(megan)).stateReason?.code;
    return state?.startsWith('AADSTS') && state;
  }, 30_000);

  // The API refusing: a Microsoft access token as credential, a wrong key, a key without "Bearer", tokens in a
  // refused message (CR/LF in an address and a header), malformed JSON, an unknown id; a check of the revoked connection.
  const graphToken = [...secrets].find(([, what]) => what.startsWith('graph access token'))?.[0] ?? '';
  await api('GET', `customers/${CUSTOMER}`, undefined, { authorization: `Bearer ${graphToken}` });
  await api('GET', `customers/${CUSTOMER}`, undefined, { authorization: `Bearer ${apiKey.slice(0, -4)}AAAA` });
  await api('GET', `customers/${CUSTOMER}`, undefined, { authorization: apiKey });
  await api('POST', `customers/${CUSTOMER}/connections/${app1.id}/messages`, { to: [`x@${contoso.domain}\r\nBcc: ${graphToken}`], subject: graphToken, text: 'x', headers: { 'X-Token': `a\r\n${graphToken}` } });
  await api('POST', `customers/${CUSTOMER}/connections/${app1.id}/messages`, '{"to":');
  await api('GET', `customers/${CUSTOMER}/connections/con_00000000000000000000000000`);
  await api('POST', `customers/${CUSTOMER}/connections/${megan.id}/check`);
  await api('GET', `customers/${CUSTOMER}/connections/${megan.id}`);
  await api('GET', `customers/${CUSTOMER}/connections/${app1.id}/mailboxes`);
  await api('GET', `customers/${CUSTOMER}/events?limit=100`);

  // The CLI reading things back, and checking the application connection.
  await cli(['keys', 'list']);
  await cli(['webhooks', 'list']);
  await cli(['customers', 'list']);
  await cli(['customers', 'show', CUSTOMER]);
  await cli(['check', '--customer', CUSTOMER, '--connection', app1.id, '--json']);
  // In a process of its own, logging JSON lines at debug: the check's token requests, and IMAP and SMTP logins with XOAUTH2.
  const checked = mailUser ?? { connection: app1 };
  facts.childCliLines = (await childCli(['check', '--customer', CUSTOMER, '--connection', checked.connection.id, ...(mailUser ? ['--test-message-to', mailbox('leak-check')] : [])]))
    .stderr.concat(corpus.childCli.join('\n')).split('\n').filter((line) => line.startsWith('{"')).length;

  // Events delivered (sent, failed, received, state changes), then the tokens of one connection dropped.
  await waitFor(() => receiver.requests.some((request) => request.body.includes('message.failed')) && receiver.requests.some((request) => request.body.includes('needs_reauth')), 30_000);
  await harvestSecretStore();
  await api('POST', `customers/${CUSTOMER}/connections/${megan.id}/disconnect`);

  const storeDirectory = process.env.LOCAL_SECRET_STORE_DIR ?? '';
  for (const file of await readdir(storeDirectory)) {
    if (file.endsWith('.key')) remember(`the local secret store's key (${file})`, (await readFile(join(storeDirectory, file))).toString('base64'));
  }
}, 180_000);

afterAll(async () => {
  for (const undo of restore) undo();
  closeProbes();
  await receiver.close();
  await env.stop();
  await azurite.stop();
  await telemetry.stop();
  tls.setDefaultCACertificates(defaultCas);
  await rm(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

/** Shapes of credentials, for the ones the run cannot name. */
const SHAPES: [string, RegExp][] = [
  ['a JWT', /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/],
  ['a Microsoft refresh token or authorization code', /(?<![A-Za-z0-9_-])[01]\.A[A-Za-z0-9_\-.*]{30,}/],
  ['a bearer credential', /Bearer\s+(?!\[REDACTED\])[A-Za-z0-9\-._~+/]{16,}/i],
  // eslint-disable-next-line no-control-regex -- ^A is XOAUTH2's separator
  ['an XOAUTH2 string', /user=[^\s"]*(?:\x01|\\u0001|\^A)auth=/],
  ['a base64 XOAUTH2 string', /\bdXNlcj[0-3][A-Za-z0-9+/]{16,}/],
  ['an API key', /m365c_[a-z0-9]{12}_(?!\[REDACTED\])[A-Za-z0-9_-]{8,}/],
  ['a webhook signing secret', /whsec_(?!\[REDACTED\])[A-Za-z0-9+/=]{8,}/],
  ['an Entra client secret', /(?<![A-Za-z0-9_\-.~])[A-Za-z0-9_\-.~]{3}\d[A-Z]~[A-Za-z0-9_\-.~]{31,}/],
];

/** Each secret the text holds, and each credential shape, with where. */
function leaksIn(where: string, text: string): string[] {
  const found: string[] = [];
  for (const [secret, what] of secrets) {
    const at = text.indexOf(secret);
    if (at >= 0) found.push(`${where} holds the ${what}: …${text.slice(Math.max(0, at - 80), at)}<HERE>…`);
  }
  for (const [what, shape] of SHAPES) {
    const match = shape.exec(text);
    if (match) found.push(`${where} holds ${what}: …${text.slice(Math.max(0, match.index - 80), match.index + Math.min(match[0].length, 40))}…`);
  }
  return found;
}

function leaks(where: string, texts: readonly string[]): string[] {
  return texts.flatMap((text, i) => leaksIn(`${where} #${i}`, text));
}

describe('no credential leaves its place', () => {
  it('the run did what it should: connections, sends, a Microsoft refusal, looks, a refresh, a revoked session, problems, deliveries, secrets to look for', () => {
    expect(facts.connected).toBe(mailServer ? 3 : 2);
    expect(facts.sent).toBe(mailServer ? 3 : 2);
    expect(facts.failedWithMicrosoftError).not.toBe('');
    expect(facts.received).toBeGreaterThanOrEqual(1);
    expect(facts.refreshed).toBe(true);
    expect(facts.reauth).toMatch(/^AADSTS/);
    expect(facts.problems).toBeGreaterThanOrEqual(6);
    expect(receiver.requests.length).toBeGreaterThanOrEqual(8);
    expect(receiver.requests.every((request) => request.verifiedBy.length === 1)).toBe(true);
    const whats = [...secrets.values()];
    expect(whats).toEqual(expect.arrayContaining(['API key', 'webhook signing secret', 'client secret', 'authorization code', 'user password', 'XOAUTH2 string']));
    for (const kind of [/^graph access token/, /^secret store: msal-cache-.* RefreshToken secret$/, /^secret store: msal-cache-.* AccessToken secret$/, /^secret store: msal-cache-.* IdToken secret$/, /^secret store: connector-signing-key$/]) {
      expect(whats.some((what) => kind.test(what)), String(kind)).toBe(true);
    }
    if (mailServer) expect(facts.xoauth2).toBe(true);
  });

  it('finds each secret and each shape where it is (the search itself works)', () => {
    for (const [secret, what] of secrets) expect(leaksIn('control', `before ${secret} after`).length, what).toBeGreaterThan(0);
    const samples = [
      'eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln', `1.A${'b'.repeat(40)}`, `Authorization: Bearer ${'c'.repeat(30)}`, 'user=a@b.c\u0001auth=Bearer x',
      Buffer.from('user=a@b.c\x01auth=Bearer xyz\x01\x01').toString('base64'), `m365c_abcdefghijkl_${'d'.repeat(43)}`, `whsec_${'e'.repeat(32)}`, `abc8Q~${'f'.repeat(34)}`,
    ];
    for (const sample of samples) expect(leaksIn('control', ` ${sample} `).length, sample).toBeGreaterThan(0);
    for (const redacted of ['Bearer [REDACTED]', 'm365c_abcdefghijkl_[REDACTED]', 'whsec_[REDACTED]', 'a Bearer or PoP token']) expect(leaksIn('control', redacted), redacted).toEqual([]);
  });

  it('OpenTelemetry log records, spans and metric points', async () => {
    const records = telemetry.logRecords().map((record) => JSON.stringify({ body: record.body, attributes: record.attributes, severity: record.severityText }));
    const spans = telemetry.spans().map((span) => JSON.stringify({ name: span.name, attributes: span.attributes, events: span.events, status: span.status }));
    const points = (await telemetry.metricPoints()).map((point) => JSON.stringify(point));
    expect(records.length).toBeGreaterThan(20);
    expect([...leaks('log record', records), ...leaks('span', spans), ...leaks('metric point', points)]).toEqual([]);
  });

  it('lines written to stdout and stderr (here, and by the CLI in a process of its own), and through the functions\' invocation contexts', () => {
    expect(facts.childCliLines).toBeGreaterThan(0);
    expect([...leaks('stdout/stderr', corpus.stdout), ...leaks('the CLI process\'s output', corpus.childCli), ...leaks('function log line', corpus.functionLog)]).toEqual([]);
  });

  it('every entity of every table: tokens live in the secret store only', async () => {
    const entities = await allEntities(env.services.storage);
    expect(entities.length).toBeGreaterThan(20);
    expect(leaks('table entity', entities.map(({ table, entity }) => `${table}: ${JSON.stringify(entity)}`))).toEqual([]);
  });

  it('queue messages and blobs left behind', async () => {
    const texts: string[] = [];
    for await (const queue of env.services.storage.queueService.listQueues()) {
      const peeked = await env.services.storage.queueService.getQueueClient(queue.name).peekMessages({ numberOfMessages: 32 });
      for (const message of peeked.peekedMessageItems) texts.push(`${queue.name}: ${message.messageText} ${Buffer.from(message.messageText, 'base64').toString('utf8')}`);
    }
    for await (const container of env.services.storage.blobService.listContainers()) {
      if (container.name.startsWith('azure-webjobs')) continue;
      const client = env.services.storage.blobService.getContainerClient(container.name);
      for await (const blob of client.listBlobsFlat()) texts.push(`${container.name}/${blob.name}: ${(await client.getBlobClient(blob.name).downloadToBuffer()).toString('utf8')}`);
    }
    expect(texts.length).toBeGreaterThan(0);
    expect(leaks('storage', texts)).toEqual([]);
  });

  it('event payloads and webhook requests (bodies and headers)', () => {
    const requests = receiver.requests.map((request) => `${JSON.stringify(request.headers)}\n${request.body}`);
    expect(leaks('webhook request', requests)).toEqual([]);
  });

  it('API answers, problem bodies among them; the pages people saw; the CLI\'s output', () => {
    expect(leaks('API answer', corpus.api)).toEqual([]);
    expect(corpus.pages.length).toBeGreaterThan(0);
    expect(leaks('page', corpus.pages)).toEqual([]);
    expect(leaks('CLI output', corpus.cli)).toEqual([]);
    // The two commands that print a secret print that one only.
    for (const output of printedOnPurpose) {
      const own = output.match(/m365c_\S+|whsec_\S+/g) ?? [];
      const others = leaksIn('CLI output', own.reduce((text, secret) => text.replaceAll(secret, '<printed once>'), output));
      expect(others).toEqual([]);
    }
  });
});
