import { z } from 'zod';
import type { ReceiveState } from '../domain/receive-state.js';
import type { Repositories } from '../store/repositories.js';
import { QUEUES } from '../store/storage-layout.js';
import type { PollJob } from './poll-mailbox.js';

/**
 * The poll timer's fan-out: one page of mailboxes due before the next tick per invocation, one
 * queue message per mailbox, made visible when the mailbox is due (so each keeps its second of
 * the minute), and a message for the next page. No invocation walks every mailbox, and no look
 * runs inside the timer.
 */

export const pollScanSchema = z.object({
  /** Mailboxes due before this are enqueued: the next tick's time, kept across pages. */
  dueBefore: z.iso.datetime(),
  continuationToken: z.string().min(1).optional(),
});
export type PollScan = z.infer<typeof pollScanSchema>;

export interface PollScheduleDeps {
  states: Repositories['receiveState'];
  queues: { publish(queue: string, payload: unknown, options?: { delaySeconds?: number }): Promise<unknown> };
  now(): Date;
  pageSize?: number;
}

/** The timer's period: a scan covers the mailboxes due before the next one. */
export const POLL_TICK_MS = 60_000;

export async function enqueueDuePolls(deps: PollScheduleDeps, scan: PollScan): Promise<{ enqueued: number; more: boolean }> {
  const page = await deps.states.pageBefore('dueAt', scan.dueBefore, {
    pageSize: deps.pageSize ?? 500,
    ...(scan.continuationToken !== undefined && { continuationToken: scan.continuationToken }),
  });
  const now = deps.now().getTime();
  const due = page.items.map((item): ReceiveState => item.value).filter((state) => state.dueAt < scan.dueBefore && !leased(state, now));
  await Promise.all(
    due.map((state) =>
      deps.queues.publish(
        QUEUES.pollMailbox,
        { customerId: state.customerId, connectionId: state.connectionId, mailboxId: state.mailboxId, reason: 'schedule' } satisfies PollJob,
        { delaySeconds: Math.max(0, Math.min(Math.ceil((Date.parse(state.dueAt) - now) / 1000), POLL_TICK_MS / 1000 - 1)) },
      ),
    ),
  );
  if (page.continuationToken !== undefined) {
    await deps.queues.publish(QUEUES.pollScan, { dueBefore: scan.dueBefore, continuationToken: page.continuationToken } satisfies PollScan);
  }
  return { enqueued: due.length, more: page.continuationToken !== undefined };
}

/** A look in progress: enqueueing it again would only find it busy. */
function leased(state: ReceiveState, now: number): boolean {
  return state.lease !== undefined && Date.parse(state.lease.expiresAt) > now;
}
