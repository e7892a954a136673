import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { DataPointType, MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { markOpenTelemetryExporting } from '../../src/telemetry/telemetry.js';

/**
 * OpenTelemetry set up as the Azure Monitor distro sets it up in Azure (global providers, an async
 * context manager, W3C propagation), with in-memory exporters instead of Application Insights.
 * Install it before the connector's services are built and the local host loads the app.
 */

export interface MetricPoint {
  name: string;
  unit: string;
  description: string;
  attributes: Record<string, unknown>;
  /** A counter's sum, or a histogram's sum of its measurements. */
  value: number;
  /** Measurements and bucket boundaries (histograms). */
  count?: number;
  boundaries?: number[];
}

export interface CapturedTelemetry {
  metricPoints(): Promise<MetricPoint[]>;
  logRecords(): ReadableLogRecord[];
  spans(): ReadableSpan[];
  stop(): Promise<void>;
}

/** Reads on demand: what the tests want rather than an export interval. */
export class CollectingReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export function captureTelemetry(): CapturedTelemetry {
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  trace.setGlobalTracerProvider(tracerProvider);

  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);

  const logExporter = new InMemoryLogRecordExporter();
  const loggerProvider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logExporter })] });
  logs.setGlobalLoggerProvider(loggerProvider);
  markOpenTelemetryExporting(true);

  return {
    metricPoints: () => collectPoints(reader),
    logRecords: () => logExporter.getFinishedLogRecords(),
    spans: () => spanExporter.getFinishedSpans(),
    async stop() {
      markOpenTelemetryExporting(false);
      await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown(), loggerProvider.shutdown()]);
      trace.disable();
      metrics.disable();
      logs.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** Every data point the reader has, flattened. */
export async function collectPoints(reader: MetricReader): Promise<MetricPoint[]> {
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics.scopeMetrics.flatMap((scope) =>
    scope.metrics.flatMap((metric) =>
      (metric.dataPoints as DataPoint<number | Histogram>[]).map((point): MetricPoint => {
        const histogram = metric.dataPointType === DataPointType.HISTOGRAM ? (point.value as Histogram) : undefined;
        return {
          name: metric.descriptor.name,
          unit: metric.descriptor.unit,
          description: metric.descriptor.description,
          attributes: { ...point.attributes },
          value: histogram ? (histogram.sum ?? Number.NaN) : (point.value as number),
          ...(histogram && { count: histogram.count, boundaries: histogram.buckets.boundaries }),
        };
      }),
    ),
  );
}
