import type { Logger } from './logger.js';
import { allowedDimensions, type CounterName, type HistogramName, type MetricName } from './metric-catalog.js';

/**
 * Counters and measurements ops chart and alert on, behind an interface of our own so the code does
 * not depend on an exporter. In Azure they go to Application Insights through OpenTelemetry
 * (open-telemetry.ts); locally each one is a structured log line (`metric`, `value` and its
 * dimensions). Names and dimensions come from the catalog (metric-catalog.ts).
 */

export type MetricDimensions = Readonly<Record<string, string | number | boolean | undefined>>;

export interface Metrics {
  /** Adds `value` (1 by default) to a counter. */
  count(name: CounterName, dimensions?: MetricDimensions, value?: number): void;
  /** One measurement of a distribution (durations in ms, sizes in bytes). */
  record(name: HistogramName, value: number, dimensions?: MetricDimensions): void;
}

/** The dimensions the catalog allows for `name`, without the unset ones. */
export function catalogued(name: MetricName, dimensions: MetricDimensions = {}): Record<string, string | number | boolean> {
  const allowed = allowedDimensions(name);
  const kept: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(dimensions)) {
    if (value !== undefined && allowed.has(key)) kept[key] = value;
  }
  return kept;
}

export function logMetrics(logger: Logger): Metrics {
  const write = (kind: 'counter' | 'histogram', name: MetricName, value: number, dimensions?: MetricDimensions) => {
    logger.info(`metric ${name}`, { metric: name, metricKind: kind, value, ...catalogued(name, dimensions) });
  };
  return {
    count: (name, dimensions, value = 1) => { write('counter', name, value, dimensions); },
    record: (name, value, dimensions) => { write('histogram', name, value, dimensions); },
  };
}

export const noMetrics: Metrics = { count: () => undefined, record: () => undefined };

/** Keeps what was counted, for tests. */
export class RecordingMetrics implements Metrics {
  readonly records: { name: MetricName; value: number; dimensions: MetricDimensions }[] = [];

  count(name: CounterName, dimensions: MetricDimensions = {}, value = 1): void {
    this.records.push({ name, value, dimensions });
  }

  record(name: HistogramName, value: number, dimensions: MetricDimensions = {}): void {
    this.records.push({ name, value, dimensions });
  }

  total(name: MetricName, match: MetricDimensions = {}): number {
    return this.records
      .filter((record) => record.name === name && Object.entries(match).every(([key, value]) => record.dimensions[key] === value))
      .reduce((sum, record) => sum + record.value, 0);
  }
}
