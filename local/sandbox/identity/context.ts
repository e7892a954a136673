import { randomInt } from 'node:crypto';
import { newErrorIds, type ErrorIds } from './aadsts.js';
import type { SandboxRequest } from './http.js';
import type { SandboxState } from './sandbox-state.js';
import type { TokenSigner } from './tokens.js';

/** Lifetimes and intervals; Entra's defaults unless a test wants them short. */
export interface SandboxLifetimes {
  /** Fixed access token lifetime; by default each token gets 60–90 minutes at random, like Entra's. */
  accessTokenSeconds?: number;
  authorizationCodeSeconds: number;
  deviceCodeSeconds: number;
  deviceCodePollIntervalSeconds: number;
  /** A refresh token unused for this long is expired for inactivity (AADSTS700082). */
  refreshTokenInactivityDays: number;
  /** A sign-in page left open longer than this has to start over. */
  interactionSeconds: number;
}

export const DEFAULT_LIFETIMES: SandboxLifetimes = {
  authorizationCodeSeconds: 600,
  deviceCodeSeconds: 900,
  deviceCodePollIntervalSeconds: 5,
  refreshTokenInactivityDays: 90,
  interactionSeconds: 900,
};

/** What every endpoint works with. */
export interface SandboxContext {
  state: SandboxState;
  signer: TokenSigner;
  /** https://127.0.0.1:<port>: the authority host, token and discovery endpoints. */
  httpsBase: string;
  /** http://localhost:<port>: the pages a browser opens. */
  browserBase: string;
  lifetimes: SandboxLifetimes;
  /** Milliseconds since the epoch; tests may move it. */
  now(): number;
}

export function accessTokenLifetime(context: SandboxContext): number {
  return context.lifetimes.accessTokenSeconds ?? randomInt(3600, 5401);
}

/** Trace and correlation ids for an error; msal-node sends its correlation id as `client-request-id`. */
export function errorIdsFor(context: SandboxContext, request: SandboxRequest): ErrorIds {
  const header = request.headers['client-request-id'];
  const fromQuery = request.url.searchParams.get('client-request-id') ?? undefined;
  return newErrorIds(context.now(), (Array.isArray(header) ? header[0] : header) ?? fromQuery);
}
