import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import { deliverEventHandler } from '../src/events/deliver-event-handler.js';
import { deliverySweepHandler, deliverySweepTimerHandler } from '../src/events/delivery-sweep-handler.js';
import { QUEUES } from '../src/store/storage-layout.js';

app.storageQueue('deliver-event', {
  queueName: QUEUES.deliverEvent,
  connection: 'AzureWebJobsStorage',
  handler: deliverEventHandler,
});

// Every 5 minutes (UTC), at second 30 of minutes 2, 7, 12, … to stay clear of other timers: enqueue a
// sweep per customer for webhook deliveries left without a queue message (a crash before it was sent).
app.timer('delivery-sweep-timer', { schedule: '30 2-59/5 * * * *', handler: deliverySweepTimerHandler });
app.storageQueue('delivery-sweep', { queueName: QUEUES.deliverySweep, connection: 'AzureWebJobsStorage', handler: deliverySweepHandler });
