import type * as AzureFunctions from '@azure/functions';
import { redactText } from './redact.js';
import { markOpenTelemetryExporting, openTelemetryExporting } from './telemetry.js';

/**
 * Application Insights through OpenTelemetry: the Azure Monitor distro exports the connector's
 * logs, metrics and spans (and spans of the Table, Queue, Blob, Key Vault and outgoing HTTP calls),
 * and the Functions instrumentation puts each invocation's work under the trace the host started.
 * README "Telemetry" says why the distro rather than the applicationinsights v3 SDK.
 */

/** Reads `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` ("Authorization=AAD;ClientId=<id>"), the Functions convention. */
export function aadIngestionOf(env: NodeJS.ProcessEnv): { clientId?: string } | undefined {
  const value = env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING;
  if (!value) return undefined;
  const pairs = new Map<string, string>();
  for (const part of value.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) pairs.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  if (pairs.get('authorization')?.toUpperCase() !== 'AAD') return undefined;
  const clientId = pairs.get('clientid');
  return clientId ? { clientId } : {};
}

/**
 * Starts the distro when the app has a connection string (in Azure; `npm start` and the tests have
 * none). Ingestion is authenticated with the managed identity when the authentication string asks
 * for it: the template turns local (key) authentication off.
 */
export async function startAzureMonitor(env: NodeJS.ProcessEnv): Promise<{ shutdown(): Promise<void> } | undefined> {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING;
  if (!connectionString || openTelemetryExporting()) return undefined;
  // Loaded only here: the distro and its instrumentations are heavy, and most processes never need them.
  const [{ useAzureMonitor, shutdownAzureMonitor }, { ManagedIdentityCredential }] = await Promise.all([import('@azure/monitor-opentelemetry'), import('@azure/identity')]);
  const aad = aadIngestionOf(env);
  const off = { enabled: false };
  useAzureMonitor({
    azureMonitorExporterOptions: {
      connectionString,
      ...(aad && { credential: aad.clientId ? new ManagedIdentityCredential({ clientId: aad.clientId }) : new ManagedIdentityCredential() }),
    },
    enableLiveMetrics: true,
    instrumentationOptions: {
      azureSdk: { enabled: true },
      http: { enabled: true },
      // Our logs go through the OpenTelemetry log sink; the rest are libraries the connector does not use.
      console: off,
      mongoDb: off,
      mySql: off,
      postgreSql: off,
      redis: off,
      redis4: off,
      bunyan: off,
      winston: off,
    },
  });
  markOpenTelemetryExporting(true);
  return { shutdown: shutdownAzureMonitor };
}

const correlated = new WeakSet<object>();

/**
 * Runs each invocation in the trace context the Functions host passes it, and tells the host the
 * worker exports its own logs (so they are not sent twice). Needs the OpenTelemetry providers
 * registered first: the instrumentation takes its logger when it is made.
 */
export async function correlateInvocations(app: typeof AzureFunctions.app): Promise<void> {
  if (!openTelemetryExporting() || correlated.has(app)) return;
  correlated.add(app);
  const { AzureFunctionsInstrumentationESM } = await import('@azure/functions-opentelemetry-instrumentation');
  // Not enabled as a require hook: an ES module app is patched by hand, once. It uses only `app`.
  new AzureFunctionsInstrumentationESM({ enabled: false }).registerAzFunc({ app } as typeof AzureFunctions);
}

/**
 * Everything the function app's entry files need before they register a function. A telemetry
 * failure is reported and the app runs on without it: mail must not stop because monitoring did.
 */
export async function startTelemetry(app: typeof AzureFunctions.app, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  try {
    const started = await startAzureMonitor(env);
    // Metrics go out once a minute and spans in batches: what is pending when the instance stops goes out first.
    if (started) app.hook.appTerminate(() => started.shutdown());
    await correlateInvocations(app);
  } catch (error) {
    const message = redactText(error instanceof Error ? error.message : String(error));
    process.stderr.write(`${JSON.stringify({ timestamp: new Date().toISOString(), level: 'error', message: 'telemetry: Application Insights export could not start; the app runs without it', error: message })}\n`);
  }
}
