import { decodeJwt } from 'jose';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from '../domain/connection.js';
import { errorFromMsal } from '../identity/microsoft-error.js';
import type { MsalClients } from '../identity/msal-clients.js';
import { defaultScope, requiredAppRoles, type Resource } from '../identity/scopes.js';
import type { Logger } from '../telemetry/logger.js';

/**
 * Proof that an administrator's consent took effect: app-only tokens the connector obtains itself
 * for the tenant, with the tenant, the service principal and the roles they carry. The token is the
 * connector's own, from Microsoft's token endpoint over TLS, so its claims are read without
 * checking its signature (which only the resource can).
 */

export interface AppOnlyAccess {
  /** `tid` of the token: the tenant that really granted access. */
  tenantId: string;
  /** `oid` of the token: the app's service principal (Enterprise application) in that tenant. */
  servicePrincipalId: string;
  roles: Record<Resource, string[]>;
}

export interface VerifyDeps {
  msal: MsalClients;
  logger: Logger;
  /** Waits between attempts while a fresh consent reaches every Entra replica. */
  retryDelaysMs?: readonly number[];
}

/** Codes Entra answers while a consent given seconds ago has not reached the replica asked. */
const NOT_YET_REPLICATED = new Set([700016, 7000229, 65001, 500011]);
const DEFAULT_RETRY_DELAYS_MS = [1_000, 3_000];

export async function verifyAppOnlyAccess(deps: VerifyDeps, connection: Connection, tenantId: string): Promise<AppOnlyAccess> {
  const graph = await appOnlyClaims(deps, connection, tenantId, 'graph');
  const needsExchange = requiredAppRoles(connection.transports).outlook.length > 0;
  const outlook = needsExchange ? await appOnlyClaims(deps, connection, tenantId, 'outlook') : undefined;
  return {
    tenantId: graph.tid,
    servicePrincipalId: graph.oid,
    roles: { graph: graph.roles, outlook: outlook?.roles ?? [] },
  };
}

async function appOnlyClaims(deps: VerifyDeps, connection: Connection, tenantId: string, resource: Resource): Promise<{ tid: string; oid: string; roles: string[] }> {
  const client = await deps.msal.appOnlyClient(connection.appId);
  const app = deps.msal.app(connection.appId);
  const delays = deps.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await client.acquireTokenByClientCredential({
        scopes: [defaultScope(app.cloud, resource)],
        authority: deps.msal.authority(app, tenantId),
        // A token from before the consent would show the roles as they were.
        skipCache: true,
      });
      if (!result) throw new Error('msal returned no app-only token');
      return readClaims(result.accessToken, app.clientId);
    } catch (thrown) {
      const error = errorFromMsal(thrown);
      const delay = delays[attempt];
      if (!error || error.aadsts === undefined || !NOT_YET_REPLICATED.has(error.aadsts) || delay === undefined) throw thrown;
      deps.logger.info('connect: consent not visible yet; trying again', { aadsts: error.aadsts, attempt: attempt + 1 });
      await sleep(delay);
    }
  }
}

function readClaims(accessToken: string, clientId: string): { tid: string; oid: string; roles: string[] } {
  const claims = decodeJwt(accessToken);
  const { tid, oid, roles, appid, azp, idtyp } = claims as { tid?: unknown; oid?: unknown; roles?: unknown; appid?: unknown; azp?: unknown; idtyp?: unknown };
  if (typeof tid !== 'string' || typeof oid !== 'string') throw new Error('The app-only token has no tid or oid claim.');
  // v1 tokens name the app in appid, v2 in azp; a token of another app, or a user's, proves nothing here.
  const app = typeof appid === 'string' ? appid : azp;
  if (typeof app !== 'string' || app.toLowerCase() !== clientId.toLowerCase()) throw new Error('The app-only token was issued to another app.');
  if (idtyp !== undefined && idtyp !== 'app') throw new Error('The app-only token is not an app token.');
  return {
    tid: tid.toLowerCase(),
    oid: oid.toLowerCase(),
    roles: Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : [],
  };
}
