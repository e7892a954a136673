import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import {
  graphNotificationHandler,
  graphNotificationsHttp,
  inboxRetentionHandler,
  pollMailboxHandler,
  pollScanHandler,
  pollTimerHandler,
} from '../src/receiving/handlers.js';
import { QUEUES } from '../src/store/storage-layout.js';

// Every minute (UTC), at second 0: enqueue the mailboxes due for a look before the next minute.
app.timer('poll-timer', { schedule: '0 * * * * *', handler: pollTimerHandler });
app.storageQueue('poll-scan', { queueName: QUEUES.pollScan, connection: 'AzureWebJobsStorage', handler: pollScanHandler });
app.storageQueue('poll-mailbox', { queueName: QUEUES.pollMailbox, connection: 'AzureWebJobsStorage', handler: pollMailboxHandler });

// Where Graph posts change and lifecycle notifications. Anonymous: Graph sends no credentials;
// each notification's clientState is checked before anything is done for it.
app.http('graph-notifications', { route: 'graph/notifications', methods: ['POST'], authLevel: 'anonymous', handler: graphNotificationsHttp('change') });
app.http('graph-lifecycle', { route: 'graph/lifecycle', methods: ['POST'], authLevel: 'anonymous', handler: graphNotificationsHttp('lifecycle') });
app.storageQueue('graph-notification', { queueName: QUEUES.graphNotification, connection: 'AzureWebJobsStorage', handler: graphNotificationHandler });

// Daily at 03:20 UTC, a quiet hour: received messages past RECEIVE_RETENTION are deleted (their rows stay, for dedupe).
app.timer('inbox-retention', { schedule: '0 20 3 * * *', handler: inboxRetentionHandler });
