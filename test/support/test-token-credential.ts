import { randomUUID } from 'node:crypto';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { SignJWT, type CryptoKey } from 'jose';

/**
 * A TokenCredential standing in for the connector's managed identity: it mints the v1 access
 * tokens Entra ID issues to a service principal, signed with a test key, for the one resource in
 * the requested `<resource>/.default` scope. Like the real credentials it honours the tenant the
 * Key Vault challenge names. It records every request so tests can show when the SDK asked.
 */

export interface TokenRequest {
  scopes: string[];
  tenantId: string | undefined;
}

export interface TestTokenCredentialOptions {
  /** Tenant used when the caller names none. */
  homeTenantId: string;
  /** The identity's client id (`appid`). */
  clientId?: string;
  lifetimeSeconds?: number;
}

export class TestTokenCredential implements TokenCredential {
  readonly requests: TokenRequest[] = [];
  /** Every token handed out, so tests can assert that none ends up in an error or a log. */
  readonly issued: string[] = [];
  private readonly clientId: string;
  private readonly objectId = randomUUID();

  constructor(
    private readonly signingKey: CryptoKey,
    private readonly options: TestTokenCredentialOptions,
  ) {
    this.clientId = options.clientId ?? randomUUID();
  }

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    const list = typeof scopes === 'string' ? [scopes] : scopes;
    const tenantId = options?.tenantId ?? this.options.homeTenantId;
    this.requests.push({ scopes: list, tenantId: options?.tenantId });
    const [scope] = list;
    // The client credentials grant takes exactly one resource's .default scope.
    if (list.length !== 1 || !scope?.endsWith('/.default')) {
      throw new Error(`TestTokenCredential: expected one "<resource>/.default" scope, got ${JSON.stringify(list)}`);
    }
    const issuedAt = Math.floor(Date.now() / 1000);
    const expiresOn = issuedAt + (this.options.lifetimeSeconds ?? 3600);
    const token = await new SignJWT({
      aud: scope.slice(0, -'/.default'.length),
      iss: `https://sts.windows.net/${tenantId}/`,
      tid: tenantId,
      appid: this.clientId,
      oid: this.objectId,
      sub: this.objectId,
      idtyp: 'app',
      uti: randomUUID(),
      ver: '1.0',
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(expiresOn)
      .sign(this.signingKey);
    this.issued.push(token);
    return { token, expiresOnTimestamp: expiresOn * 1000, tokenType: 'Bearer' };
  }
}
