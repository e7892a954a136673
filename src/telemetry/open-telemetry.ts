import { SpanStatusCode, type Attributes, type Counter, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import { SeverityNumber, type Logger as OtelLogger } from '@opentelemetry/api-logs';
import type { LogLevel } from '../config.js';
import type { LogSink } from './logger.js';
import { metricDefinition, type MetricName } from './metric-catalog.js';
import { catalogued, type MetricDimensions, type Metrics } from './metrics.js';
import { redactText } from './redact.js';
import type { Tracing } from './tracing.js';

/**
 * Our Metrics, log sink and Tracing on the OpenTelemetry API. Whoever registered the global
 * providers decides where it all goes: the Azure Monitor distro in Azure (azure-monitor.ts), an
 * in-memory exporter in the tests.
 */

export const INSTRUMENTATION_SCOPE = 'm365-connector';

/** Durations up to the 10-minute function timeout, finer where the interesting ones are. */
const MS_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000];
const DAY_BUCKETS = [-1, 0, 7, 14, 30, 60, 90, 180, 365];

export function openTelemetryMetrics(meter: Meter): Metrics {
  const counters = new Map<MetricName, Counter>();
  const histograms = new Map<MetricName, Histogram>();
  const counterOf = (name: MetricName): Counter => {
    let instrument = counters.get(name);
    if (!instrument) {
      const definition = metricDefinition(name);
      instrument = meter.createCounter(name, { unit: definition.unit, description: definition.description });
      counters.set(name, instrument);
    }
    return instrument;
  };
  const histogramOf = (name: MetricName): Histogram => {
    let instrument = histograms.get(name);
    if (!instrument) {
      const definition = metricDefinition(name);
      instrument = meter.createHistogram(name, {
        unit: definition.unit,
        description: definition.description,
        advice: { explicitBucketBoundaries: definition.unit === 'd' ? DAY_BUCKETS : MS_BUCKETS },
      });
      histograms.set(name, instrument);
    }
    return instrument;
  };
  return {
    count: (name, dimensions, value = 1) => {
      counterOf(name).add(value, attributesOf(catalogued(name, dimensions)));
    },
    record: (name, value, dimensions) => {
      histogramOf(name).record(value, attributesOf(catalogued(name, dimensions)));
    },
  };
}

const SEVERITY: Record<LogLevel, SeverityNumber> = {
  debug: SeverityNumber.DEBUG,
  info: SeverityNumber.INFO,
  warn: SeverityNumber.WARN,
  error: SeverityNumber.ERROR,
};

/**
 * Each record becomes one OpenTelemetry log record: the message as its body, every field as an
 * attribute (Application Insights: `traces`, fields in `customDimensions`). The record was
 * redacted by the logger already. It is emitted in the active context, so it carries the trace of
 * the invocation that wrote it.
 */
export function openTelemetryLogSink(logger: OtelLogger): LogSink {
  return (record) => {
    const { timestamp, level, message, ...fields } = record;
    logger.emit({
      timestamp: new Date(timestamp),
      severityNumber: SEVERITY[level],
      severityText: level.toUpperCase(),
      body: message,
      attributes: attributesOf(fields),
    });
  };
}

export function openTelemetryTracing(tracer: Tracer): Tracing {
  return {
    inSpan: (name, attributes, work) =>
      tracer.startActiveSpan(name, { attributes: attributesOf(attributes) }, async (span) => {
        try {
          return await work({ set: (more) => span.setAttributes(attributesOf(more)) });
        } catch (error) {
          const failure = error instanceof Error ? error : new Error(String(error));
          const message = redactText(failure.message);
          // Exceptions carry what the code put in them; only their redacted text leaves the process.
          span.recordException({ name: failure.name, message, ...(failure.stack !== undefined && { stack: redactText(failure.stack) }) });
          span.setStatus({ code: SpanStatusCode.ERROR, message });
          throw error;
        } finally {
          span.end();
        }
      }),
  };
}

/** OpenTelemetry attribute values are primitives; anything else is kept as its JSON. */
function attributesOf(fields: MetricDimensions | Record<string, unknown>): Attributes {
  const attributes: Attributes = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    if (typeof value === 'string') attributes[key] = redactText(value);
    else if (typeof value === 'number' || typeof value === 'boolean') attributes[key] = value;
    else attributes[key] = redactText(JSON.stringify(value));
  }
  return attributes;
}
