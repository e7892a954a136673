import { metrics, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import type { LogLevel } from '../config.js';
import { createLogger, invocationLogger, jsonLineSink, type InvocationLogTarget, type LogFields, type Logger, type LogSink } from './logger.js';
import { logMetrics, type Metrics } from './metrics.js';
import { INSTRUMENTATION_SCOPE, openTelemetryLogSink, openTelemetryMetrics, openTelemetryTracing } from './open-telemetry.js';
import { noTracing, type Tracing } from './tracing.js';

/**
 * Where the process's logs, metrics and spans go. When OpenTelemetry providers are registered (the
 * Azure Monitor distro in Azure, an in-memory exporter in tests) everything goes through them;
 * otherwise logs are JSON lines, metrics are log lines too, and there are no spans (`npm start`).
 */

export interface Telemetry {
  readonly exporting: boolean;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly tracing: Tracing;
  /** A logger for one invocation, so its lines are correlated with it. */
  loggerFor(context: InvocationLogTarget, fields?: LogFields): Logger;
}

// On globalThis rather than in this module: the flag must hold for every copy of the module a
// test runner or the Functions worker may load, as the OpenTelemetry globals do.
const EXPORTING = Symbol.for('m365-connector.opentelemetry-exporting');

/** Says OpenTelemetry's global providers are registered and exporting somewhere. */
export function markOpenTelemetryExporting(exporting: boolean): void {
  (globalThis as { [EXPORTING]?: boolean })[EXPORTING] = exporting;
}

export function openTelemetryExporting(): boolean {
  return (globalThis as { [EXPORTING]?: boolean })[EXPORTING] === true;
}

export function processTelemetry(level: LogLevel): Telemetry {
  if (!openTelemetryExporting()) {
    const logger = createLogger({ level, sink: jsonLineSink });
    return {
      exporting: false,
      logger,
      metrics: logMetrics(logger),
      tracing: noTracing,
      // Through the invocation context: the Functions host correlates those lines with the invocation.
      loggerFor: (context, fields) => invocationLogger({ level }, context, fields),
    };
  }
  const sink: LogSink = openTelemetryLogSink(logs.getLogger(INSTRUMENTATION_SCOPE));
  return {
    exporting: true,
    logger: createLogger({ level, sink }),
    metrics: openTelemetryMetrics(metrics.getMeter(INSTRUMENTATION_SCOPE)),
    tracing: openTelemetryTracing(trace.getTracer(INSTRUMENTATION_SCOPE)),
    // The active context already is the invocation's (see correlateInvocations); the ids go along as fields.
    loggerFor: (context, fields) =>
      createLogger({ level, sink, fields: { invocationId: context.invocationId, functionName: context.functionName, ...fields } }),
  };
}
