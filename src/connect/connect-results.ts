import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { PageModel } from '../pages/model.js';
import type { TableRepository } from '../store/table-repository.js';
import { stateKey } from '../identity/sign-in-states.js';

/**
 * How a sign-in or consent ended, kept for a day under a random id, so the result is shown by a
 * GET (post/redirect/get): the callback that processed Microsoft's answer redirects to it, and a
 * reload or a change of language shows the same result instead of repeating a used sign-in.
 */

type WithoutPageBase<T> = T extends unknown ? Omit<T, 'vendorName' | 'url'> : never;

/** A result page's content, without what every page gets when it is shown. */
export type ConnectOutcome = WithoutPageBase<Exclude<PageModel, { kind: 'landing' }>>;

export const connectResultSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  /** The outcome as JSON; its dates are ISO strings. */
  outcome: z.looseObject({ kind: z.string() }),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
});
export type ConnectResult = z.infer<typeof connectResultSchema>;

export const RESULT_TTL_MS = 24 * 60 * 60_000;

/** Fields of outcomes that hold dates; JSON turns them into strings. */
const DATE_FIELDS = new Set(['occurredAt', 'expiresAt']);

export class ConnectResults {
  constructor(
    private readonly results: TableRepository<ConnectResult>,
    private readonly now: () => Date,
  ) {}

  async save(outcome: ConnectOutcome): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    const now = this.now();
    await this.results.create(stateKey(id), {
      id,
      outcome: JSON.parse(JSON.stringify(outcome)) as ConnectResult['outcome'],
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + RESULT_TTL_MS).toISOString(),
    });
    return id;
  }

  /** The outcome saved under `id`, or undefined when there is none (or it is older than a day). */
  async load(id: string): Promise<ConnectOutcome | undefined> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const found = await this.results.get(stateKey(id));
    if (!found || Date.parse(found.value.expiresAt) <= this.now().getTime()) return undefined;
    return reviveDates(found.value.outcome) as ConnectOutcome;
  }
}

function reviveDates(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reviveDates);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => [key, DATE_FIELDS.has(key) && typeof field === 'string' ? new Date(field) : reviveDates(field)]),
  );
}
