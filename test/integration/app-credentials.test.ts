import type { AccessToken as AzureAccessToken, TokenCredential } from '@azure/identity';
import { X509Certificate, createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxIdentity, type RunningSandboxIdentity } from '../../local/sandbox/identity/index.js';
import { createSigningKeyMaterial } from '../../local/sandbox/identity/signing-key.js';
import type { AppCredentialConfig, AppRegistrationConfig } from '../../src/config.js';
import type { Connection } from '../../src/domain/connection.js';
import { AccessTokens, TokenUnavailableError } from '../../src/identity/access-tokens.js';
import { AppCredentialError, loadAppCredential } from '../../src/identity/app-credentials.js';
import { CLOUDS } from '../../src/identity/clouds.js';
import { MsalClients } from '../../src/identity/msal-clients.js';
import { LocalSecretStore } from '../../src/secrets/local-secret-store.js';
import { createLogger } from '../../src/telemetry/logger.js';

/**
 * Each way the vendor's app proves itself, through the connector's own loading (secret store,
 * managed identity) and msal-node, against the sandbox identity platform: an application
 * connection gets its app-only tokens with a client secret, a certificate, or the federated
 * credential of a user-assigned managed identity, and a misconfigured credential fails clearly.
 */

const defaultCas = tls.getCACertificates('default');
let directory: string;
let sandbox: RunningSandboxIdentity;
let tenantId: string;
let clientId: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'app-credentials-'));
  sandbox = await startSandboxIdentity({ caDirectory: join(directory, 'ca') });
  tls.setDefaultCACertificates([...defaultCas, sandbox.caPem]);
  tenantId = (await sandbox.control.createTenant({ displayName: 'Credentials Customer' })).id;
  clientId = (await sandbox.control.createApp({ displayName: 'Vendor', appRoles: ['https://graph.microsoft.com/Mail.Send', 'https://outlook.office365.com/IMAP.AccessAsApp'] })).clientId;
  await sandbox.control.grantConsent(tenantId, { clientId });
});

afterAll(async () => {
  await sandbox.stop();
  tls.setDefaultCACertificates(defaultCas);
  await rm(directory, { recursive: true, force: true });
});

const messages: string[] = [];
const logger = createLogger({ level: 'warn', sink: (record) => messages.push(JSON.stringify(record)) });

function appWith(credential: AppCredentialConfig): AppRegistrationConfig {
  return { id: 'default', clientId, cloud: { ...CLOUDS.global, name: 'custom', loginUrl: sandbox.httpsBase }, credential };
}

function applicationConnection(): Connection {
  const at = new Date().toISOString();
  return {
    id: 'con_01JCREDENTIALS0000000000000',
    customerId: 'credentials',
    mode: 'application',
    appId: 'default',
    transports: { send: 'graph', receive: 'imap' },
    state: 'connected',
    tenantId,
    tags: {},
    createdAt: at,
    updatedAt: at,
  } as Connection;
}

/** App-only tokens for both resources of a connection, with `credential` and these stored secrets. */
async function tokensWith(credential: AppCredentialConfig, stored: Record<string, string>, managedIdentity?: TokenCredential) {
  const secrets = await LocalSecretStore.open(await mkdtemp(join(directory, 'secrets-')));
  for (const [name, value] of Object.entries(stored)) await secrets.set(name, value);
  const app = appWith(credential);
  const msal = new MsalClients({
    apps: [app],
    credential: (registration) =>
      loadAppCredential(registration, secrets, () => managedIdentity ?? { getToken: () => Promise.reject(new Error('no managed identity here')) }),
    logger,
  });
  // Application connections take tokens on demand without the refresh lease (they have no refresh token).
  const noLeases = { acquire: () => Promise.reject(new Error('no lease needed')), acquireWaiting: () => Promise.reject(new Error('no lease needed')) };
  const tokens = new AccessTokens({ msal, secrets, leases: noLeases, logger, now: () => new Date() });
  const connection = applicationConnection();
  return { graph: await tokens.getAccessToken(connection, 'graph'), outlook: await tokens.getAccessToken(connection, 'outlook') };
}

function expectAppOnly(token: string, audience: string, roles: string[]): void {
  expect(decodeJwt(token)).toMatchObject({ aud: audience, tid: tenantId, appid: clientId, idtyp: 'app', roles });
}

describe('app credentials', () => {
  it('a client secret from the secret store', async () => {
    const secret = await sandbox.control.addClientSecret(clientId);
    const { graph, outlook } = await tokensWith({ kind: 'secret', secretName: 'entra-client-secret' }, { 'entra-client-secret': secret.value });
    expectAppOnly(graph.token, 'https://graph.microsoft.com', ['Mail.Send']);
    expectAppOnly(outlook.token, 'https://outlook.office365.com', ['IMAP.AccessAsApp']);
    expect(graph.subject).toBe(clientId);
  });

  it('a rotated client secret: the next token request uses the new one, without a restart', async () => {
    const first = await sandbox.control.addClientSecret(clientId);
    const secrets = await LocalSecretStore.open(await mkdtemp(join(directory, 'rotation-')));
    await secrets.set('entra-client-secret', first.value);
    const app = appWith({ kind: 'secret', secretName: 'entra-client-secret' });
    const msal = new MsalClients({ apps: [app], credential: (registration) => loadAppCredential(registration, secrets, () => ({ getToken: () => Promise.resolve(null) })), logger });
    const fresh = async () =>
      (await msal.appOnlyClient('default')).acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'], authority: `${sandbox.httpsBase}/${tenantId}`, skipCache: true });
    expect((await fresh())?.accessToken).toBeTruthy();

    const second = await sandbox.control.addClientSecret(clientId);
    await secrets.set('entra-client-secret', second.value);
    await sandbox.control.expireClientSecret(clientId, first.keyId);
    expectAppOnly((await fresh())?.accessToken ?? '', 'https://graph.microsoft.com', ['Mail.Send']);
  });

  it('a certificate from the secret store, as {privateKeyPem, thumbprintSha256}', async () => {
    const material = await createSigningKeyMaterial();
    await sandbox.control.addCertificate(clientId, { certificatePem: material.certificatePem });
    const thumbprintSha256 = createHash('sha256').update(new X509Certificate(material.certificatePem).raw).digest('hex').toUpperCase();
    const document = JSON.stringify({ privateKeyPem: material.privateKeyPem, thumbprintSha256 });
    const { graph } = await tokensWith({ kind: 'certificate', secretName: 'entra-client-certificate' }, { 'entra-client-certificate': document });
    expectAppOnly(graph.token, 'https://graph.microsoft.com', ['Mail.Send']);
    // The certificate proved the app: no secret was involved.
    expect(decodeJwt(graph.token).appidacr).toBe('2');
  });

  it('a user-assigned managed identity as federated credential: no secret anywhere', async () => {
    const identityKey = await generateKeyPair('RS256', { extractable: true });
    const issuer = `https://login.microsoftonline.com/${randomUUID()}/v2.0`;
    const principalId = randomUUID();
    await sandbox.control.addFederatedCredential(clientId, {
      name: 'connector',
      issuer,
      subject: principalId,
      audiences: ['api://AzureADTokenExchange'],
      jwks: { keys: [{ ...(await exportJWK(identityKey.publicKey)), kid: 'mi', use: 'sig' }] },
    });
    const scopes: string[] = [];
    // Stands in for the managed identity endpoint of Azure (IMDS), which cannot run here.
    const managedIdentity: TokenCredential = {
      async getToken(scope): Promise<AzureAccessToken> {
        scopes.push(...[scope].flat());
        const token = await new SignJWT({ idtyp: 'app', oid: principalId })
          .setProtectedHeader({ alg: 'RS256', kid: 'mi' })
          .setIssuer(issuer)
          .setSubject(principalId)
          .setAudience('api://AzureADTokenExchange')
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(identityKey.privateKey);
        return { token, expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    const { graph, outlook } = await tokensWith({ kind: 'managed-identity', clientId: randomUUID() }, {}, managedIdentity);
    expectAppOnly(graph.token, 'https://graph.microsoft.com', ['Mail.Send']);
    expectAppOnly(outlook.token, 'https://outlook.office365.com', ['IMAP.AccessAsApp']);
    expect(new Set(scopes)).toEqual(new Set(['api://AzureADTokenExchange/.default']));
  });

  it('fails clearly when the credential is missing or not what Microsoft has, and never echoes it', async () => {
    await expect(tokensWith({ kind: 'secret', secretName: 'entra-client-secret' }, {})).rejects.toThrow(AppCredentialError);
    await expect(tokensWith({ kind: 'certificate', secretName: 'entra-client-certificate' }, { 'entra-client-certificate': '-----BEGIN PRIVATE KEY-----\nnot json' })).rejects.toThrow(
      /not in the secret store under "entra-client-certificate" as \{privateKeyPem, thumbprintSha256\}/,
    );
    const wrong = 'Xy7~wrong-secret-value-0123456789abcd';
    const failure = await tokensWith({ kind: 'secret', secretName: 'entra-client-secret' }, { 'entra-client-secret': wrong }).then(
      () => undefined,
      (error: unknown) => error as TokenUnavailableError,
    );
    // Named as the vendor's own configuration, with Microsoft's code; msal's error is its cause.
    expect(failure).toBeInstanceOf(TokenUnavailableError);
    expect(failure?.failure).toMatchObject({ kind: 'app_config', code: 'AADSTS7000215' });
    expect(failure?.cause).toMatchObject({ errorCode: 'invalid_client' });
    expect(`${failure?.message ?? ''} ${messages.join('\n')}`).not.toContain(wrong);
  });
});
