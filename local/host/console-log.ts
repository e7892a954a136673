import { redactText } from '../../src/telemetry/redact.js';
import type { HostLog } from './host-log.js';
import type { InvocationLogEntry } from './invoke.js';

/**
 * Terminal output of the local host, close to Core Tools': the host's own messages and the
 * per-invocation "Executing/Executed" lines timestamped, the functions' own lines (JSON records
 * from the connector's logger) printed as they are.
 */

const rank = { trace: 0, debug: 1, information: 2, warning: 3, error: 4, critical: 5, none: 6 } as const;

export function consoleFunctionLog(options: { verbose: boolean }): (entry: InvocationLogEntry) => void {
  return (entry) => {
    if (entry.category === 'system' && rank[entry.level] < (options.verbose ? rank.debug : rank.information)) return;
    const text = redactText(entry.message);
    const line = entry.category === 'user' ? text : `[${new Date().toISOString()}] ${text}`;
    (rank[entry.level] >= rank.warning ? process.stderr : process.stdout).write(`${line}\n`);
  };
}

export const consoleHostLog: HostLog = (level, message, error) => {
  if (level === 'debug') return;
  const detail = error instanceof Error ? `: ${error.message}` : typeof error === 'string' ? `: ${error}` : '';
  const line = `[${new Date().toISOString()}] ${redactText(`${message}${detail}`)}\n`;
  (level === 'info' ? process.stdout : process.stderr).write(line);
};
