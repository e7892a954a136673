import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { PageModel } from '../pages/model.js';
import { UNCHANGED, type TableRepository } from '../store/table-repository.js';
import { stateKey } from '../identity/sign-in-states.js';

/**
 * How a sign-in or consent ended, kept for a day under a random id, so the result is shown by a
 * GET (post/redirect/get): the callback that processed Microsoft's answer redirects to it, and a
 * reload or a change of language shows the same result instead of repeating a used sign-in.
 */

type WithoutPageBase<T> = T extends unknown ? Omit<T, 'vendorName' | 'url'> : never;

/** A result page's content, without what every page gets when it is shown. */
export type ConnectOutcome = WithoutPageBase<Exclude<PageModel, { kind: 'landing' }>>;

/**
 * The connection a result is about, kept with it (never shown) where the page offers to act on it:
 * the Exchange set-up page's "Check again".
 */
export interface ResultSubject {
  customerId: string;
  connectionId: string;
}

const RESULT_ID = /^[A-Za-z0-9_-]{43}$/;

export const connectResultSchema = z.object({
  id: z.string().regex(RESULT_ID),
  /** The outcome as JSON; its dates are ISO strings. */
  outcome: z.looseObject({ kind: z.string() }),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  customerId: z.string().optional(),
  connectionId: z.string().optional(),
  /** When the page last ran a connectivity check: the rate limit's memory, shared by every instance. */
  lastCheckAt: z.iso.datetime().optional(),
});
export type ConnectResult = z.infer<typeof connectResultSchema>;

export interface StoredResult {
  outcome: ConnectOutcome;
  subject?: ResultSubject;
}

export type CheckTurn = { kind: 'started' } | { kind: 'wait'; retryAfterMs: number } | { kind: 'gone' };

export const RESULT_TTL_MS = 24 * 60 * 60_000;

/** Fields of outcomes that hold dates; JSON turns them into strings. */
const DATE_FIELDS = new Set(['occurredAt', 'expiresAt']);

export class ConnectResults {
  constructor(
    private readonly results: TableRepository<ConnectResult>,
    private readonly now: () => Date,
  ) {}

  async save(outcome: ConnectOutcome, subject?: ResultSubject): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    const now = this.now();
    await this.results.create(stateKey(id), {
      id,
      outcome: JSON.parse(JSON.stringify(outcome)) as ConnectResult['outcome'],
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + RESULT_TTL_MS).toISOString(),
      ...(subject && { customerId: subject.customerId, connectionId: subject.connectionId }),
    });
    return id;
  }

  /** What was saved under `id`, or undefined when there is none (or it is older than a day). */
  async load(id: string): Promise<StoredResult | undefined> {
    if (!RESULT_ID.test(id)) return undefined;
    const found = await this.results.get(stateKey(id));
    if (!found || this.expired(found.value)) return undefined;
    const { outcome, customerId, connectionId } = found.value;
    return {
      outcome: reviveDates(outcome) as ConnectOutcome,
      ...(customerId !== undefined && connectionId !== undefined && { subject: { customerId, connectionId } }),
    };
  }

  /**
   * Takes the result's turn to run a connectivity check, at most one per `intervalMs`: the time is
   * written with the row's ETag, so two clicks (or two instances) in the same moment get one check.
   */
  async startCheck(id: string, intervalMs: number): Promise<CheckTurn> {
    if (!RESULT_ID.test(id)) return { kind: 'gone' };
    const now = this.now();
    let turn: CheckTurn = { kind: 'gone' };
    await this.results.update(stateKey(id), (current) => {
      if (!current || this.expired(current)) {
        turn = { kind: 'gone' };
        return UNCHANGED;
      }
      const waited = current.lastCheckAt === undefined ? Infinity : now.getTime() - Date.parse(current.lastCheckAt);
      if (waited < intervalMs) {
        turn = { kind: 'wait', retryAfterMs: intervalMs - Math.max(0, waited) };
        return UNCHANGED;
      }
      turn = { kind: 'started' };
      return { ...current, lastCheckAt: now.toISOString() };
    });
    return turn;
  }

  private expired(result: ConnectResult): boolean {
    return Date.parse(result.expiresAt) <= this.now().getTime();
  }
}

function reviveDates(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reviveDates);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => [key, DATE_FIELDS.has(key) && typeof field === 'string' ? new Date(field) : reviveDates(field)]),
  );
}
