import { createHash } from 'node:crypto';
import { ConfidentialClientApplication, LogLevel, PublicClientApplication, type Configuration, type ICachePlugin } from '@azure/msal-node';
import type { AppRegistrationConfig } from '../config.js';
import type { Logger } from '../telemetry/logger.js';
import type { AppCredential } from './app-credentials.js';

/**
 * msal-node clients for the vendor's app registrations. The authority is the app's cloud and a
 * tenant (`organizations` for sign-in, the customer's tenant id afterwards); the cloud's host is a
 * known authority, so msal reads the cloud's own metadata instead of asking Microsoft's instance
 * discovery — the same code for every Microsoft cloud and for any identity platform that speaks
 * the protocol.
 */

export interface MsalClientDeps {
  apps: readonly AppRegistrationConfig[];
  credential(app: AppRegistrationConfig): Promise<AppCredential>;
  logger: Logger;
}

export class UnknownAppError extends Error {
  constructor(appId: string) {
    super(`No app registration "${appId}" is configured.`);
    this.name = 'UnknownAppError';
  }
}

export class MsalClients {
  /**
   * One per app for client credentials (msal caches app-only tokens per tenant inside it), made
   * again when the app's credential changed in the secret store (a rotated secret or certificate).
   */
  private readonly appOnly = new Map<string, { credential: string; client: ConfidentialClientApplication }>();

  constructor(private readonly deps: MsalClientDeps) {}

  app(appId: string): AppRegistrationConfig {
    const app = this.deps.apps.find((candidate) => candidate.id === appId);
    if (!app) throw new UnknownAppError(appId);
    return app;
  }

  authority(app: AppRegistrationConfig, tenant: string): string {
    return `${app.cloud.loginUrl}/${tenant}`;
  }

  /**
   * A client for delegated work: sign-in at `organizations`, or a connection's tenant with that
   * connection's token cache (a fresh client per use, so one connection's tokens never meet
   * another's).
   */
  async delegated(appId: string, tenant: string, cachePlugin?: ICachePlugin): Promise<ConfidentialClientApplication> {
    const app = this.app(appId);
    return this.create(app, tenant, cachePlugin);
  }

  /** The app's client for client-credentials tokens, authority per request. */
  async appOnlyClient(appId: string): Promise<ConfidentialClientApplication> {
    const app = this.app(appId);
    const credential = await this.deps.credential(app);
    const fingerprint = credentialFingerprint(credential);
    const current = this.appOnly.get(app.id);
    if (current?.credential === fingerprint) return current.client;
    const client = this.build(app, 'organizations', undefined, credential);
    this.appOnly.set(app.id, { credential: fingerprint, client });
    return client;
  }

  /**
   * A public client of the app, for the flows Microsoft offers only to public clients (device
   * code): the app registration must allow public client flows, and a connection made this way
   * refreshes its tokens as a public client too.
   */
  publicClient(appId: string, tenant: string, cachePlugin?: ICachePlugin): PublicClientApplication {
    const app = this.app(appId);
    return new PublicClientApplication(this.configuration(app, tenant, cachePlugin));
  }

  private async create(app: AppRegistrationConfig, tenant: string, cachePlugin: ICachePlugin | undefined): Promise<ConfidentialClientApplication> {
    return this.build(app, tenant, cachePlugin, await this.deps.credential(app));
  }

  private build(app: AppRegistrationConfig, tenant: string, cachePlugin: ICachePlugin | undefined, credential: AppCredential): ConfidentialClientApplication {
    const configuration = this.configuration(app, tenant, cachePlugin);
    return new ConfidentialClientApplication({ ...configuration, auth: { ...configuration.auth, ...credential } });
  }

  private configuration(app: AppRegistrationConfig, tenant: string, cachePlugin: ICachePlugin | undefined): Configuration {
    const logger = this.deps.logger;
    return {
      auth: {
        clientId: app.clientId,
        authority: this.authority(app, tenant),
        knownAuthorities: [new URL(app.cloud.loginUrl).host],
      },
      ...(cachePlugin && { cache: { cachePlugin } }),
      system: {
        loggerOptions: {
          // msal's own diagnostics, without personal data (it never logs tokens at this setting).
          piiLoggingEnabled: false,
          logLevel: LogLevel.Warning,
          loggerCallback: (level, message, containsPii) => {
            if (containsPii) return;
            if (level === LogLevel.Error) logger.error(`msal: ${message}`);
            else logger.warn(`msal: ${message}`);
          },
        },
      },
    };
  }
}

/** What tells one credential from the next without keeping it: a hash of the secret, the certificate's thumbprint. */
function credentialFingerprint(credential: AppCredential): string {
  if (credential.clientSecret !== undefined) return `secret:${createHash('sha256').update(credential.clientSecret).digest('base64url')}`;
  if (credential.clientCertificate !== undefined) return `certificate:${credential.clientCertificate.thumbprintSha256 ?? ''}`;
  // A managed identity's assertion is fetched afresh by msal each time: nothing to rotate here.
  return 'assertion';
}
