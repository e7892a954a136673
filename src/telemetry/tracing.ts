import type { MetricDimensions } from './metrics.js';

/**
 * Spans around the connector's units of work (a send attempt, a look at a mailbox, a token refresh,
 * a webhook delivery), behind an interface of our own like Metrics. In Azure each span is a child
 * of the Functions invocation's trace, so Application Insights shows it (and the Table, Queue,
 * Blob and Key Vault calls inside it) under the invocation's operation.
 */

export interface SpanScope {
  /** Adds what became known during the work (the connection, the outcome). */
  set(attributes: MetricDimensions): void;
}

export interface Tracing {
  inSpan<T>(name: string, attributes: MetricDimensions, work: (span: SpanScope) => Promise<T>): Promise<T>;
}

const idleScope: SpanScope = { set: () => undefined };

export const noTracing: Tracing = {
  inSpan: (_name, _attributes, work) => work(idleScope),
};

/** A unit of work whose result says how it went: the span carries that outcome. */
export function tracedWork<T extends { outcome: string }>(tracing: Tracing, name: string, attributes: MetricDimensions, work: () => Promise<T>): Promise<T> {
  return tracing.inSpan(name, attributes, async (span) => {
    const result = await work();
    span.set({ outcome: result.outcome });
    return result;
  });
}
