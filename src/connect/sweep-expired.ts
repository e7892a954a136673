import type { InvocationContext, Timer } from '@azure/functions';
import { getServices } from '../composition.js';
import { ConcurrencyError, type TableRepository } from '../store/table-repository.js';

/**
 * Sign-in states and result pages live minutes to a day, and nothing else deletes them once they
 * expire (an abandoned sign-in never comes back). A timer removes them, a bounded number per run so
 * one invocation never runs long: a backlog is worked off over the following runs.
 */

export interface Expiring {
  expiresAt: string;
}

export interface SweepResult {
  deleted: number;
  /** True when the budget ran out before the expired rows did. */
  more: boolean;
}

export async function sweepExpired(tables: readonly TableRepository<Expiring>[], now: Date, budget = 2000): Promise<SweepResult> {
  let deleted = 0;
  const before = now.toISOString();
  for (const table of tables) {
    let continuationToken: string | undefined;
    do {
      const page = await table.pageBefore('expiresAt', before, { pageSize: Math.min(100, budget - deleted), ...(continuationToken !== undefined && { continuationToken }) });
      for (const row of page.items) {
        try {
          // The ETag keeps a row that was rewritten since it was read.
          if (await table.delete(row.key, row.etag)) deleted++;
        } catch (error) {
          if (!(error instanceof ConcurrencyError)) throw error;
        }
      }
      continuationToken = page.continuationToken;
      if (deleted >= budget) return { deleted, more: true };
    } while (continuationToken !== undefined);
  }
  return { deleted, more: false };
}

export async function sweepExpiredHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const log = services.logFor(context);
  const { signInStates, connectResults } = services.repositories;
  const result = await sweepExpired([signInStates, connectResults], new Date());
  if (result.deleted > 0 || result.more) log.info('connect: expired sign-in states and results removed', { deleted: result.deleted, more: result.more });
}
