import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import { sendMailHandler } from '../src/sending/handlers.js';
import { QUEUES } from '../src/store/storage-layout.js';

app.storageQueue('send-mail', { queueName: QUEUES.sendMail, connection: 'AzureWebJobsStorage', handler: sendMailHandler });
