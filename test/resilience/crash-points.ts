import { UNCHANGED, type TableRepository } from '../../src/store/table-repository.js';

/**
 * Crash injection for the resilience tests: every dependency a use-case writes through (a table,
 * a queue, a blob, a mail transport, recordEvent) is wrapped so that one run can be stopped right
 * after its N-th side effect, and a small model of Azure Queue Storage (and of the timers behind
 * it) runs the retries the way the Functions host would.
 *
 * Two ways to stop:
 * - `die`: the process is gone. The N-th effect happened; nothing the run tries afterwards does
 *   (catch blocks and `finally` still run in this process, but their writes are refused).
 * - `throw`: the N-th effect's call throws although the effect happened (a timeout after the
 *   server did the work); the rest of the run goes on as the code decides.
 */

export type CrashMode = 'die' | 'throw';

export class Crash extends Error {
  constructor(readonly step: string) {
    super(`injected crash after ${step}`);
    this.name = 'Crash';
  }
}

export class CrashPlan {
  /** The side effects that happened, in order. */
  readonly steps: string[] = [];
  /** The effect the run stopped after, once it did. */
  crashedAfter: string | undefined;
  private dead = false;

  /** `crashAfter` undefined: a dry run that only lists the effects. */
  constructor(
    readonly crashAfter?: number,
    readonly mode: CrashMode = 'die',
  ) {}

  /** Refuses a side effect of a process that is gone. */
  before(step: string): void {
    if (this.dead) throw new Crash(`${this.crashedAfter ?? '?'} (${step} refused: the process is gone)`);
  }

  /** The effect `step` happened; stops the run here when it is the N-th. */
  after(step: string): void {
    this.steps.push(step);
    if (this.steps.length !== this.crashAfter) return;
    this.crashedAfter = step;
    if (this.mode === 'die') this.dead = true;
    throw new Crash(step);
  }

  async effect<T>(step: string, run: () => Promise<T>): Promise<T> {
    this.before(step);
    const result = await run();
    this.after(step);
    return result;
  }
}

/**
 * The repository with its writes (create, replace, delete, and update when it writes) going
 * through `plan`; reads pass. Calls inside the repository (update's own get and replace) are not
 * counted twice.
 */
export function crashingRepository<T>(repository: TableRepository<T>, name: string, plan: CrashPlan): TableRepository<T> {
  const wrapped: Partial<TableRepository<T>> = {
    create: (key, value) => plan.effect(`${name}.create`, () => repository.create(key, value)),
    replace: (key, value, etag) => plan.effect(`${name}.replace`, () => repository.replace(key, value, etag)),
    delete: (key, etag) => plan.effect(`${name}.delete`, () => repository.delete(key, etag)),
    async update(key, mutate, options) {
      plan.before(`${name}.update`);
      // Set by the mutator's last run, the one whose result was written (or not).
      const last = { wrote: false };
      const result = await repository.update(
        key,
        (current) => {
          const next = mutate(current);
          last.wrote = next !== UNCHANGED;
          return next;
        },
        options,
      );
      if (last.wrote) plan.after(`${name}.update`);
      return result;
    },
  };
  return overlay(repository, wrapped);
}

/** `target` with some of its methods replaced; the others stay bound to it. */
export function overlay<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      if (Object.prototype.hasOwnProperty.call(replaced, property)) return (replaced as Record<PropertyKey, unknown>)[property];
      const value: unknown = Reflect.get(object, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}

/** A clock tests move; real time still passes underneath. */
export class Clock {
  private offset = 0;
  readonly now = (): Date => new Date(Date.now() + this.offset);
  ms(): number {
    return Date.now() + this.offset;
  }
  advance(ms: number): void {
    this.offset += Math.ceil(ms);
  }
  /** Moves the clock to `at` when that is later. */
  advanceTo(at: number): void {
    const now = this.ms();
    if (at > now) this.offset += at - now;
  }
}

/** How Azure Queue Storage behaves for these tests: delayed visibility, redelivery after a failure, the poison queue. */
export const VISIBILITY_TIMEOUT_MS = 30_000;
export const MAX_DEQUEUE_COUNT = 5;

interface QueuedMessage<J> {
  job: J;
  visibleAt: number;
  dequeues: number;
}

export class QueueModel<J> {
  private readonly messages: QueuedMessage<J>[] = [];
  readonly poisoned: J[] = [];
  /** Every message ever put on the queue (first delivery only). */
  published = 0;

  constructor(private readonly clock: Clock) {}

  push(job: J, delaySeconds = 0): void {
    this.published++;
    this.messages.push({ job, visibleAt: this.clock.ms() + delaySeconds * 1000, dequeues: 0 });
  }

  get size(): number {
    return this.messages.length;
  }

  /** When the next message becomes visible; undefined when the queue is empty. */
  nextVisibleAt(): number | undefined {
    return this.messages.length === 0 ? undefined : Math.min(...this.messages.map((message) => message.visibleAt));
  }

  /** The message that becomes visible first, taken off the queue (the clock moves to when it is visible). */
  take(): QueuedMessage<J> | undefined {
    if (this.messages.length === 0) return undefined;
    let index = 0;
    this.messages.forEach((message, i) => {
      if (message.visibleAt < (this.messages[index]?.visibleAt ?? Infinity)) index = i;
    });
    const [message] = this.messages.splice(index, 1);
    if (!message) return undefined;
    this.clock.advanceTo(message.visibleAt);
    message.dequeues++;
    return message;
  }

  /** The handler threw: the message comes back after the visibility timeout, or goes to the poison queue. */
  failed(message: QueuedMessage<J>): void {
    if (message.dequeues >= MAX_DEQUEUE_COUNT) {
      this.poisoned.push(message.job);
      return;
    }
    message.visibleAt = this.clock.ms() + VISIBILITY_TIMEOUT_MS;
    this.messages.push(message);
  }
}

export interface DriveResult<R> {
  invocations: number;
  outcomes: R[];
  /** What invocations other than the crashed one threw (each was retried by the queue). */
  errors: unknown[];
  /** The crash happened (the run reached its N-th effect). */
  crashed: boolean;
  /** The work was done (`done()` said so) when the queue and the timer had nothing left. */
  completed: boolean;
  /** How far the clock moved until then. */
  elapsedMs: number;
}

/**
 * Runs a queue's work as the Functions host would: every invocation (the first, a retry, a
 * follow-up message, what a timer enqueued) counts its effects on the plan until the plan's crash
 * happened; the ones after it run as fresh instances without a plan. A message whose invocation
 * threw comes back after the visibility timeout. When the queue is empty but the work is not
 * done, the timer ticks (if the use-case has one). Several drives may share one plan (one piece
 * of work that passes through two queues).
 */
export async function drive<J, R>(options: {
  queue: QueueModel<J>;
  clock: Clock;
  plan: CrashPlan;
  run(job: J, plan: CrashPlan): Promise<R>;
  done(): Promise<boolean>;
  /**
   * A timer that enqueues due work every `everyMs`. With `nextDue`, ticks that would find nothing
   * due are skipped: the clock moves to the first tick at or after that time (undefined: nothing
   * will ever be due again).
   */
  timer?: { everyMs: number; tick(): Promise<void>; nextDue?(): Promise<number | undefined> };
  /** Timer ticks to try before giving up. */
  maxTicks?: number;
  maxInvocations?: number;
}): Promise<DriveResult<R>> {
  const started = options.clock.ms();
  const result: DriveResult<R> = { invocations: 0, outcomes: [], errors: [], crashed: false, completed: false, elapsedMs: 0 };
  let ticks = 0;
  for (;;) {
    const message = options.queue.take();
    if (!message) {
      result.elapsedMs = options.clock.ms() - started;
      if (await options.done()) {
        result.completed = true;
        return result;
      }
      if (!options.timer || ticks >= (options.maxTicks ?? 40)) return result;
      ticks++;
      const timer = options.timer;
      const everyMs = timer.everyMs;
      const next = options.clock.ms() + everyMs;
      if (timer.nextDue) {
        const due = await timer.nextDue();
        if (due === undefined) return result;
        options.clock.advanceTo(Math.max(next, next + Math.ceil((due - next) / everyMs) * everyMs));
      } else {
        options.clock.advanceTo(next);
      }
      await options.timer.tick();
      continue;
    }
    if (result.invocations >= (options.maxInvocations ?? 60)) throw new Error(`more than ${String(result.invocations)} invocations: the work does not settle`);
    const planned = options.plan.crashedAfter === undefined;
    const plan = planned ? options.plan : new CrashPlan();
    result.invocations++;
    try {
      result.outcomes.push(await options.run(message.job, plan));
    } catch (error) {
      // What the crashed invocation throws is the crash, whatever it became on the way out.
      if (!(planned && options.plan.crashedAfter !== undefined) && !(error instanceof Crash)) result.errors.push(error);
      options.queue.failed(message);
    }
    if (planned && options.plan.crashedAfter !== undefined) result.crashed = true;
  }
}

/** One line per crash point, for the report. */
export interface CrashPointReport {
  flow: string;
  mode: CrashMode;
  n: number;
  step: string;
  invocations: number;
  duplicates: number;
  lost: number;
  note?: string;
}

export function printReport(title: string, rows: CrashPointReport[]): void {
  const duplicates = rows.reduce((sum, row) => sum + row.duplicates, 0);
  const lost = rows.reduce((sum, row) => sum + row.lost, 0);
  const lines = rows.map(
    (row) =>
      `  ${row.flow.padEnd(18)} ${row.mode.padEnd(5)} #${String(row.n).padStart(2)} after ${row.step.padEnd(28)} invocations ${String(row.invocations).padStart(2)}  duplicates ${String(row.duplicates)}  lost ${String(row.lost)}${row.note ? `  (${row.note})` : ''}`,
  );
  console.log(`${title}: ${String(rows.length)} crash points, ${String(duplicates)} duplicates, ${String(lost)} lost\n${lines.join('\n')}`);
}
