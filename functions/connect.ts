import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import {
  adminConsentCallbackHandler,
  checkAgainHandler,
  landingHandler,
  problemHandler,
  resultHandler,
  signInCallbackHandler,
  startHandler,
} from '../src/connect/connect-http.js';
import { connectRuntime } from '../src/connect/runtime.js';
import { sweepExpiredHandler } from '../src/connect/sweep-expired.js';

// The pages a customer's user or admin opens, and the redirect URIs registered on the app
// (…/connect/callback and …/connect/admin-callback). Anonymous: the links and states carry the proof.
app.http('connect-landing', { route: 'connect/{link}', methods: ['GET'], authLevel: 'anonymous', handler: landingHandler(connectRuntime) });
app.http('connect-start', { route: 'connect/{link}/start', methods: ['POST'], authLevel: 'anonymous', handler: startHandler(connectRuntime) });
app.http('connect-callback', { route: 'connect/callback', methods: ['POST'], authLevel: 'anonymous', handler: signInCallbackHandler(connectRuntime) });
app.http('connect-admin-callback', { route: 'connect/admin-callback', methods: ['GET'], authLevel: 'anonymous', handler: adminConsentCallbackHandler(connectRuntime) });
app.http('connect-result', { route: 'connect/result/{id}', methods: ['GET'], authLevel: 'anonymous', handler: resultHandler(connectRuntime) });
// "Check again" on the Exchange set-up page: the result id is the proof, as for the page itself.
app.http('connect-result-check', { route: 'connect/result/{id}/check', methods: ['POST'], authLevel: 'anonymous', handler: checkAgainHandler(connectRuntime) });
app.http('connect-problem', { route: 'connect/problem/{reason}', methods: ['GET'], authLevel: 'anonymous', handler: problemHandler(connectRuntime) });

// Expired sign-in states and result pages, removed hourly (UTC), at an odd minute to stay clear of other timers.
app.timer('connect-sweep', { schedule: '0 17 * * * *', handler: sweepExpiredHandler });
