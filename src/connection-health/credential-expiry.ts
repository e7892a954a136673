import { X509Certificate } from 'node:crypto';
import type { AppRegistrationConfig } from '../config.js';
import { credentialLevel, type AppHealth, type CredentialLevel, type GraphCredentials } from '../domain/app-health.js';
import type { AppCredential } from '../identity/app-credentials.js';
import { UNCHANGED } from '../store/table-repository.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AppHealthService } from './app-health.js';

/**
 * The daily look at each app registration's credential. A secret or certificate that expires takes
 * every connection of the app down with it, so ops hear of it from 30 days before (a warning),
 * again from 7 days (critical) and once it expired, by log every day and by one vendor event each
 * time the level rises. Where the expiry comes from, in order: the vendor's own note
 * (ENTRA_CREDENTIAL_EXPIRES_AT), the certificate itself when its chain is stored, the app's Graph
 * `application` object when the app may read it (Application.Read.All in its home tenant).
 * A managed identity used as a federated credential has nothing that expires, and says so.
 */

export interface CredentialExpiryDeps {
  apps: readonly AppRegistrationConfig[];
  appHealth: AppHealthService;
  /** The app's credential as the connector uses it (the secret's first characters match Graph's hint). */
  credential(app: AppRegistrationConfig): Promise<AppCredential>;
  /** The app's `application` object's credentials, or undefined when it may not read them. */
  readFromGraph(app: AppRegistrationConfig & { homeTenantId: string }): Promise<GraphCredentials | undefined>;
  logger: Logger;
  metrics: Metrics;
  now(): Date;
}

export interface CredentialReport {
  appId: string;
  kind: AppRegistrationConfig['credential']['kind'];
  level: CredentialLevel;
  expiresAt?: string;
  daysLeft?: number;
  source: NonNullable<AppHealth['credential']>['source'];
}

const RANK: Readonly<Record<CredentialLevel, number>> = { not_applicable: 0, unknown: 0, ok: 0, warning: 1, critical: 2, expired: 3 };

export async function checkCredentialExpiry(deps: CredentialExpiryDeps): Promise<CredentialReport[]> {
  const reports: CredentialReport[] = [];
  for (const app of deps.apps) reports.push(await checkApp(deps, app));
  return reports;
}

async function checkApp(deps: CredentialExpiryDeps, app: AppRegistrationConfig): Promise<CredentialReport> {
  const now = deps.now();
  const kind = app.credential.kind;
  const log = deps.logger.child({ appId: app.id });
  if (kind === 'managed-identity') {
    log.info('app credential: a managed identity as federated credential; no secret or certificate to expire');
    return record(deps, app, { appId: app.id, kind, level: 'not_applicable', source: 'none' }, undefined, now);
  }
  const previous = (await deps.appHealth.get(app.id))?.credential;
  // What was read before still holds when it cannot be read now: an expired secret cannot fetch its own expiry.
  const found =
    (await expiryOf(deps, app, log)) ??
    (previous?.expiresAt !== undefined && previous.source !== 'none' ? { expiresAt: previous.expiresAt, source: previous.source } : undefined);
  const level = credentialLevel(found?.expiresAt, now);
  const report: CredentialReport = {
    appId: app.id,
    kind,
    level,
    source: found?.source ?? 'none',
    ...(found && { expiresAt: found.expiresAt, daysLeft: Math.floor((Date.parse(found.expiresAt) - now.getTime()) / 86_400_000) }),
  };
  const fields = { kind, expiresAt: report.expiresAt, daysLeft: report.daysLeft, source: report.source };
  const what = kind === 'secret' ? 'client secret' : 'certificate';
  if (level === 'expired') log.error(`app credential: the ${what} has expired; every connection of the app fails until it is replaced`, fields);
  else if (level === 'critical') log.error(`app credential: the ${what} expires within 7 days; replace it now`, fields);
  else if (level === 'warning') log.warn(`app credential: the ${what} expires within 30 days; plan its replacement`, fields);
  else if (level === 'unknown') {
    log.info(`app credential: the ${what}'s expiry is unknown; set ENTRA_CREDENTIAL_EXPIRES_AT, or ENTRA_HOME_TENANT_ID with Application.Read.All granted, to be warned before it expires`, fields);
  } else log.info(`app credential: the ${what} is valid for more than 30 days`, fields);
  deps.metrics.record('app.credential_days_left', report.daysLeft ?? -1, { appId: app.id, level });
  return record(deps, app, report, previous, now);
}

async function expiryOf(deps: CredentialExpiryDeps, app: AppRegistrationConfig, log: Logger): Promise<{ expiresAt: string; source: CredentialReport['source'] } | undefined> {
  if (app.credentialExpiresAt !== undefined) return { expiresAt: app.credentialExpiresAt, source: 'configuration' };
  const credential = await deps.credential(app);
  if (credential.clientCertificate?.x5c) {
    const notAfter = certificateNotAfter(credential.clientCertificate.x5c);
    if (notAfter) return { expiresAt: notAfter, source: 'certificate' };
  }
  if (app.homeTenantId === undefined) return undefined;
  let graph: GraphCredentials | undefined;
  try {
    graph = await deps.readFromGraph({ ...app, homeTenantId: app.homeTenantId });
  } catch (error) {
    log.warn('app credential: reading the app registration from Graph failed', { error });
    return undefined;
  }
  if (!graph) return undefined;
  const secret = credential.clientSecret;
  const candidates =
    app.credential.kind === 'secret'
      ? graph.passwordCredentials.filter((entry) => secret === undefined || !entry.hint || secret.startsWith(entry.hint))
      : graph.keyCredentials.filter((entry) => entry.type === undefined || entry.type === null || entry.type === 'AsymmetricX509Cert');
  // Of the entries that may be ours, the one that lasts longest: a rotation in progress adds one.
  const ends = candidates.map((entry) => entry.endDateTime).filter((end): end is string => typeof end === 'string' && !Number.isNaN(Date.parse(end)));
  if (ends.length === 0) return undefined;
  return { expiresAt: new Date(Math.max(...ends.map((end) => Date.parse(end)))).toISOString(), source: 'graph' };
}

function certificateNotAfter(x5c: string): string | undefined {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(x5c)?.[0] ?? `-----BEGIN CERTIFICATE-----\n${x5c.split(/[\s,]+/)[0] ?? ''}\n-----END CERTIFICATE-----`;
  try {
    return new Date(new X509Certificate(first).validTo).toISOString();
  } catch {
    return undefined;
  }
}

/** Keeps the finding on the app's row; a higher level than last time (or a new expiry date at a warning level) is an event. */
async function record(
  deps: CredentialExpiryDeps,
  app: AppRegistrationConfig,
  report: CredentialReport,
  previous: AppHealth['credential'],
  now: Date,
): Promise<CredentialReport> {
  const rose = RANK[report.level] > 0 && (RANK[report.level] > RANK[previous?.level ?? 'ok'] || previous?.expiresAt !== report.expiresAt);
  const credential: NonNullable<AppHealth['credential']> = {
    kind: report.kind,
    source: report.source,
    level: report.level,
    checkedAt: now.toISOString(),
    ...(report.expiresAt !== undefined && { expiresAt: report.expiresAt }),
  };
  const event = rose ? { type: 'app.credential_expiring' as const, data: { ...report } } : undefined;
  await deps.appHealth.change(app.id, event, (current) => (current.credential?.checkedAt === credential.checkedAt ? UNCHANGED : { ...current, credential }));
  return report;
}
