import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import { startConnector } from '../src/startup.js';
import { redactInvocationLogs } from '../src/telemetry/logger.js';

// Configuration is validated when the app starts, so a bad setting stops the app with one
// message naming every problem instead of failing requests one by one.
app.hook.appStart(startConnector);

// Every line a function writes through its invocation context is redacted, whoever writes it.
app.hook.preInvocation((context) => {
  redactInvocationLogs(context.invocationContext);
});
