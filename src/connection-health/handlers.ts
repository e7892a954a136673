import type { InvocationContext, Timer } from '@azure/functions';
import { parseQueueMessage } from '../store/queue-message.js';
import { getServices, type IdentityServices, type Services } from '../composition.js';
import type { Logger } from '../telemetry/logger.js';
import { refreshMessageSchema } from './refresh-connection.js';
import { refreshScanSchema } from './schedule-refreshes.js';

/**
 * The Functions entry points of token upkeep. Malformed messages throw, so they end in the
 * poison queue where ops see them; a refresh that failed for Microsoft's reasons does not throw
 * (its retry is a message of its own), a storage outage does, so the queue tries again.
 */

async function identityOrSkip(context: InvocationContext): Promise<{ services: Services; identity: IdentityServices; log: Logger } | undefined> {
  const services = await getServices();
  const log = services.logFor(context);
  if (!services.identity) {
    log.info('no app registration is configured (ENTRA_CLIENT_ID); nothing to refresh');
    return undefined;
  }
  return { services, identity: services.identity, log };
}

export async function refreshTimerHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const ready = await identityOrSkip(context);
  if (!ready) return;
  const result = await ready.identity.enqueueDueRefreshes({ dueBefore: new Date().toISOString() });
  if (result.enqueued > 0 || result.more) ready.log.info('refresh: due connections enqueued', result);
}

export async function refreshScanHandler(message: unknown, context: InvocationContext): Promise<void> {
  const scan = parseQueueMessage('refresh-scan', refreshScanSchema, message);
  const ready = await identityOrSkip(context);
  if (!ready) return;
  ready.log.info('refresh: next page of due connections enqueued', await ready.identity.enqueueDueRefreshes(scan));
}

export async function refreshConnectionHandler(message: unknown, context: InvocationContext): Promise<void> {
  const refresh = parseQueueMessage('refresh-connection', refreshMessageSchema, message);
  const ready = await identityOrSkip(context);
  if (!ready) return;
  const result = await ready.identity.refreshConnection(refresh);
  ready.log.debug('refresh: done', { customerId: refresh.customerId, connectionId: refresh.connectionId, ...result });
}

export async function credentialCheckHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const ready = await identityOrSkip(context);
  if (!ready) return;
  const reports = await ready.identity.checkCredentialExpiry();
  ready.log.info('app credentials checked', { apps: reports.map((report) => `${report.appId}:${report.level}`).join(' ') });
}
