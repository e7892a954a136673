import { z } from 'zod';
import type { AppRegistrationConfig } from '../config.js';
import { TtlCache } from '../ttl-cache.js';

/**
 * Where a person's browser goes at the identity platform. msal-node builds the authorize URL from
 * the platform's OpenID metadata; the admin-consent endpoint has no msal API, so it is found the
 * same way: next to the metadata's `authorization_endpoint` (…/{tenant}/oauth2/v2.0/authorize →
 * …/{tenant}/v2.0/adminconsent). Deriving it from the metadata rather than from the login host
 * keeps both browser addresses wherever the platform says they are.
 */

const metadataSchema = z.object({ authorization_endpoint: z.url() });

const METADATA_CACHE_MS = 60 * 60_000;
const METADATA_TIMEOUT_MS = 10_000;

export class IdentityMetadataError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IdentityMetadataError';
  }
}

export class BrowserEndpoints {
  private readonly authorizeEndpoints = new TtlCache<string, string>(METADATA_CACHE_MS);

  constructor(private readonly fetchImpl: typeof fetch = fetch) {}

  /** The admin-consent URL for the app at `tenant` (a tenant id, or `organizations`). */
  async adminConsentUrl(
    app: AppRegistrationConfig,
    tenant: string,
    request: { scope: string; redirectUri: string; state: string },
  ): Promise<string> {
    const authorize = await this.authorizeEndpoint(app, tenant);
    const url = new URL(authorize.replace(/\/oauth2\/v2\.0\/authorize$/, '/v2.0/adminconsent'));
    url.search = new URLSearchParams({ client_id: app.clientId, scope: request.scope, redirect_uri: request.redirectUri, state: request.state }).toString();
    return url.toString();
  }

  /** The origin of the app's sign-in pages, where a form on our pages may lead (Content-Security-Policy form-action). */
  async signInOrigin(app: AppRegistrationConfig): Promise<string> {
    return new URL(await this.authorizeEndpoint(app, 'organizations')).origin;
  }

  private authorizeEndpoint(app: AppRegistrationConfig, tenant: string): Promise<string> {
    const metadataUrl = `${app.cloud.loginUrl}/${encodeURIComponent(tenant)}/v2.0/.well-known/openid-configuration`;
    return this.authorizeEndpoints.get(metadataUrl, async () => {
      let response: Response;
      try {
        response = await this.fetchImpl(metadataUrl, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS), redirect: 'error' });
      } catch (error) {
        throw new IdentityMetadataError(`The identity platform's metadata at ${metadataUrl} could not be fetched.`, { cause: error });
      }
      if (!response.ok) throw new IdentityMetadataError(`The identity platform's metadata at ${metadataUrl} answered ${response.status}.`);
      const parsed = metadataSchema.safeParse(await response.json().catch(() => undefined));
      if (!parsed.success || !/\/oauth2\/v2\.0\/authorize$/.test(parsed.data.authorization_endpoint)) {
        throw new IdentityMetadataError(`The identity platform's metadata at ${metadataUrl} has no usable authorization_endpoint.`);
      }
      return parsed.data.authorization_endpoint;
    });
  }
}
