import type { LogLevel } from '../config.js';
import { format } from 'node:util';
import { redactText, redactValue } from './redact.js';

/**
 * Structured logging. Every record is one JSON object carrying the ids ops filter on
 * (customer, connection, mailbox, invocation) and passes through redaction on its way out,
 * whatever the caller put in it.
 */

export interface LogFields {
  customerId?: string;
  connectionId?: string;
  mailboxId?: string;
  invocationId?: string;
  functionName?: string;
  error?: unknown;
  [key: string]: unknown;
}

export interface LogRecord extends LogFields {
  timestamp: string;
  level: LogLevel;
  message: string;
}

export type LogSink = (record: LogRecord) => void;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose records all carry `fields` (an invocation's or a connection's ids). */
  child(fields: LogFields): Logger;
}

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(options: { level: LogLevel; sink: LogSink; fields?: LogFields }): Logger {
  const minimum = SEVERITY[options.level];
  const bound = options.fields ?? {};
  const write = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (SEVERITY[level] < minimum) return;
    const merged = redactValue({ ...bound, ...fields }) as LogFields;
    // The record's own fields come last: a caller's field cannot change its level, message or time.
    options.sink({ ...merged, timestamp: new Date().toISOString(), level, message: redactText(message) });
  };
  return {
    debug: (message, fields) => { write('debug', message, fields); },
    info: (message, fields) => { write('info', message, fields); },
    warn: (message, fields) => { write('warn', message, fields); },
    error: (message, fields) => { write('error', message, fields); },
    child: (fields) => createLogger({ ...options, fields: { ...bound, ...fields } }),
  };
}

/** One JSON line per record on stdout (errors on stderr): what the local host and tools use. */
export const jsonLineSink: LogSink = (record) => {
  const line = JSON.stringify(record);
  if (record.level === 'error' || record.level === 'warn') process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
};

/** The slice of a Functions InvocationContext a logger needs. */
export interface InvocationLogTarget {
  readonly invocationId: string;
  readonly functionName: string;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/**
 * Logs through the invocation context so the Functions host correlates each line with its
 * invocation in Application Insights; the record stays one JSON document.
 */
export function invocationSink(context: InvocationLogTarget): LogSink {
  // The record is redacted already; skip the second pass the invocation's own methods would make.
  const target = unredactedMethods(context) ?? context;
  return (record) => {
    target[record.level](JSON.stringify(record));
  };
}

const UNREDACTED = Symbol('m365-connector.unredacted-log-methods');
const LOG_METHODS = ['log', 'trace', 'debug', 'info', 'warn', 'error'] as const;
type LogMethods = Record<(typeof LOG_METHODS)[number], (...args: unknown[]) => void>;

/**
 * Makes every line an invocation writes through its context pass redaction, including lines
 * written directly with context.log(...) (which formats objects like util.inspect). Registered as
 * a pre-invocation hook, so it holds in Azure as well as in the local host.
 */
export function redactInvocationLogs(context: object): void {
  const target = context as LogMethods & { [UNREDACTED]?: LogMethods };
  if (target[UNREDACTED]) return;
  const originals = {} as LogMethods;
  for (const method of LOG_METHODS) {
    const original = target[method].bind(target);
    originals[method] = original;
    target[method] = (...args: unknown[]) => {
      original(redactText(format(...args)));
    };
  }
  target[UNREDACTED] = originals;
}

function unredactedMethods(context: object): LogMethods | undefined {
  return (context as { [UNREDACTED]?: LogMethods })[UNREDACTED];
}

export function invocationLogger(base: { level: LogLevel }, context: InvocationLogTarget, fields?: LogFields): Logger {
  return createLogger({
    level: base.level,
    sink: invocationSink(context),
    fields: { invocationId: context.invocationId, functionName: context.functionName, ...fields },
  });
}
