import type { SandboxContext } from './context.js';
import { instanceDiscovery } from './discovery.js';

/**
 * The msal-node `auth` options that point an unchanged client at the sandbox. msal-node wants an
 * https authority and otherwise asks login.microsoftonline.com whether a host is an authority
 * ("instance discovery"); either of these stops that:
 * - `knownAuthorities: [host]`: msal trusts the host and reads the openid-configuration over the
 *   network (its `issuer` is on the same host, which msal-node 7 also checks);
 * - `cloudDiscoveryMetadata` (+ `authorityMetadata`): msal makes no discovery call at all.
 * `authorityMetadata` has `{tenantid}` placeholders, like msal's own built-in metadata for
 * login.microsoftonline.com, so one value serves `organizations` and every tenant authority a
 * request names. Its `authorization_endpoint` is the plain-http browser listener, which is where
 * getAuthCodeUrl sends the person.
 */

export interface SandboxMsalAuthOptions {
  authority: string;
  knownAuthorities: string[];
  authorityMetadata: string;
  cloudDiscoveryMetadata: string;
}

export function msalAuthOptions(context: SandboxContext, tenant: string): SandboxMsalAuthOptions {
  const https = `${context.httpsBase}/{tenantid}`;
  const browser = `${context.browserBase}/{tenantid}`;
  return {
    authority: `${context.httpsBase}/${tenant}`,
    knownAuthorities: [new URL(context.httpsBase).host],
    authorityMetadata: JSON.stringify({
      token_endpoint: `${https}/oauth2/v2.0/token`,
      jwks_uri: `${https}/discovery/v2.0/keys`,
      issuer: `${https}/v2.0`,
      authorization_endpoint: `${browser}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${browser}/oauth2/v2.0/logout`,
    }),
    cloudDiscoveryMetadata: JSON.stringify(instanceDiscovery(context)),
  };
}
