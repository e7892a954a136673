import type * as AzureFunctions from '@azure/functions';
import { SpanStatusCode } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { aadIngestionOf, startAzureMonitor, startTelemetry } from '../../src/telemetry/azure-monitor.js';
import { createLogger, type LogRecord } from '../../src/telemetry/logger.js';
import { IDENTITY_DIMENSIONS, METRIC_CATALOG, type MetricName } from '../../src/telemetry/metric-catalog.js';
import { openTelemetryLogSink, openTelemetryMetrics, openTelemetryTracing } from '../../src/telemetry/open-telemetry.js';
import { REDACTED } from '../../src/telemetry/redact.js';
import { markOpenTelemetryExporting, openTelemetryExporting, processTelemetry } from '../../src/telemetry/telemetry.js';
import { noTracing, tracedWork } from '../../src/telemetry/tracing.js';
import { collectPoints, CollectingReader } from '../support/captured-telemetry.js';

/**
 * The telemetry adapters on local OpenTelemetry SDK providers with in-memory exporters (no
 * globals): what a metric point, a log record and a span carry, and that no credential rides
 * along. The catalog is checked against the source that emits the metrics.
 */

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig';
const BEARER_TOKEN = 'abcdefghijklmnopqrstuvwxyz0123456789ABCD';

/** Each test starts with OpenTelemetry marked not exporting; the mark is put back after it. */
function startsNotExporting(): void {
  let before = false;
  beforeEach(() => {
    before = openTelemetryExporting();
    markOpenTelemetryExporting(false);
  });
  afterEach(() => {
    markOpenTelemetryExporting(before);
  });
}

function meterUnderTest() {
  const reader = new CollectingReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    metrics: openTelemetryMetrics(provider.getMeter('test')),
    points: () => collectPoints(reader),
  };
}

function only<T>(items: readonly T[], what: string): T {
  expect(items, what).toHaveLength(1);
  const [item] = items;
  if (item === undefined) throw new Error(`no ${what}`);
  return item;
}

describe('openTelemetryMetrics', () => {
  it('adds to a counter with only the catalogued, defined dimensions, and the catalog unit and description', async () => {
    const { metrics, points } = meterUnderTest();
    metrics.count('send.attempts', {
      customerId: 'cust-1',
      connectionId: 'con-1',
      mailboxId: undefined,
      transport: 'graph',
      outcome: 'sent',
      code: undefined,
      messageId: 'msg-1',
      clientSecret: 'hunter2-hunter2',
      reason: 'manual', // a dimension of another metric
    });
    metrics.count('send.attempts', { customerId: 'cust-1', connectionId: 'con-1', transport: 'graph', outcome: 'sent' }, 2);

    const point = only((await points()).filter((p) => p.name === 'send.attempts'), 'send.attempts point');
    expect(point.attributes).toEqual({ customerId: 'cust-1', connectionId: 'con-1', transport: 'graph', outcome: 'sent' });
    expect(point.value).toBe(3);
    expect(point.unit).toBe(METRIC_CATALOG['send.attempts'].unit);
    expect(point.description).toBe(METRIC_CATALOG['send.attempts'].description);
  });

  it('keeps apart points whose dimensions differ', async () => {
    const { metrics, points } = meterUnderTest();
    metrics.count('receive.polls', { transport: 'imap', outcome: 'ok' });
    metrics.count('receive.polls', { transport: 'imap', outcome: 'failed', code: 'auth' });
    metrics.count('receive.polls', { transport: 'imap', outcome: 'ok', messageId: 'differs but is dropped' });
    const polls = (await points()).filter((p) => p.name === 'receive.polls');
    expect(polls).toHaveLength(2);
    expect(polls.find((p) => p.attributes.outcome === 'ok')?.value).toBe(2);
    expect(polls.find((p) => p.attributes.outcome === 'failed')).toMatchObject({ value: 1, attributes: { transport: 'imap', outcome: 'failed', code: 'auth' } });
  });

  it('records histograms with the catalog unit, their sum and count, and buckets for the unit', async () => {
    const { metrics, points } = meterUnderTest();
    metrics.record('send.duration', 120, { transport: 'smtp', outcome: 'sent', tenantId: 'tid-1', messageId: 'msg-1' });
    metrics.record('send.duration', 30, { transport: 'smtp', outcome: 'sent', tenantId: 'tid-1' });
    metrics.record('app.credential_days_left', 12, { appId: 'app-1', level: 'warning', kind: 'secret' });

    const all = await points();
    const duration = only(all.filter((p) => p.name === 'send.duration'), 'send.duration point');
    expect(duration).toMatchObject({ unit: 'ms', value: 150, count: 2, attributes: { transport: 'smtp', outcome: 'sent', tenantId: 'tid-1' } });
    expect(Object.keys(duration.attributes).sort()).toEqual(['outcome', 'tenantId', 'transport']);
    expect(duration.description).toBe(METRIC_CATALOG['send.duration'].description);
    expect(duration.boundaries).toContain(600_000);

    const days = only(all.filter((p) => p.name === 'app.credential_days_left'), 'app.credential_days_left point');
    expect(days).toMatchObject({ unit: 'd', value: 12, count: 1, attributes: { appId: 'app-1', level: 'warning' } });
    expect(days.boundaries?.[0]).toBe(-1);
  });

  it('passes string dimension values through redaction', async () => {
    const { metrics, points } = meterUnderTest();
    metrics.count('throttle.responses', { service: 'graph', operation: 'send', code: `Bearer ${BEARER_TOKEN}` });
    metrics.record('webhook.delivery_duration', 5, { endpointId: `whk-${JWT}`, outcome: 'delivered' });
    const all = await points();
    const throttle = only(all.filter((p) => p.name === 'throttle.responses'), 'throttle.responses point');
    expect(throttle.attributes.code).toBe(`Bearer ${REDACTED}`);
    const delivery = only(all.filter((p) => p.name === 'webhook.delivery_duration'), 'webhook.delivery_duration point');
    expect(delivery.attributes.endpointId).toBe(`whk-${REDACTED}`);
    expect(JSON.stringify(all)).not.toContain(BEARER_TOKEN);
    expect(JSON.stringify(all)).not.toContain(JWT);
  });

  it('keeps numbers and booleans as they are', async () => {
    const { metrics, points } = meterUnderTest();
    metrics.count('send.governor_waits', { transport: 'graph', inline: true });
    metrics.count('webhook.deliveries', { endpointId: 'whk-1', outcome: 'retry', status: 503 });
    const all = await points();
    expect(all.find((p) => p.name === 'send.governor_waits')?.attributes).toEqual({ transport: 'graph', inline: true });
    expect(all.find((p) => p.name === 'webhook.deliveries')?.attributes).toEqual({ endpointId: 'whk-1', outcome: 'retry', status: 503 });
  });
});

describe('openTelemetryLogSink', () => {
  function loggerUnderTest(level: 'debug' | 'info' = 'debug') {
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter })] });
    const written: LogRecord[] = [];
    const sink = openTelemetryLogSink(provider.getLogger('test'));
    const logger = createLogger({
      level,
      sink: (record) => {
        written.push(record);
        sink(record);
      },
    });
    return { logger, written, records: (): ReadableLogRecord[] => exporter.getFinishedLogRecords() };
  }

  it('emits the message as body, the level as severity and the fields as attributes', () => {
    const { logger, written, records } = loggerUnderTest();
    logger.info('send accepted', { customerId: 'cust-1', attempt: 2, inline: false, nested: { a: 1, list: ['x', 'y'] }, nothing: undefined, empty: null });

    const record = only(records(), 'log record');
    expect(record.body).toBe('send accepted');
    expect(record.severityText).toBe('INFO');
    expect(record.severityNumber).toBe(SeverityNumber.INFO);
    expect(record.attributes).toEqual({ customerId: 'cust-1', attempt: 2, inline: false, nested: '{"a":1,"list":["x","y"]}' });
    // The record's own time, not the time the SDK saw it.
    const [seconds, nanos] = record.hrTime;
    expect(seconds * 1000 + Math.round(nanos / 1e6)).toBe(Date.parse(only(written, 'written record').timestamp));
  });

  it('maps each level to its severity', () => {
    const { logger, records } = loggerUnderTest();
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(records().map((r) => [r.body, r.severityText, r.severityNumber])).toEqual([
      ['d', 'DEBUG', SeverityNumber.DEBUG],
      ['i', 'INFO', SeverityNumber.INFO],
      ['w', 'WARN', SeverityNumber.WARN],
      ['e', 'ERROR', SeverityNumber.ERROR],
    ]);
  });

  it('leaves out records below the logger level', () => {
    const { logger, records } = loggerUnderTest('info');
    logger.debug('hidden');
    logger.info('shown');
    expect(records().map((r) => r.body)).toEqual(['shown']);
  });

  it('redacts credential-named fields, credentials in the message and in an error', () => {
    const { logger, records } = loggerUnderTest();
    const error = Object.assign(new Error(`token request refused: ${JWT}`), { code: 'invalid_grant', clientSecret: 'xKq8Q~3fJ_aZ0bYc9.dEfGhIjKlMnOpQrStUvWx-YzA1' });
    logger.error(`refresh failed with Bearer ${BEARER_TOKEN}`, { clientSecret: 'plain-secret-value', connectionId: 'con-1', error });

    const record = only(records(), 'log record');
    expect(record.body).toBe(`refresh failed with Bearer ${REDACTED}`);
    expect(record.attributes.clientSecret).toBe(REDACTED);
    expect(record.attributes.connectionId).toBe('con-1');
    expect(typeof record.attributes.error).toBe('string');
    const serialized = JSON.parse(record.attributes.error as string) as Record<string, unknown>;
    expect(serialized).toMatchObject({ name: 'Error', message: `token request refused: ${REDACTED}`, code: 'invalid_grant', clientSecret: REDACTED });
    expect(typeof serialized.stack).toBe('string');
    const everything = JSON.stringify({ body: record.body, attributes: record.attributes });
    for (const secret of [JWT, BEARER_TOKEN, 'plain-secret-value', 'xKq8Q~3fJ']) expect(everything).not.toContain(secret);
  });
});

describe('openTelemetryTracing', () => {
  function tracerUnderTest() {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    return { tracing: openTelemetryTracing(provider.getTracer('test')), spans: (): ReadableSpan[] => exporter.getFinishedSpans() };
  }

  const exported = (span: ReadableSpan) => JSON.stringify({ name: span.name, attributes: span.attributes, status: span.status, events: span.events });

  it('runs the work in a span with its name and attributes, and adds what the work sets', async () => {
    const { tracing, spans } = tracerUnderTest();
    const result = await tracing.inSpan('send', { customerId: 'cust-1', attempt: 1, skipped: undefined, note: `Bearer ${BEARER_TOKEN}` }, (span) => {
      span.set({ connectionId: 'con-1', outcome: 'sent' });
      return Promise.resolve(42);
    });
    expect(result).toBe(42);
    const span = only(spans(), 'span');
    expect(span.name).toBe('send');
    expect(span.attributes).toEqual({ customerId: 'cust-1', attempt: 1, note: `Bearer ${REDACTED}`, connectionId: 'con-1', outcome: 'sent' });
    expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(span.ended).toBe(true);
  });

  it('rethrows what the work threw and marks the span failed, with the message and exception redacted', async () => {
    const { tracing, spans } = tracerUnderTest();
    const thrown = new Error(`Graph refused the token ${JWT}`);
    await expect(tracing.inSpan('look', { mailboxId: 'mb-1' }, () => Promise.reject(thrown))).rejects.toBe(thrown);

    const span = only(spans(), 'span');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.status.message).toBe(`Graph refused the token ${REDACTED}`);
    const exception = only(span.events.filter((e) => e.name === 'exception'), 'exception event');
    expect(exception.attributes?.['exception.type']).toBe('Error');
    expect(exception.attributes?.['exception.message']).toBe(`Graph refused the token ${REDACTED}`);
    expect(String(exception.attributes?.['exception.stacktrace'])).toContain(REDACTED);
    expect(exported(span)).not.toContain(JWT);
    expect(exported(span)).not.toContain('eyJzdWIiOiIxIn0');
  });

  it('rethrows a thrown non-Error unchanged, its text redacted on the span', async () => {
    const { tracing, spans } = tracerUnderTest();
    const thrown = `Bearer ${BEARER_TOKEN}`;
    await expect(tracing.inSpan('deliver', {}, () => Promise.reject(thrown as unknown as Error))).rejects.toBe(thrown);
    const span = only(spans(), 'span');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: `Bearer ${REDACTED}` });
    expect(exported(span)).not.toContain(BEARER_TOKEN);
  });

  it('tracedWork puts the outcome of the work on its span', async () => {
    const { tracing, spans } = tracerUnderTest();
    const result = await tracedWork(tracing, 'refresh', { connectionId: 'con-1' }, () => Promise.resolve({ outcome: 'busy', detail: 7 }));
    expect(result).toEqual({ outcome: 'busy', detail: 7 });
    expect(only(spans(), 'span')).toMatchObject({ name: 'refresh', attributes: { connectionId: 'con-1', outcome: 'busy' } });
  });

  it('noTracing runs the work and returns its result', async () => {
    await expect(tracedWork(noTracing, 'refresh', {}, () => Promise.resolve({ outcome: 'success' }))).resolves.toEqual({ outcome: 'success' });
  });
});

describe('processTelemetry', () => {
  startsNotExporting();

  it('without OpenTelemetry exporting, logs JSON lines and has no spans', () => {
    const telemetry = processTelemetry('info');
    expect(telemetry.exporting).toBe(false);
    expect(telemetry.tracing).toBe(noTracing);
  });

  it('once OpenTelemetry exports, goes through it', () => {
    markOpenTelemetryExporting(true);
    expect(openTelemetryExporting()).toBe(true);
    const telemetry = processTelemetry('info');
    expect(telemetry.exporting).toBe(true);
    expect(telemetry.tracing).not.toBe(noTracing);
    markOpenTelemetryExporting(false);
    expect(openTelemetryExporting()).toBe(false);
    expect(processTelemetry('info').exporting).toBe(false);
  });
});

describe('Azure Monitor', () => {
  const auth = (value: string | undefined) => aadIngestionOf(value === undefined ? {} : { APPLICATIONINSIGHTS_AUTHENTICATION_STRING: value });

  it('reads AAD ingestion from APPLICATIONINSIGHTS_AUTHENTICATION_STRING', () => {
    expect(auth(undefined)).toBeUndefined();
    expect(auth('')).toBeUndefined();
    expect(auth('Authorization=AAD;ClientId=abc')).toEqual({ clientId: 'abc' });
    expect(auth('clientid=abc; authorization=aad')).toEqual({ clientId: 'abc' });
    expect(auth('CLIENTID=abc;AUTHORIZATION=Aad;')).toEqual({ clientId: 'abc' });
    expect(auth('Authorization=AAD')).toEqual({});
    expect(auth('Authorization=AAD;ClientId=')).toEqual({});
    expect(auth('Authorization=Key;ClientId=abc')).toBeUndefined();
    expect(auth('ClientId=abc')).toBeUndefined();
  });

  describe('starting', () => {
    startsNotExporting();

    it('does not start without a connection string, and does not mark exporting', async () => {
      await expect(startAzureMonitor({})).resolves.toBeUndefined();
      expect(openTelemetryExporting()).toBe(false);
    });

    it('does not start a second time when OpenTelemetry already exports', async () => {
      markOpenTelemetryExporting(true);
      await expect(startAzureMonitor({ APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000' })).resolves.toBeUndefined();
      expect(openTelemetryExporting()).toBe(true);
    });

    it('startTelemetry without a connection string leaves the app alone', async () => {
      const app = new Proxy({}, { get: () => { throw new Error('the app must not be touched'); } }) as typeof AzureFunctions.app;
      await expect(startTelemetry(app, {})).resolves.toBeUndefined();
      expect(openTelemetryExporting()).toBe(false);
    });
  });
});

describe('metric catalog', () => {
  const names = Object.keys(METRIC_CATALOG) as MetricName[];
  const identity = new Set<string>(IDENTITY_DIMENSIONS);

  it.each(names)('%s has a unit, a sentence of description and dimensions of its own', (name) => {
    const definition = METRIC_CATALOG[name];
    expect(definition.unit.trim()).not.toBe('');
    expect(definition.description.trim()).not.toBe('');
    expect(definition.description.endsWith('.')).toBe(true);
    const dimensions: readonly string[] = definition.dimensions;
    expect(dimensions.filter((d) => identity.has(d)), 'repeats an identity dimension').toEqual([]);
    expect(new Set(dimensions).size, 'lists a dimension twice').toBe(dimensions.length);
  });

  // Every `.count('name'` and `.record('name'` in the source.
  const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));
  const uses: { name: string; kind: 'counter' | 'histogram'; file: string }[] = [];
  for (const file of readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(join(srcDir, file), 'utf8');
    for (const match of text.matchAll(/\.(count|record)\(\s*(['"`])([^'"`]+)\2/g)) {
      uses.push({ name: match[3] ?? '', kind: match[1] === 'count' ? 'counter' : 'histogram', file });
    }
  }

  it('finds the metric calls in the source', () => {
    expect(uses.length).toBeGreaterThan(names.length);
  });

  it('has every metric the source emits, of the kind it is emitted as', () => {
    const unknown = uses.filter((use) => !(use.name in METRIC_CATALOG)).map((use) => `${use.name} (${use.file})`);
    expect(unknown).toEqual([]);
    const wrongKind = uses.filter((use) => METRIC_CATALOG[use.name as MetricName].kind !== use.kind).map((use) => `${use.name} (${use.file})`);
    expect(wrongKind).toEqual([]);
  });

  it('has no metric the source never emits', () => {
    const used = new Set(uses.map((use) => use.name));
    expect(names.filter((name) => !used.has(name))).toEqual([]);
  });
});
