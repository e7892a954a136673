import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { jwtVerify, type CryptoKey } from 'jose';
import { openLocalCa } from '../../local/tls/local-ca.js';
import { closeServer } from './close-server.js';

/**
 * A local Azure Key Vault, secrets only, speaking the data-plane REST API the way
 * @azure/keyvault-secrets uses it, so tests drive the real SecretClient (challenge authentication,
 * pollers, paging) over real TLS. Shapes, codes and most messages follow recorded service
 * responses (Azure/azure-sdk-for-js, sdk/keyvault/keyvault-secrets/recordings); messages no
 * recording shows are paraphrased:
 *
 * - every 401 carries the challenge `WWW-Authenticate: Bearer authorization="<login>/<tenant>",
 *   resource="https://vault.azure.net"`; the SDK takes the tenant from the authorization URL's path;
 * - a bearer token must be an RS256 JWT from the test identity's key, unexpired, for the vault
 *   resource and the challenge's tenant;
 * - the vault has soft delete with purge protection: a deleted name is reserved until recovered,
 *   and deletes and recoveries complete asynchronously (the first `pendingPolls` checks still see
 *   them in progress, as the service takes seconds);
 * - names are case-insensitive, as in Key Vault (microsoft/AzureKeyVaultExplorer#42);
 * - a version can be disabled (`attributes.enabled: false` on PUT, or on PATCH of its properties);
 *   reading it, or reading a deleted secret whose latest version is disabled, answers 403 Forbidden
 *   with inner code SecretDisabled, while lists still show it (recordings cant_get_a_disabled_secret
 *   and can_update_a_disabled_secret).
 *
 * Purge, backup/restore, certificates and keys are not modelled.
 */

/** What @azure/keyvault-secrets 4.12 sends (its LATEST_API_VERSION); a newer SDK fails loudly here. */
export const KEY_VAULT_API_VERSION = '2026-04-01';
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const MAX_PAGE_SIZE = 25;
const RETENTION_DAYS = 90;

export interface KeyVaultServerOptions {
  /** The vault's tenant: named in the challenge, required as the token's `tid`. */
  tenantId: string;
  /** Public key of the test identity; only tokens it verifies are accepted. */
  identityKey: CryptoKey;
  /** Folder for the local CA that issues the server certificate. */
  caDirectory: string;
  /** How many checks see a delete or a recovery still in progress (default 1). */
  pendingPolls?: number;
  /**
   * How many writes still answer 409 ObjectIsBeingRecovered after a recovery reports itself done,
   * as the service sometimes does (Azure/azure-sdk-for-net#31581). Default 0.
   */
  lingeringRecoveryConflicts?: number;
  /** Items per list page when the client does not ask (the service's default is 25). */
  pageSize?: number;
}

export interface ServedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  apiVersion: string | null;
  authorization: 'missing' | 'accepted' | 'rejected';
  status: number;
}

export interface KeyVaultServer {
  /** https://127.0.0.1:<port>, the vault URL to give SecretClient. */
  url: string;
  /** Every request served, in order. */
  readonly requests: ServedRequest[];
  stop(): Promise<void>;
}

interface Version {
  id: string;
  value: string;
  enabled: boolean;
  contentType?: string;
  tags?: Record<string, string>;
  created: number;
  updated: number;
  exp?: number;
  nbf?: number;
}

interface Entry {
  name: string;
  versions: Version[];
  state: 'active' | 'deleting' | 'deleted' | 'recovering';
  /** Checks left before a delete or recovery completes. */
  pending: number;
  lingeringConflicts: number;
  deletedDate?: number;
}

interface Reply {
  status: number;
  body: unknown;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
  ) {
    super(message);
  }
}

export async function startKeyVaultServer(options: KeyVaultServerOptions): Promise<KeyVaultServer> {
  const ca = await openLocalCa(options.caDirectory);
  const { certPem, keyPem } = await ca.issueServerCertificate(['localhost', '127.0.0.1']);
  const pendingPolls = options.pendingPolls ?? 1;
  const defaultPageSize = options.pageSize ?? MAX_PAGE_SIZE;
  const entries = new Map<string, Entry>();
  const requests: ServedRequest[] = [];
  let base = '';

  const challenge = `Bearer authorization="https://login.microsoftonline.com/${options.tenantId}", resource="${KEY_VAULT_RESOURCE}"`;

  async function authorize(header: string | undefined): Promise<ServedRequest['authorization']> {
    if (header === undefined) return 'missing';
    const token = /^Bearer (\S+)$/.exec(header)?.[1];
    if (token === undefined) return 'rejected';
    try {
      const { payload } = await jwtVerify(token, options.identityKey, { algorithms: ['RS256'], audience: KEY_VAULT_RESOURCE });
      return payload.tid === options.tenantId ? 'accepted' : 'rejected';
    } catch {
      return 'rejected';
    }
  }

  const secretId = (entry: Entry, version?: Version) =>
    `${base}/secrets/${entry.name}${version ? `/${version.id}` : ''}`;

  function attributes(version: Version) {
    return {
      enabled: version.enabled,
      ...(version.nbf !== undefined && { nbf: version.nbf }),
      ...(version.exp !== undefined && { exp: version.exp }),
      created: version.created,
      updated: version.updated,
      // Purge protection on: deletion is recoverable and cannot be purged.
      recoveryLevel: 'Recoverable',
      recoverableDays: RETENTION_DAYS,
    };
  }

  /** SecretItem (lists) without a value; SecretBundle (reads, writes) with one. */
  function present(entry: Entry, version: Version, shape: 'item' | 'versionItem' | 'bundle' | 'bundleWithoutValue') {
    return {
      ...(shape === 'bundle' && { value: version.value }),
      id: secretId(entry, shape === 'item' ? undefined : version),
      ...(version.contentType !== undefined && { contentType: version.contentType }),
      attributes: attributes(version),
      ...(version.tags && { tags: version.tags }),
    };
  }

  function deletedBundle(entry: Entry) {
    const deletedDate = entry.deletedDate ?? now();
    return {
      recoveryId: `${base}/deletedsecrets/${entry.name}`,
      deletedDate,
      scheduledPurgeDate: deletedDate + RETENTION_DAYS * 86_400,
      ...present(entry, latest(entry), 'bundleWithoutValue'),
    };
  }

  /** What Key Vault answers a read of a disabled version with; lists still show it. */
  function readable(version: Version): Version {
    if (!version.enabled) {
      throw new HttpError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
    }
    return version;
  }

  function secretNotFound(name: string): HttpError {
    return new HttpError(
      404,
      'SecretNotFound',
      `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
    );
  }

  /** An entry that reads can see; a recovery in progress becomes visible after `pendingPolls` reads. */
  function visible(name: string): Entry {
    const entry = entries.get(name.toLowerCase());
    if (entry?.state === 'recovering' && settled(entry)) entry.state = 'active';
    if (entry?.state !== 'active') throw secretNotFound(name);
    return entry;
  }

  function page(url: URL, path: string, items: unknown[]): Reply {
    const requested = url.searchParams.get('maxresults');
    const size = requested === null ? defaultPageSize : Number(requested);
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
      throw new HttpError(400, 'BadParameter', `maxresults must be an integer between 1 and ${MAX_PAGE_SIZE}.`);
    }
    const skip = Number(Buffer.from(url.searchParams.get('$skiptoken') ?? '', 'base64url').toString() || '0');
    if (!Number.isInteger(skip)) throw new HttpError(400, 'BadParameter', 'The $skiptoken is not one this vault issued.');
    const end = skip + size;
    const next = new URLSearchParams({ 'api-version': KEY_VAULT_API_VERSION, $skiptoken: Buffer.from(String(end)).toString('base64url') });
    if (requested !== null) next.set('maxresults', requested);
    return {
      status: 200,
      body: { value: items.slice(skip, end), nextLink: end < items.length ? `${base}${path}?${next.toString()}` : null },
    };
  }

  function setSecret(name: string, body: unknown): Reply {
    if (!SECRET_NAME.test(name)) {
      throw new HttpError(400, 'BadParameter', 'The request URI contains an invalid name: ' + name);
    }
    const input = (body ?? {}) as {
      value?: unknown;
      contentType?: string;
      tags?: Record<string, string>;
      attributes?: { enabled?: boolean; exp?: number; nbf?: number };
    };
    if (typeof input.value !== 'string') throw new HttpError(400, 'BadParameter', 'Property value is required.');
    const existing = entries.get(name.toLowerCase());
    if (existing?.state === 'deleting') {
      throw new HttpError(409, 'Conflict', `Secret ${name} is currently being deleted.`, 'ObjectIsBeingDeleted');
    }
    if (existing?.state === 'deleted') {
      throw new HttpError(
        409,
        'Conflict',
        `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
        'ObjectIsDeletedButRecoverable',
      );
    }
    if (existing?.state === 'recovering') throw beingRecovered(name);
    if (existing && existing.lingeringConflicts > 0) {
      existing.lingeringConflicts--;
      throw beingRecovered(name);
    }
    const entry = existing ?? { name, versions: [], state: 'active' as const, pending: 0, lingeringConflicts: 0 };
    const version: Version = {
      id: randomBytes(16).toString('hex'),
      value: input.value,
      enabled: input.attributes?.enabled !== false,
      created: now(),
      updated: now(),
      ...(input.contentType !== undefined && { contentType: input.contentType }),
      ...(input.tags && { tags: input.tags }),
      ...(input.attributes?.exp !== undefined && { exp: input.attributes.exp }),
      ...(input.attributes?.nbf !== undefined && { nbf: input.attributes.nbf }),
    };
    entry.versions.push(version);
    entries.set(name.toLowerCase(), entry);
    return { status: 200, body: present(entry, version, 'bundle') };
  }

  /** PATCH of one version's properties (the latest when the version is empty); the value cannot change. */
  function updateProperties(entry: Entry, versionId: string, body: unknown): Reply {
    const version = versionId === '' ? latest(entry) : entry.versions.find((v) => v.id === versionId.toLowerCase());
    if (!version) throw secretNotFound(`${entry.name}/${versionId}`);
    const input = (body ?? {}) as {
      contentType?: string;
      tags?: Record<string, string>;
      attributes?: { enabled?: boolean; exp?: number; nbf?: number };
    };
    if (input.attributes?.enabled !== undefined) version.enabled = input.attributes.enabled;
    if (input.attributes?.exp !== undefined) version.exp = input.attributes.exp;
    if (input.attributes?.nbf !== undefined) version.nbf = input.attributes.nbf;
    if (input.contentType !== undefined) version.contentType = input.contentType;
    if (input.tags !== undefined) version.tags = input.tags;
    version.updated = now();
    return { status: 200, body: present(entry, version, 'bundleWithoutValue') };
  }

  async function route(method: string, url: URL, body: () => Promise<unknown>): Promise<Reply> {
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    const [collection, name, rest] = parts;
    const key = (name ?? '').toLowerCase();

    if (collection === 'secrets' && parts.length === 1 && method === 'GET') {
      const items = [...entries.values()]
        .filter((entry) => entry.state === 'active')
        .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()))
        .map((entry) => present(entry, latest(entry), 'item'));
      return page(url, url.pathname, items);
    }
    if (collection === 'secrets' && name !== undefined && parts.length === 2) {
      if (method === 'PUT') return setSecret(name, await body());
      if (method === 'GET') {
        const entry = visible(name);
        return { status: 200, body: present(entry, readable(latest(entry)), 'bundle') };
      }
      if (method === 'DELETE') {
        const entry = entries.get(key);
        if (entry?.state !== 'active') throw secretNotFound(name);
        entry.state = 'deleting';
        entry.pending = pendingPolls;
        entry.deletedDate = now();
        return { status: 200, body: deletedBundle(entry) };
      }
    }
    if (collection === 'secrets' && name !== undefined && rest === 'versions' && parts.length === 3 && method === 'GET') {
      const entry = visible(name);
      return page(url, url.pathname, entry.versions.map((version) => present(entry, version, 'versionItem')));
    }
    if (collection === 'secrets' && name !== undefined && rest !== undefined && parts.length === 3 && method === 'GET') {
      const entry = visible(name);
      const version = rest === '' ? latest(entry) : entry.versions.find((v) => v.id === rest.toLowerCase());
      if (!version) throw secretNotFound(`${name}/${rest}`);
      return { status: 200, body: present(entry, readable(version), 'bundle') };
    }
    if (collection === 'secrets' && name !== undefined && rest !== undefined && parts.length === 3 && method === 'PATCH') {
      return updateProperties(visible(name), rest, await body());
    }
    if (collection === 'deletedsecrets' && name !== undefined && parts.length === 2 && method === 'GET') {
      const entry = entries.get(key);
      if (entry?.state === 'deleting' && settled(entry)) entry.state = 'deleted';
      if (entry?.state !== 'deleted') throw new HttpError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
      // A deleted secret whose latest version is disabled is refused as a read of it would be.
      readable(latest(entry));
      return { status: 200, body: deletedBundle(entry) };
    }
    if (collection === 'deletedsecrets' && name !== undefined && rest === 'recover' && parts.length === 3 && method === 'POST') {
      const entry = entries.get(key);
      if (entry?.state !== 'deleted') throw new HttpError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
      entry.state = 'recovering';
      entry.pending = pendingPolls;
      entry.lingeringConflicts = options.lingeringRecoveryConflicts ?? 0;
      delete entry.deletedDate;
      return { status: 200, body: present(entry, latest(entry), 'bundleWithoutValue') };
    }
    throw new HttpError(404, 'NotFound', `This test double does not implement ${method} ${url.pathname}.`);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', base);
    const apiVersion = url.searchParams.get('api-version');
    const authorization = await authorize(request.headers.authorization);
    let reply: Reply;
    try {
      if (apiVersion !== KEY_VAULT_API_VERSION) {
        const asked = apiVersion ?? 'none';
        throw new HttpError(400, 'BadParameter', `API version ${asked} is not the one this double implements (${KEY_VAULT_API_VERSION}).`);
      }
      if (authorization === 'missing') {
        throw new HttpError(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.');
      }
      if (authorization === 'rejected') {
        throw new HttpError(401, 'Unauthorized', 'The access token is not valid for this vault (signature, expiry, audience or tenant).');
      }
      reply = await route(request.method ?? 'GET', url, () => readJson(request));
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      reply = {
        status: error.status,
        body: { error: { code: error.code, message: error.message, ...(error.innerCode && { innererror: { code: error.innerCode } }) } },
      };
    }
    requests.push({ method: request.method ?? '', path: url.pathname, apiVersion, authorization, status: reply.status });
    const payload = JSON.stringify(reply.body);
    response.writeHead(reply.status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(payload),
      ...(reply.status === 401 && { 'WWW-Authenticate': challenge }),
    });
    response.end(payload);
  }

  const server = createServer({ cert: certPem, key: keyPem }, (request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify({ error: { code: 'InternalServerError', message: String(error) } }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    requests,
    stop: () => closeServer(server),
  };
}

/** False while an operation in progress still has checks to wait out; counts this check. */
function settled(entry: Entry): boolean {
  if (entry.pending === 0) return true;
  entry.pending--;
  return false;
}

function beingRecovered(name: string): HttpError {
  return new HttpError(
    409,
    'Conflict',
    `Secret ${name} is currently being recovered and cannot be re-created; retry later.`,
    'ObjectIsBeingRecovered',
  );
}

function latest(entry: Entry): Version {
  const version = entry.versions.at(-1);
  if (!version) throw new Error(`secret ${entry.name} has no versions`);
  return version;
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'BadParameter', 'The request body is not valid JSON.');
  }
}
