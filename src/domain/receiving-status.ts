import { z } from 'zod';
import { RECEIVE_MODES, RECEIVE_TRANSPORTS, receiveErrorSchema, type ReceiveState } from './receive-state.js';

/** How receiving is going for a mailbox, as the vendor sees it (no cursors, no secrets). */
export const receivingStatusSchema = z
  .object({
    transport: z.enum(RECEIVE_TRANSPORTS),
    mode: z.enum(RECEIVE_MODES).meta({ description: 'notifications: Graph tells the connector about new mail; polling: the mailbox is looked at on a schedule.' }),
    modeReason: z.string().optional().meta({ description: 'Why a Graph mailbox is polled rather than notified.' }),
    subscriptionExpiresAt: z.iso.datetime().optional().meta({ description: 'The earliest expiry of its Graph subscriptions (renewed a day before).' }),
    lastPollAt: z.iso.datetime().optional(),
    lastSuccessAt: z.iso.datetime().optional(),
    lastMessageAt: z.iso.datetime().optional(),
    nextPollAt: z.iso.datetime(),
    consecutiveFailures: z.int().nonnegative(),
    lastError: receiveErrorSchema.optional(),
  })
  .meta({ id: 'ReceivingStatus' });
export type ReceivingStatus = z.infer<typeof receivingStatusSchema>;

export function receivingStatus(state: ReceiveState): ReceivingStatus {
  const expiries = Object.values(state.subscriptions ?? {}).map((subscription) => subscription.expiresAt).sort();
  return {
    transport: state.transport,
    mode: state.mode,
    ...(state.modeReason !== undefined && { modeReason: state.modeReason }),
    ...(expiries[0] !== undefined && { subscriptionExpiresAt: expiries[0] }),
    ...(state.lastPollAt !== undefined && { lastPollAt: state.lastPollAt }),
    ...(state.lastSuccessAt !== undefined && { lastSuccessAt: state.lastSuccessAt }),
    ...(state.lastMessageAt !== undefined && { lastMessageAt: state.lastMessageAt }),
    nextPollAt: state.dueAt,
    consecutiveFailures: state.consecutiveFailures,
    ...(state.lastError !== undefined && { lastError: state.lastError }),
  };
}
