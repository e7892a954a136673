import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import { deliverEventHandler } from '../src/events/deliver-event-handler.js';
import { QUEUES } from '../src/store/storage-layout.js';

app.storageQueue('deliver-event', {
  queueName: QUEUES.deliverEvent,
  connection: 'AzureWebJobsStorage',
  handler: deliverEventHandler,
});
