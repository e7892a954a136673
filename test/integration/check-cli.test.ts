import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../local/free-port.js';
import { AdminError, buildAdminCli, type AdminDeps } from '../../src/admin/admin-cli.js';
import { adminDeps } from '../../src/admin/admin-deps.js';
import { signInWithPassword } from '../../src/connect/password-sign-in.js';
import { changeConnectionState } from '../../src/connections/connections.js';
import type { CheckOptions } from '../../src/connectivity/check-connection.js';
import { connectionCheckSchema } from '../../src/domain/connection-check.js';
import type { Connection } from '../../src/domain/connection.js';
import { tokenCacheSecretName } from '../../src/identity/token-cache-store.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';

/**
 * `npm run connector -- check`: the connectivity checker for ops, with the real services against
 * the sandbox identity platform. Tokens come from the sandbox; the IMAP and SMTP hosts are a local
 * port nobody listens on, so those steps fail the way an unreachable Exchange does, and the output
 * must name the step, the cause and what to do.
 */

const PASSWORD = 'correct horse battery staple';
const root = fileURLToPath(new URL('../../', import.meta.url));
let env: ConnectEnvironment;
let closedPort: number;

beforeAll(async () => {
  closedPort = await freePort();
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    env: { ALLOW_ROPC: 'true', ENTRA_IMAP_HOST: `127.0.0.1:${String(closedPort)}`, ENTRA_SMTP_HOST: `127.0.0.1:${String(closedPort)}` },
  });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

interface CliRun {
  out: string;
  err: string;
  error?: unknown;
}

async function cli(args: string[], deps: AdminDeps = adminDeps(env.services, () => Promise.resolve(PASSWORD))): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const program = buildAdminCli(() => Promise.resolve(deps), { out: (text) => out.push(text), err: (text) => err.push(text) });
  try {
    await program.parseAsync(['node', 'connector', ...args]);
    return { out: out.join('\n'), err: err.join('\n') };
  } catch (error) {
    return { out: out.join('\n'), err: err.join('\n'), error };
  }
}

function target(connection: Pick<Connection, 'customerId' | 'id'>): string[] {
  return ['--customer', connection.customerId, '--connection', connection.id];
}

function failure(run: CliRun): string {
  expect(run.error, run.out).toBeInstanceOf(AdminError);
  return (run.error as Error).message;
}

/** A tenant that consented, with a service account signed in to a new delegated IMAP + SMTP connection by password. */
async function connected(name: string, mailboxes: string[] = []): Promise<{ directory: Directory; connection: Connection; upn: string }> {
  const directory = await env.createDirectory(name);
  const upn = `svc-mail@${directory.domain}`;
  await env.sandbox.control.createUser(directory.tenant.id, { userPrincipalName: upn, displayName: 'Mail service account', password: PASSWORD });
  await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
  const created = await env.createConnection({
    customerId: `check-${name.toLowerCase().replace(/\W/g, '-')}`,
    mode: 'delegated',
    transports: { send: 'smtp', receive: 'imap' },
    mailboxes: mailboxes.map((local) => `${local}@${directory.domain}`),
  });
  const report = await signInWithPassword(
    { flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger: createLogger({ level: 'error', sink: () => undefined }), allowRopc: true },
    created,
    { username: upn, password: () => Promise.resolve(PASSWORD) },
  );
  expect(report).toMatchObject({ kind: 'connected' });
  return { directory, connection: await env.connection(created), upn };
}

describe('check', () => {
  it('prints a line per step, and under each failure its cause and what to do; fails the command', async () => {
    const { connection, upn } = await connected('Unreachable');
    const run = await cli(['check', ...target(connection)]);
    const lines = run.out.split('\n');

    expect(lines[0]).toMatch(/^✓ token {2}outlook +\d+ ms$/);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^✗ imap {3}${upn.replace(/\./g, '\\.')} +\\d+ ms$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^✗ smtp {3}\S+ +\d+ ms$/));
    expect(run.out).toMatch(/\n {4}Cause: network_unreachable\b.*\n {4}The connector could not reach the IMAP server/);
    expect(run.out).toContain('The connector could not reach the IMAP server: the host name did not resolve, the connection was refused, or the server did not answer in time.');
    expect(run.out).toContain('    Next: Check the IMAP host and port');
    expect(run.out).toContain('    Next: Check the SMTP host and port');
    expect(failure(run)).toBe(`2 of 3 steps failed for connection ${connection.id}; fix the first failure first.`);
  });

  it('prints the ConnectionCheck with --json, and checks only the mailboxes named, passing a test address on', async () => {
    const { directory, connection, upn } = await connected('Json', ['shared']);
    const json = await cli(['check', ...target(connection), '--json']);
    const check = connectionCheckSchema.parse(JSON.parse(json.out));
    expect(check).toMatchObject({ connectionId: connection.id, state: 'connected', ok: false });
    // The shared mailbox was added before the user signed in, and mailboxes are listed oldest first.
    expect(check.steps.map((step) => [step.step, step.mailbox ?? step.resource, step.outcome, step.cause?.code])).toEqual([
      ['token', 'outlook', 'ok', undefined],
      ['imap', `shared@${directory.domain}`, 'failed', 'network_unreachable'],
      ['smtp', `shared@${directory.domain}`, 'failed', 'network_unreachable'],
      ['imap', upn, 'failed', 'network_unreachable'],
      ['smtp', upn, 'failed', 'network_unreachable'],
    ]);
    expect(failure(json)).toMatch(/^4 of 5 steps failed/);

    const asked: CheckOptions[] = [];
    const deps = adminDeps(env.services, () => Promise.resolve(PASSWORD));
    const real = deps.checkConnection;
    if (!real) throw new Error('no checker');
    const spied: AdminDeps = {
      ...deps,
      checkConnection: (c, options) => {
        asked.push(options);
        return real(c, options);
      },
    };
    const one = await cli(['check', ...target(connection), '--mailbox', `SHARED@${directory.domain}`, '--test-message-to', 'ops@fabrikam.example', '--json'], spied);
    expect(asked).toEqual([{ mailboxes: [`SHARED@${directory.domain}`], testMessageTo: 'ops@fabrikam.example' }]);
    expect(connectionCheckSchema.parse(JSON.parse(one.out)).steps.map((step) => step.mailbox ?? step.resource)).toEqual(['outlook', `shared@${directory.domain}`, `shared@${directory.domain}`]);

    expect(failure(await cli(['check', ...target(connection), '--mailbox', 'nobody@elsewhere.example'], spied))).toBe(
      `Connection ${connection.id} has no mailbox nobody@elsewhere.example; its mailboxes: shared@${directory.domain}, ${upn}.`,
    );
    expect(asked).toHaveLength(1);
    expect((await cli(['check', ...target(connection), '--test-message-to', 'not-an-address'])).err).toMatch(/not an email address/);
  });

  it("names an expired sign-in at the token step and skips what needs the token", async () => {
    const { directory, connection, upn } = await connected('Revoked');
    await env.sandbox.control.revokeSessions(directory.tenant.id, upn);
    // The access tokens of the sign-in would still be good: only redeeming the refresh token meets the revocation.
    const cache = JSON.parse((await env.tokenCache(connection.id)) ?? '{}') as Record<string, unknown>;
    await env.services.secrets.set(tokenCacheSecretName(connection.id), JSON.stringify({ ...cache, AccessToken: {} }));
    env.identity.accessTokens.forget(connection.id);
    const run = await cli(['check', ...target(connection)]);
    expect(run.out).toMatch(/^✗ token {2}outlook +\d+ ms\n {4}Cause: sign_in_expired \(AADSTS50173\)\n/);
    expect(run.out).toMatch(/\n {4}Next: .*reconnect link/);
    expect(run.out).toMatch(new RegExp(`\\n– imap {3}${upn.replace(/\./g, '\\.')} +skipped\\n`));
    expect(run.out).toMatch(/\n– smtp {3}\S+ +skipped$/);
    expect(failure(run)).toBe(`1 of 3 steps failed for connection ${connection.id}, 2 skipped because a step they need failed; fix the first failure first.`);
    // As any token request, the check moved the connection on.
    expect(await env.connection(connection)).toMatchObject({ state: 'needs_reauth' });
  });

  it('refuses pending, disconnected and unknown connections before checking anything', async () => {
    const pending = await env.createConnection({ customerId: 'check-refused', mode: 'application' });
    const disconnected = await env.createConnection({ customerId: 'check-refused', mode: 'delegated' });
    await changeConnectionState(env.services.api.connections, disconnected.customerId, disconnected.id, 'disconnected', { code: 'test', message: 'test' });
    expect(failure(await cli(['check', ...target(pending)]))).toBe(
      `Connection ${pending.id} is pending: there is nothing to check until it is connected. Send the customer a consent link, or sign a user in with \`connect\`.`,
    );
    expect(failure(await cli(['check', ...target(disconnected)]))).toMatch(/is disconnected: there is nothing to check/);
    expect(failure(await cli(['check', '--customer', 'check-refused', '--connection', 'con_01J0000000000000000000000Z']))).toBe(
      'Customer check-refused has no connection con_01J0000000000000000000000Z.',
    );
  });

  it('exits non-zero through npm run connector when a step fails', async () => {
    const { connection } = await connected('Npm');
    // The child process must trust the sandbox's TLS, as the test process does.
    const ca = join(tmpdir(), `sandbox-ca-${String(process.pid)}.pem`);
    await writeFile(ca, env.sandbox.caPem);
    try {
      const run = promisify(execFile)('npm', ['run', '--silent', 'connector', '--', 'check', ...target(connection)], {
        cwd: root,
        env: { ...process.env, NODE_EXTRA_CA_CERTS: ca },
      });
      await expect(run).rejects.toMatchObject({
        code: 1,
        stdout: expect.stringMatching(/^✓ token {2}outlook[\s\S]*✗ imap[\s\S]*Cause: network_unreachable/) as unknown,
        stderr: expect.stringContaining(`2 of 3 steps failed for connection ${connection.id}`) as unknown,
      });
    } finally {
      await rm(ca, { force: true });
    }
  }, 60_000);
});
