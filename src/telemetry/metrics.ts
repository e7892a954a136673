import type { Logger } from './logger.js';

/**
 * Counters and measurements ops chart and alert on, behind an interface of our own so the code does
 * not depend on an exporter: today each one is a structured log record (`metric`, `value` and its
 * dimensions), which Application Insights keeps as a trace that queries can aggregate.
 */

export type MetricDimensions = Readonly<Record<string, string | number | boolean | undefined>>;

export interface Metrics {
  /** Adds `value` (1 by default) to a counter. */
  count(name: string, dimensions?: MetricDimensions, value?: number): void;
  /** One measurement of a distribution (durations in ms, sizes in bytes). */
  record(name: string, value: number, dimensions?: MetricDimensions): void;
}

export function logMetrics(logger: Logger): Metrics {
  const write = (kind: 'counter' | 'histogram', name: string, value: number, dimensions: MetricDimensions = {}) => {
    logger.info(`metric ${name}`, { metric: name, metricKind: kind, value, ...dimensions });
  };
  return {
    count: (name, dimensions, value = 1) => { write('counter', name, value, dimensions); },
    record: (name, value, dimensions) => { write('histogram', name, value, dimensions); },
  };
}

export const noMetrics: Metrics = { count: () => undefined, record: () => undefined };

/** Keeps what was counted, for tests. */
export class RecordingMetrics implements Metrics {
  readonly records: { name: string; value: number; dimensions: MetricDimensions }[] = [];

  count(name: string, dimensions: MetricDimensions = {}, value = 1): void {
    this.records.push({ name, value, dimensions });
  }

  record(name: string, value: number, dimensions: MetricDimensions = {}): void {
    this.records.push({ name, value, dimensions });
  }

  total(name: string, match: MetricDimensions = {}): number {
    return this.records
      .filter((record) => record.name === name && Object.entries(match).every(([key, value]) => record.dimensions[key] === value))
      .reduce((sum, record) => sum + record.value, 0);
  }
}
