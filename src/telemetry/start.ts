import { app } from '@azure/functions';
import { startTelemetry } from './azure-monitor.js';

// Imported first by every entry file in functions/, so telemetry is running before any function
// is registered and before the modules it instruments are loaded.
await startTelemetry(app);
