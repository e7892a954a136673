import { Cron } from 'croner';
import { RestError, type ContainerClient } from '@azure/storage-blob';
import type { HostLog } from './host-log.js';

/**
 * Timer triggers with the Functions host's semantics: 6-field NCRONTAB schedules evaluated in
 * UTC, one run at a time per function (an occurrence that falls during a run is skipped, not
 * queued), `isPastDue` when a run starts later than its occurrence, and — with useMonitor — the
 * schedule status kept in Blob storage so an occurrence missed while the host was down runs at
 * the next start, marked past due.
 */

export interface TimerInfo {
  Schedule: { AdjustForDST: boolean };
  ScheduleStatus: { Last: string; Next: string; LastUpdated: string } | null;
  IsPastDue: boolean;
}

export interface TimerDefinition {
  functionName: string;
  schedule: string;
  runOnStartup: boolean;
  useMonitor: boolean | undefined;
  run(info: TimerInfo): Promise<void>;
}

interface ScheduleStatus {
  Last: string;
  Next: string;
  LastUpdated: string;
}

/** A late start by more than this counts as past due (timers never fire to the millisecond). */
const PAST_DUE_TOLERANCE_MS = 1000;

const FIELDS = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] },
  { name: 'day-of-week', min: 0, max: 6, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
] as const;

/**
 * Checks a field against NCRONTAB, the grammar Azure uses: `*`, numbers or three-letter names,
 * ranges, lists and steps. Extensions other cron libraries accept (`?`, `L`, `W`, `#`) would run
 * locally and then fail in Azure, so they are refused here.
 */
function ncrontabProblem(field: string, spec: (typeof FIELDS)[number]): string | undefined {
  const value = (text: string): number | undefined => {
    if (/^\d+$/.test(text)) return Number(text);
    const index = 'names' in spec ? (spec.names as readonly string[]).indexOf(text.toUpperCase()) : -1;
    return index >= 0 ? index + spec.min : undefined;
  };
  for (const item of field.split(',')) {
    const match = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d+))?$/.exec(item);
    if (!match?.[1]) return `"${item}" is not *, a value, a range, a list or a step`;
    if (match[2] !== undefined && Number(match[2]) < 1) return `the step in "${item}" must be at least 1`;
    if (match[1] === '*') continue;
    const [from = '', to] = match[1].split('-');
    for (const part of to === undefined ? [from] : [from, to]) {
      const n = value(part);
      if (n === undefined || n < spec.min || n > spec.max) return `"${part}" is outside ${spec.min}-${spec.max}`;
    }
  }
  return undefined;
}

export function parseSchedule(schedule: string, functionName: string): Cron {
  const fields = schedule.trim().split(/\s+/);
  const problem =
    fields.length !== 6
      ? 'it needs exactly 6 fields'
      : FIELDS.map((spec, i) => {
          const reason = ncrontabProblem(fields[i] ?? '', spec);
          return reason && `${spec.name}: ${reason}`;
        }).find((reason) => reason !== undefined);
  if (problem) {
    throw new Error(
      `Timer "${functionName}": schedule "${schedule}" is not a 6-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week}, in UTC): ${problem}`,
    );
  }
  return new Cron(schedule, { timezone: 'UTC', paused: true, mode: '6-part', domAndDow: true });
}

export class TimerScheduler {
  private readonly stopped = new AbortController();
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly statusContainer: ContainerClient | undefined,
    private readonly hostId: string,
    private readonly log: HostLog,
  ) {}

  start(timer: TimerDefinition): void {
    const cron = parseSchedule(timer.schedule, timer.functionName);
    const [first, second] = cron.nextRuns(2, new Date());
    const everyMs = first && second ? second.getTime() - first.getTime() : 0;
    // The host's default: monitor schedules whose occurrences are at least a minute apart.
    const monitor = (timer.useMonitor ?? everyMs >= 60_000) && this.statusContainer !== undefined;
    this.loops.push(
      this.loop(timer, cron, monitor).catch((error: unknown) => {
        this.log('error', `Timer "${timer.functionName}" stopped: its schedule status could not be read`, error);
      }),
    );
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await Promise.all(this.loops);
  }

  private async loop(timer: TimerDefinition, cron: Cron, monitor: boolean): Promise<void> {
    const signal = this.stopped.signal;
    let status = monitor ? await this.readStatus(timer.functionName) : undefined;

    const fire = async (occurrence: Date, pastDue: boolean) => {
      const next = cron.nextRun(new Date(Math.max(Date.now(), occurrence.getTime())));
      const info: TimerInfo = {
        Schedule: { AdjustForDST: true },
        ScheduleStatus: status ?? null,
        IsPastDue: pastDue,
      };
      try {
        await timer.run(info);
      } catch (error) {
        this.log('error', `Timer function "${timer.functionName}" failed`, error);
      }
      if (monitor && next) {
        status = { Last: occurrence.toISOString(), Next: next.toISOString(), LastUpdated: new Date().toISOString() };
        await this.writeStatus(timer.functionName, status);
      }
    };

    if (status && Date.parse(status.Next) < Date.now()) {
      await fire(new Date(status.Next), true);
    } else if (timer.runOnStartup) {
      await fire(new Date(), false);
    }

    while (!signal.aborted) {
      const occurrence = cron.nextRun(new Date());
      if (!occurrence) return;
      if (monitor && !status) {
        status = { Last: new Date(0).toISOString(), Next: occurrence.toISOString(), LastUpdated: new Date().toISOString() };
        await this.writeStatus(timer.functionName, status);
      }
      const waited = await sleepUntil(occurrence, signal);
      if (!waited) return;
      await fire(occurrence, Date.now() - occurrence.getTime() > PAST_DUE_TOLERANCE_MS);
    }
  }

  private blobName(functionName: string): string {
    return `timers/${this.hostId}/Host.Functions.${functionName}/status`;
  }

  private async readStatus(functionName: string): Promise<ScheduleStatus | undefined> {
    if (!this.statusContainer) return undefined;
    try {
      const data = await this.statusContainer.getBlockBlobClient(this.blobName(functionName)).downloadToBuffer();
      const parsed = JSON.parse(data.toString('utf8')) as Partial<ScheduleStatus>;
      if (typeof parsed.Next !== 'string' || Number.isNaN(Date.parse(parsed.Next))) return undefined;
      return { Last: parsed.Last ?? new Date(0).toISOString(), Next: parsed.Next, LastUpdated: parsed.LastUpdated ?? parsed.Next };
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      if (error instanceof SyntaxError) return undefined;
      throw error;
    }
  }

  private async writeStatus(functionName: string, status: ScheduleStatus): Promise<void> {
    if (!this.statusContainer) return;
    const body = JSON.stringify(status);
    try {
      await this.statusContainer.getBlockBlobClient(this.blobName(functionName)).upload(body, Buffer.byteLength(body));
    } catch (error) {
      this.log('warn', `Could not save the schedule status of timer "${functionName}"`, error);
    }
  }
}

/** Waits until `when`, in steps, so long sleeps survive clock changes and stop promptly. */
function sleepUntil(when: Date, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    let timer: NodeJS.Timeout;
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const tick = () => {
      const remaining = when.getTime() - Date.now();
      if (remaining <= 0) {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
        return;
      }
      timer = setTimeout(tick, Math.min(remaining, 60_000));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    tick();
  });
}
