import { z } from 'zod';
import type { AppRegistrationConfig } from '../config.js';
import type { GraphCredentials } from '../domain/app-health.js';
import type { MsalClients } from './msal-clients.js';
import { defaultScope } from './scopes.js';

/**
 * Reads an app registration's own `application` object from Graph (its secrets' and certificates'
 * validity, never their values), with an app-only token of the app in the tenant it is registered
 * in. That needs Application.Read.All granted there; without it Graph answers 403 and the connector
 * simply does not know the expiry.
 */

const applicationSchema = z.object({
  passwordCredentials: z.array(z.object({ hint: z.string().nullish(), endDateTime: z.string().nullish() })).default([]),
  keyCredentials: z.array(z.object({ type: z.string().nullish(), endDateTime: z.string().nullish() })).default([]),
});

export async function readAppCredentials(msal: MsalClients, app: AppRegistrationConfig & { homeTenantId: string }): Promise<GraphCredentials | undefined> {
  const client = await msal.appOnlyClient(app.id);
  // Once a day: a fresh token, so one cached from before a permission change never decides.
  const token = await client.acquireTokenByClientCredential({ scopes: [defaultScope(app.cloud, 'graph')], authority: msal.authority(app, app.homeTenantId), skipCache: true });
  if (!token) throw new Error('msal returned no app-only token');
  const url = `${app.cloud.graphUrl}/v1.0/applications(appId='${encodeURIComponent(app.clientId)}')?$select=passwordCredentials,keyCredentials`;
  const response = await fetch(url, { headers: { authorization: `Bearer ${token.accessToken}`, accept: 'application/json' }, signal: AbortSignal.timeout(15_000) });
  if (response.status === 401 || response.status === 403) return undefined;
  if (!response.ok) throw new Error(`Graph answered ${String(response.status)} for the app registration`);
  return applicationSchema.parse(await response.json());
}
