import { createPublicKey } from 'node:crypto';
import type { SandboxContext } from '../identity/context.js';
import type { Route } from '../identity/http.js';
import { applicationRoutes } from './applications.js';
import { mailFolderRoutes } from './mail-folders.js';
import { GRAPH_PREFIX, GRAPH_VERSION, graphHandler, type GraphEnvironment, type GraphFaults } from './router.js';
import { userRoutes } from './users.js';

/**
 * A minimal Microsoft Graph (v1.0) on the sandbox's HTTPS listener under /graph, for the tokens
 * the sandbox issues; see README.md. One module per resource; the router does the rest.
 */

export interface GraphOptions {
  context: SandboxContext;
  faults: GraphFaults;
  /** The sandbox's token signing key: Graph accepts only tokens it signed. */
  signingKey: { kid: string; publicKeyPem: string };
}

const METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'];

/** The base the connector is configured with (ENTRA_GRAPH_URL). */
export const graphBase = (httpsBase: string) => `${httpsBase}${GRAPH_PREFIX}`;

export function graphRoutes({ context, faults, signingKey }: GraphOptions): Route[] {
  const env: GraphEnvironment = { context, serviceRoot: `${graphBase(context.httpsBase)}/${GRAPH_VERSION}` };
  const routes = [...userRoutes(env), ...mailFolderRoutes(env), ...applicationRoutes(env)];
  const handler = graphHandler(env, routes, faults, { state: context.state, kid: signingKey.kid, publicKey: createPublicKey(signingKey.publicKeyPem), now: () => context.now() });
  const path = new RegExp(`^${GRAPH_PREFIX}(?:/.*)?$`);
  return METHODS.map((method) => ({ method, path, handler }));
}
