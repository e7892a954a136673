import { app } from '@azure/functions';
import { startConnector } from '../src/startup.js';

// Configuration is validated when the app starts, so a bad setting stops the app with one
// message naming every problem instead of failing requests one by one.
app.hook.appStart(startConnector);
