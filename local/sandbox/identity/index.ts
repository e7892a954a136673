import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { openLocalCa } from '../../tls/local-ca.js';
import { graphBase, graphRoutes, type MailboxLimits, type MailRelayOptions } from '../graph/index.js';
import { adminConsentEndpoint } from './admin-consent-endpoint.js';
import { authorizeEndpoint, logoutEndpoint } from './authorize-endpoint.js';
import { DEFAULT_LIFETIMES, type SandboxContext, type SandboxLifetimes } from './context.js';
import { controlRoutes } from './control-api.js';
import { SandboxControl } from './control-client.js';
import { deviceCodeEndpoint, deviceLoginPage, deviceLoginSubmit } from './device-code-endpoint.js';
import { instanceDiscoveryEndpoint, keysEndpoint, openIdConfigurationEndpoint } from './discovery.js';
import { routeRequests, type Route } from './http.js';
import { msalAuthOptions, type SandboxMsalAuthOptions } from './msal-config.js';
import { createSandboxFaults } from './request-faults.js';
import { emptySandboxData, SandboxState } from './sandbox-state.js';
import { Interactions } from './sign-in-flow.js';
import { createSigningKeyMaterial, loadSigningKey, type SigningKeyMaterial } from './signing-key.js';
import { readStateFile, StateFile } from './state-file.js';
import { tokenEndpoint } from './token-endpoint.js';

/**
 * A local Microsoft identity platform (v2.0) for the connector, `npm start` and the tests; see
 * README.md. Two listeners: HTTPS on 127.0.0.1 (certificate from the local CA) for everything
 * msal-node calls server to server, the sandbox Graph (../graph) under /graph, and plain HTTP on
 * localhost for the pages a browser opens, advertised as the metadata's authorization_endpoint.
 */

export interface SandboxIdentityOptions {
  /** The local CA's folder (local/tls/local-ca.ts); the HTTPS certificate is issued from it. */
  caDirectory: string;
  /** Keep state in `<dataDir>/identity-sandbox.json` across restarts; omitted = in memory only. */
  dataDir?: string;
  /** 0 (the default) picks a free port. */
  httpsPort?: number;
  browserPort?: number;
  /** The host name the browser pages are advertised under (default localhost). */
  browserHost?: string;
  lifetimes?: Partial<SandboxLifetimes>;
  /**
   * The token signing key when no saved state has one (default: a new key). Tests pass the key a
   * mail server already trusts, so one Dovecot serves every test file.
   */
  signingKey?: SigningKeyMaterial;
  /** The clock, in milliseconds since the epoch; tests move it to expire codes. */
  now?: () => number;
  /**
   * The sandbox Graph's per-mailbox limits: `concurrent` requests per app and mailbox (Graph's 4),
   * `sendsPerMinute` per mailbox (Exchange's 30); null switches one off. `control.setMailboxLimits` changes them later.
   */
  mailboxLimits?: Partial<MailboxLimits>;
  /**
   * Sent mail to recipients in these domains that are no sandbox mailbox is delivered over LMTP
   * (the test Dovecot's), after the 202; failures are logged and counted in `graphStats`.
   * `PUT /_sandbox/graph/relay` changes it later. Omitted: such mail only shows in Sent Items.
   */
  mailRelay?: MailRelayOptions;
  /** Where unexpected failures (a bug, a state file that cannot be written) are reported. */
  log?: (message: string, error: unknown) => void;
}

/** A public key for the test mail server's key dict (`writeSigningKeys`), and for any validator. */
export interface SandboxSigningKey {
  kid: string;
  publicKeyPem: string;
}

export interface RunningSandboxIdentity {
  /** https://127.0.0.1:<port>: the authority host (`<httpsBase>/<tenant>`). */
  httpsBase: string;
  /** `<httpsBase>/graph`: the sandbox Microsoft Graph, for ENTRA_GRAPH_URL (its tokens' audience stays https://graph.microsoft.com). */
  graphBase: string;
  /** http://localhost:<port>: sign-in, consent and device code pages. */
  browserBase: string;
  /** The CA that issued the HTTPS certificate: trust it with NODE_EXTRA_CA_CERTS or tls.setDefaultCACertificates. */
  caPem: string;
  signingKeys: SandboxSigningKey[];
  /** The JWKS /discovery/v2.0/keys serves. */
  jwks: { keys: Record<string, unknown>[] };
  /** msal-node `auth` options for `<httpsBase>/<tenant>` (tenant id, domain, `organizations`). */
  msalAuthOptions(tenant: string): SandboxMsalAuthOptions;
  control: SandboxControl;
  stop(): Promise<void>;
}

const STATE_FILE = 'identity-sandbox.json';

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => {
      if (error) reject(error);
      else resolve();
    });
    server.closeAllConnections();
  });
}

const tenantPath = (rest: string) => new RegExp(`^/([^/]+)${rest}$`, 'i');

export async function startSandboxIdentity(options: SandboxIdentityOptions): Promise<RunningSandboxIdentity> {
  const log =
    options.log ??
    ((message: string, error: unknown) => {
      console.error(`sandbox identity: ${message}`, error);
    });
  const statePath = options.dataDir === undefined ? undefined : join(options.dataDir, STATE_FILE);
  const persisted = statePath === undefined ? undefined : await readStateFile(statePath);
  const material = persisted?.signingKey ?? options.signingKey ?? (await createSigningKeyMaterial());
  const signingKey = await loadSigningKey(material);
  const state = new SandboxState(persisted?.data ?? emptySandboxData());
  const stateFile = statePath === undefined ? undefined : new StateFile(statePath, () => StateFile.contents(material, state.data), (error) => {
    log(`could not save ${statePath}`, error);
  });
  stateFile?.changed();

  const ca = await openLocalCa(options.caDirectory);
  const certificate = await ca.issueServerCertificate();
  // Routes need the ports the servers got, so the servers start with a stand-in until they are built.
  let serveHttps: RequestListener = (_request, response) => {
    response.writeHead(503).end();
  };
  let serveBrowser = serveHttps;
  const httpsServer = createHttpsServer({ cert: certificate.certPem, key: certificate.keyPem }, (request, response) => {
    serveHttps(request, response);
  });
  const browserServer = createHttpServer((request, response) => {
    serveBrowser(request, response);
  });
  const httpsPort = await listen(httpsServer, options.httpsPort ?? 0);
  const browserPort = await listen(browserServer, options.browserPort ?? 0).catch(async (error: unknown) => {
    await close(httpsServer);
    throw error;
  });

  const context: SandboxContext = {
    state,
    signer: signingKey,
    httpsBase: `https://127.0.0.1:${httpsPort}`,
    browserBase: `http://${options.browserHost ?? 'localhost'}:${browserPort}`,
    lifetimes: { ...DEFAULT_LIFETIMES, ...options.lifetimes },
    now: options.now ?? Date.now,
  };
  const faults = createSandboxFaults(() => context.now());
  const interactions = new Interactions(context);
  const browserRoutes: Route[] = [
    { method: 'GET', path: tenantPath('/oauth2/v2\\.0/authorize'), handler: authorizeEndpoint(context, interactions) },
    { method: 'GET', path: tenantPath('/v2\\.0/adminconsent'), handler: adminConsentEndpoint(context, interactions) },
    { method: 'POST', path: tenantPath('/login'), handler: (request) => interactions.continue(request) },
    { method: 'GET', path: tenantPath('/oauth2/v2\\.0/logout'), handler: logoutEndpoint() },
    { method: 'GET', path: /^\/devicelogin$/i, handler: deviceLoginPage(context) },
    { method: 'POST', path: /^\/devicelogin$/i, handler: deviceLoginSubmit(context, interactions) },
  ];
  const serverRoutes: Route[] = [
    { method: 'GET', path: tenantPath('/v2\\.0/\\.well-known/openid-configuration'), handler: openIdConfigurationEndpoint(context) },
    { method: 'GET', path: tenantPath('/discovery/v2\\.0/keys'), handler: keysEndpoint(context, signingKey.jwk) },
    { method: 'GET', path: /^\/common\/discovery\/instance$/i, handler: instanceDiscoveryEndpoint(context) },
    { method: 'POST', path: tenantPath('/oauth2/v2\\.0/token'), handler: tokenEndpoint(context, faults) },
    { method: 'POST', path: tenantPath('/oauth2/v2\\.0/devicecode'), handler: deviceCodeEndpoint(context) },
    ...controlRoutes(context, faults),
    ...graphRoutes({ context, faults: faults.graph, signingKey, mailboxLimits: options.mailboxLimits, mailRelay: options.mailRelay, log }),
  ];
  const onError = (error: unknown) => {
    log('a request failed', error);
  };
  // Everything but GET may change what is kept, so each such request schedules a save.
  const saving = (listener: RequestListener): RequestListener => (request, response) => {
    if (stateFile && request.method !== 'GET') response.once('finish', () => {
      stateFile.changed();
    });
    listener(request, response);
  };
  // The pages are on both listeners, so a browser sent to the https authority still finds them.
  serveHttps = saving(routeRequests([...serverRoutes, ...browserRoutes], onError));
  serveBrowser = saving(routeRequests(browserRoutes, onError));

  return {
    httpsBase: context.httpsBase,
    graphBase: graphBase(context.httpsBase),
    browserBase: context.browserBase,
    caPem: ca.certPem,
    signingKeys: [{ kid: signingKey.kid, publicKeyPem: signingKey.publicKeyPem }],
    jwks: { keys: [signingKey.jwk] },
    msalAuthOptions: (tenant) => msalAuthOptions(context, tenant),
    control: new SandboxControl(context.httpsBase, ca.certPem),
    async stop() {
      await Promise.all([close(httpsServer), close(browserServer)]);
      await stateFile?.flush();
    },
  };
}

export type { SandboxMsalAuthOptions } from './msal-config.js';
export { SandboxControl, SandboxControlError } from './control-client.js';
export { createSigningKeyMaterial, loadSigningKey, type SigningKeyMaterial } from './signing-key.js';
