import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AdminError, buildAdminCli, type AdminDeps } from '../../src/admin/admin-cli.js';
import { adminDeps } from '../../src/admin/admin-deps.js';
import { changeConnectionState } from '../../src/connections/connections.js';
import type { Connection } from '../../src/domain/connection.js';
import { tokenCacheSecretName } from '../../src/identity/token-cache-store.js';
import { createLogger, type LogRecord } from '../../src/telemetry/logger.js';
import { SandboxBrowser, type SandboxPage, page } from '../support/sandbox-browser.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';

/**
 * `npm run connector -- connect`: ops sign a user in to a delegated connection by device code, or
 * by password where ALLOW_ROPC=true, against the real services and the sandbox identity platform.
 * The tests play the user at the sandbox's device login page; each outcome is checked in storage:
 * connected with the sign-in method recorded, or nothing stored at all.
 */

const PASSWORD = 'correct horse battery staple';
const root = fileURLToPath(new URL('../../', import.meta.url));
let env: ConnectEnvironment;
/** Added to the sandbox's clock, to expire a device code without waiting. */
let clockOffset = 0;
let logs: LogRecord[] = [];

beforeAll(async () => {
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    env: { ALLOW_ROPC: 'true' },
    sandbox: { lifetimes: { deviceCodePollIntervalSeconds: 1 }, now: () => Date.now() + clockOffset },
  });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

/** The CLI's dependencies as `npm run connector` builds them from the services; logs kept for the test. */
function deps(services = env.services, password: () => Promise<string> = () => Promise.resolve(PASSWORD)): AdminDeps {
  logs = [];
  const built = adminDeps(services, password);
  const logger = createLogger({ level: 'debug', sink: (record) => logs.push(record) });
  return built.connect ? { ...built, connect: { ...built.connect, signIn: { ...built.connect.signIn, logger } } } : built;
}

interface CliRun {
  out: string;
  err: string;
  /** What the command failed with; undefined when it succeeded. */
  error?: unknown;
}

/** Runs the CLI; `onErr` sees each line for the operator as it is written (the device code prompt). */
async function cli(args: string[], options: { deps?: AdminDeps; onErr?: (line: string) => void } = {}): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const built = options.deps ?? deps();
  const program = buildAdminCli(() => Promise.resolve(built), {
    out: (text) => out.push(text),
    err: (text) => {
      err.push(text);
      options.onErr?.(text);
    },
  });
  try {
    await program.parseAsync(['node', 'connector', ...args]);
    return { out: out.join('\n'), err: err.join('\n') };
  } catch (error) {
    return { out: out.join('\n'), err: err.join('\n'), error };
  }
}

function target(connection: Connection): string[] {
  return ['--customer', connection.customerId, '--connection', connection.id];
}


/**
 * The person with the code: opens Microsoft's page from the prompt, enters the code, picks the
 * account and accepts (or cancels) the confirmation. Returns what they end up seeing.
 */
async function enterCode(prompt: string, upn: string, decision: 'Accept' | 'Cancel' = 'Accept'): Promise<SandboxPage> {
  const match = /(https?:\/\/\S+) and enter the code (\S+)/.exec(prompt);
  if (!match?.[1] || !match[2]) throw new Error(`no URL and code in "${prompt}"`);
  const browser = new SandboxBrowser([]);
  const entry = page(await browser.open(match[1]));
  const picker = page(await entry.click('Next', { otc: match[2] }));
  const confirm = page(await picker.click(upn));
  return page(await confirm.click(decision));
}

/** `connect --device-code`, with the user doing their part once the code is shown. */
async function deviceCode(connection: Connection, upn: string, decision: 'Accept' | 'Cancel' = 'Accept'): Promise<CliRun & { seen: string }> {
  let user: Promise<SandboxPage> | undefined;
  const run = await cli(['connect', '--device-code', ...target(connection)], {
    onErr: (line) => {
      if (user) return;
      user = enterCode(line, upn, decision);
      // Awaited below, once the command is done; until then a failure must not count as unhandled.
      user.catch(() => undefined);
    },
  });
  if (!user) throw new Error(`no device code was shown: ${run.err} ${String(run.error)}`);
  return { ...run, seen: (await user).text };
}

async function snapshot(connection: Connection) {
  const events = (await env.services.repositories.events.all(connection.customerId)).filter((event) => event.connectionId === connection.id);
  return { connection: await env.connection(connection), tokens: await env.tokenCache(connection.id), events: events.length };
}

function failure(run: CliRun): string {
  expect(run.error, run.out).toBeInstanceOf(AdminError);
  return (run.error as Error).message;
}

describe('connect --device-code', () => {
  it('connects the user who entered the code; the tokens then refresh as a public client', async () => {
    const contoso = await env.createDirectory('Contoso Device');
    // Device code asks for one resource; the other's permissions come from the organization's grant.
    await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
    const connection = await env.createConnection({ customerId: 'cli-device', mode: 'delegated', transports: { send: 'smtp', receive: 'imap' } });

    const run = await deviceCode(connection, contoso.user.userPrincipalName);
    expect(run.error).toBeUndefined();
    expect(run.err).toMatch(/To sign in, use a web browser to open the page http:\/\/localhost:\d+\/devicelogin and enter the code \w+/);
    expect(run.seen).toContain('You have signed in to the Fabrikam Helpdesk application on your device');
    expect(run.out).toContain(`Connection ${connection.id} is connected: ${contoso.user.userPrincipalName} signed in by device code (tenant ${contoso.tenant.id}).`);
    expect(run.out).toContain(`Mailboxes: ${contoso.user.userPrincipalName}`);
    expect(run.out).not.toContain('Warning');

    const stored = await env.connection(connection);
    expect(stored).toMatchObject({ state: 'connected', signInMethod: 'device-code', tenantId: contoso.tenant.id, account: { oid: contoso.user.id } });
    expect(stored.granted).toEqual(expect.arrayContaining(['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send']));

    // Without cached access tokens, AccessTokens has to redeem the refresh token: as a public client.
    const cache = JSON.parse((await env.tokenCache(connection.id)) ?? '{}') as Record<string, unknown>;
    expect(Object.keys(cache.RefreshToken as object)).toHaveLength(1);
    await env.services.secrets.set(tokenCacheSecretName(connection.id), JSON.stringify({ ...cache, AccessToken: {} }));
    const outlook = await env.identity.accessTokens.getAccessToken(stored, 'outlook');
    expect(decodeJwt(outlook.token)).toMatchObject({ aud: 'https://outlook.office.com', upn: contoso.user.userPrincipalName, appidacr: '0' });
    const graph = await env.identity.accessTokens.getAccessToken(stored, 'graph');
    expect(decodeJwt(graph.token)).toMatchObject({ aud: 'https://graph.microsoft.com', appidacr: '0' });
    const refreshTokens = (await env.sandbox.control.issued(env.clientId)).refreshTokens.filter((t) => t.user === contoso.user.userPrincipalName);
    expect(refreshTokens.some((t) => t.lastRedeemedAt !== undefined)).toBe(true);
    expect(refreshTokens.every((t) => t.publicClient === true)).toBe(true);

    // What the confidential client (the app's secret) would get for the same refresh token.
    const storedCache = (await env.tokenCache(connection.id)) ?? '';
    const confidential = await env.identity.msal.delegated('default', contoso.tenant.id, {
      beforeCacheAccess: (context) => {
        context.tokenCache.deserialize(storedCache);
        return Promise.resolve();
      },
      afterCacheAccess: () => Promise.resolve(),
    });
    const account = await confidential.getTokenCache().getAccountByHomeId(`${contoso.user.id}.${contoso.tenant.id}`);
    if (!account) throw new Error('the cache holds no account');
    await expect(confidential.acquireTokenSilent({ account, scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All'], forceRefresh: true })).rejects.toMatchObject({
      errorCode: 'invalid_client',
      errorMessage: expect.stringContaining('AADSTS700025') as unknown,
    });
  });

  it('says so when the user declines or the code expires, and stores nothing', async () => {
    const declining = await env.createDirectory('Declining Device');
    const connection = await env.createConnection({ customerId: 'cli-device-declined', mode: 'delegated' });

    const declined = await deviceCode(connection, declining.user.userPrincipalName, 'Cancel');
    expect(declined.seen).toContain('You have declined to sign in');
    expect(failure(declined)).toMatch(/^Not connected\. The sign-in was declined on Microsoft's page; nothing was connected\.\nNext: Run the command again/);

    const expired = await cli(['connect', '--device-code', ...target(connection)], {
      onErr: () => {
        clockOffset = 16 * 60_000;
      },
    });
    clockOffset = 0;
    expect(failure(expired)).toMatch(/Nobody completed the sign-in before the code expired/);
    expect(failure(expired)).toMatch(/Microsoft: expired_token/);
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });

  it('refuses a reconnect by another user and keeps what it had; warns when the other resource was never granted', async () => {
    const fabrikam = await env.createDirectory('Fabrikam Device');
    const connection = await env.createConnection({ customerId: 'cli-device-reconnect', mode: 'delegated', transports: { send: 'graph', receive: 'imap' } });
    const first = await deviceCode(connection, fabrikam.user.userPrincipalName);
    expect(first.error).toBeUndefined();
    // The user consented to Exchange (IMAP) only: Graph's Mail.Send and User.Read were never asked.
    expect(first.out).toMatch(/Warning: No Microsoft Graph token: nobody has granted them for this user\. The connection needs https:\/\/graph\.microsoft\.com\/Mail\.Send/);
    expect(first.out).toMatch(/http:\/\/localhost:\d+\/api\/connect\/[\w-]+\.[\w-]+/);
    const before = await snapshot(connection);

    const other = await deviceCode(connection, fabrikam.admin.userPrincipalName);
    expect(failure(other)).toBe(
      `Not connected. ${fabrikam.admin.userPrincipalName} signed in, but connection ${connection.id} belongs to ${fabrikam.user.userPrincipalName}; nothing was changed.\n` +
        `Next: Run the command again and sign in as ${fabrikam.user.userPrincipalName}, or create a new connection for the other account.`,
    );
    expect(await snapshot(connection)).toEqual(before);
  });

  it('refuses application, disconnected and unknown connections before asking Microsoft', async () => {
    const application = await env.createConnection({ customerId: 'cli-device-refused', mode: 'application' });
    const disconnected = await env.createConnection({ customerId: 'cli-device-refused', mode: 'delegated' });
    await changeConnectionState(env.services.api.connections, disconnected.customerId, disconnected.id, 'disconnected', { code: 'test', message: 'test' });
    const issuedBefore = (await env.sandbox.control.issued(env.clientId)).deviceCodes.length;

    expect(failure(await cli(['connect', '--device-code', ...target(application)]))).toMatch(/is an application connection: an administrator grants it app-only access/);
    expect(failure(await cli(['connect', '--device-code', ...target(disconnected)]))).toMatch(/is disconnected/);
    expect(failure(await cli(['connect', '--device-code', '--customer', 'cli-device-refused', '--connection', 'con_01J0000000000000000000000Z']))).toBe(
      'Customer cli-device-refused has no connection con_01J0000000000000000000000Z.',
    );
    expect(failure(await cli(['connect', ...target(application)]))).toMatch(/--device-code, or --password --username/);
    expect((await cli(['connect', '--device-code', '--customer', 'x', '--connection', 'nope'])).err).toMatch(/connection ids look like con_/);
    expect((await cli(['connect', '--device-code', '--password', ...target(application)])).err).toMatch(/cannot be used with/);
    expect((await env.sandbox.control.issued(env.clientId)).deviceCodes).toHaveLength(issuedBefore);
  });
});

describe('connect --password (ROPC)', () => {
  async function ropcDirectory(name: string, consented = true): Promise<Directory & { service: string }> {
    const directory = await env.createDirectory(name);
    const service = `svc-mail@${directory.domain}`;
    await env.sandbox.control.createUser(directory.tenant.id, { userPrincipalName: service, displayName: 'Mail service account', password: PASSWORD });
    if (consented) await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
    return { ...directory, service };
  }

  it('is refused unless ALLOW_ROPC=true, before the password is asked for', async () => {
    const directory = await ropcDirectory('Ropc Off');
    const connection = await env.createConnection({ customerId: 'cli-ropc-off', mode: 'delegated' });
    const config = env.services.config;
    if (!config.identity) throw new Error('no identity configuration');
    let asked = false;
    const withoutRopc = deps({ ...env.services, config: { ...config, identity: { ...config.identity, allowRopc: false } } }, () => {
      asked = true;
      return Promise.resolve(PASSWORD);
    });
    const run = await cli(['connect', '--password', '--username', directory.service, ...target(connection)], { deps: withoutRopc });
    expect(failure(run)).toBe(
      'Not connected. Password sign-in (ROPC) is off: it gets around MFA and Conditional Access.\n' +
        'Next: Use --device-code. For a test tenant or a service account only, an administrator of the connector can set ALLOW_ROPC=true.',
    );
    expect(asked).toBe(false);
    expect(logs.filter((record) => record.level === 'warn')).toEqual([]);
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });

  it('is refused by `npm run connector` when the setting is absent', async () => {
    const connection = await env.createConnection({ customerId: 'cli-ropc-npm', mode: 'delegated' });
    const childEnv: NodeJS.ProcessEnv = { ...process.env, CONNECT_PASSWORD: PASSWORD };
    delete childEnv.ALLOW_ROPC;
    const run = promisify(execFile)('npm', ['run', '--silent', 'connector', '--', 'connect', '--password', '--username', 'svc@example.com', ...target(connection)], { cwd: root, env: childEnv });
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('Password sign-in (ROPC) is off') as unknown });
  }, 60_000);

  it('connects with the password where ALLOW_ROPC=true, logging a warning, and refreshes as the confidential client', async () => {
    const directory = await ropcDirectory('Ropc On');
    const connection = await env.createConnection({ customerId: 'cli-ropc', mode: 'delegated', transports: { send: 'graph', receive: 'imap' } });
    const run = await cli(['connect', '--password', '--username', directory.service, ...target(connection)]);
    expect(run.error).toBeUndefined();
    expect(run.out).toContain(`Connection ${connection.id} is connected: ${directory.service} signed in by password (ROPC) (tenant ${directory.tenant.id}).`);
    expect(run.out).not.toContain('Warning');
    expect(run.out + run.err).not.toContain(PASSWORD);
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: expect.stringMatching(/password sign-in \(ROPC\).*bypasses MFA and Conditional Access.*test tenants and service accounts/) as unknown,
        connectionId: connection.id,
      }),
    );
    expect(JSON.stringify(logs)).not.toContain(PASSWORD);

    const stored = await env.connection(connection);
    expect(stored).toMatchObject({ state: 'connected', signInMethod: 'password', account: { upn: directory.service } });
    const graph = await env.identity.accessTokens.getAccessToken(stored, 'graph');
    expect(decodeJwt(graph.token)).toMatchObject({ aud: 'https://graph.microsoft.com', upn: directory.service, appidacr: '1' });
  });

  it('explains a wrong password, and missing consent with an admin-grant link, storing nothing', async () => {
    const directory = await ropcDirectory('Ropc Wrong');
    const connection = await env.createConnection({ customerId: 'cli-ropc-wrong', mode: 'delegated' });
    const wrong = await cli(['connect', '--password', '--username', directory.service, ...target(connection)], { deps: deps(env.services, () => Promise.resolve('not the password')) });
    expect(failure(wrong)).toMatch(/^Not connected\. Microsoft did not accept the username and password; nothing was connected\.\nNext: Check both/);
    expect(failure(wrong)).toMatch(/Microsoft: invalid_grant, AADSTS50126, trace id [0-9a-f-]{36}, correlation id [0-9a-f-]{36}$/);

    const unconsented = await ropcDirectory('Ropc Unconsented', false);
    const noConsent = await cli(['connect', '--password', '--username', unconsented.service, ...target(connection)]);
    expect(failure(noConsent)).toMatch(/Nobody has granted the app's permissions for this user, and a password sign-in cannot ask for consent/);
    expect(failure(noConsent)).toMatch(/\n {2}http:\/\/localhost:\d+\/api\/connect\/[\w-]+\.[\w-]+\n/);
    expect(failure(noConsent)).toMatch(/AADSTS65001/);
    expect(await snapshot(connection)).toMatchObject({ connection: { state: 'pending' }, tokens: undefined, events: 1 });
  });
});
