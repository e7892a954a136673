import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import { credentialCheckHandler, refreshConnectionHandler, refreshScanHandler, refreshTimerHandler } from '../src/connection-health/handlers.js';
import { QUEUES } from '../src/store/storage-layout.js';

// Every 15 minutes (UTC), at minutes 4, 19, 34 and 49 to stay clear of other timers: enqueue the connections due for a token refresh.
app.timer('refresh-timer', { schedule: '0 4-59/15 * * * *', handler: refreshTimerHandler });
app.storageQueue('refresh-scan', { queueName: QUEUES.refreshScan, connection: 'AzureWebJobsStorage', handler: refreshScanHandler });
app.storageQueue('refresh-connection', { queueName: QUEUES.refreshConnection, connection: 'AzureWebJobsStorage', handler: refreshConnectionHandler });

// Daily at 06:40 UTC, in working hours for Europe and before them for the Americas: how long each app registration's secret or certificate has left.
app.timer('credential-check', { schedule: '0 40 6 * * *', handler: credentialCheckHandler });
