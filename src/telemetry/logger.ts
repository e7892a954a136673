import type { LogLevel } from '../config.js';
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
    options.sink({ timestamp: new Date().toISOString(), level, message: redactText(message), ...merged });
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
  return (record) => {
    context[record.level](JSON.stringify(record));
  };
}

export function invocationLogger(base: { level: LogLevel }, context: InvocationLogTarget, fields?: LogFields): Logger {
  return createLogger({
    level: base.level,
    sink: invocationSink(context),
    fields: { invocationId: context.invocationId, functionName: context.functionName, ...fields },
  });
}
