import { z } from 'zod';
import type { ConnectionHealth } from '../domain/connection-health.js';
import type { Repositories } from '../store/repositories.js';
import { QUEUES } from '../store/storage-layout.js';
import type { RefreshMessage } from './refresh-connection.js';

/**
 * The refresh timer's fan-out: one page of due connections per invocation, one queue message per
 * connection, and a message for the next page, so no invocation walks every connection and no
 * refresh runs inside the timer.
 */

export const refreshScanSchema = z.object({
  /** The time the scan looks for due connections before, kept across pages so every page uses one filter. */
  dueBefore: z.iso.datetime(),
  continuationToken: z.string().min(1).optional(),
});
export type RefreshScan = z.infer<typeof refreshScanSchema>;

export interface ScheduleDeps {
  health: Repositories['connectionHealth'];
  queues: { publish(queue: string, payload: unknown): Promise<unknown> };
  pageSize?: number;
}

export async function enqueueDueRefreshes(deps: ScheduleDeps, scan: RefreshScan): Promise<{ enqueued: number; more: boolean }> {
  const page = await deps.health.pageBefore('dueAt', scan.dueBefore, {
    pageSize: deps.pageSize ?? 200,
    ...(scan.continuationToken !== undefined && { continuationToken: scan.continuationToken }),
  });
  const due = page.items.map((item): ConnectionHealth => item.value).filter((health) => health.dueAt < scan.dueBefore);
  await Promise.all(
    due.map((health) => deps.queues.publish(QUEUES.refreshConnection, { customerId: health.customerId, connectionId: health.connectionId } satisfies RefreshMessage)),
  );
  if (page.continuationToken !== undefined) {
    await deps.queues.publish(QUEUES.refreshScan, { dueBefore: scan.dueBefore, continuationToken: page.continuationToken } satisfies RefreshScan);
  }
  return { enqueued: due.length, more: page.continuationToken !== undefined };
}
