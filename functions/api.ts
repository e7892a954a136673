import '../src/telemetry/start.js';
import { app } from '@azure/functions';
import { apiHttpHandler } from '../src/api/http-adapter.js';
import { apiRoutes } from '../src/api/routes/index.js';
import { apiRuntime } from '../src/api/runtime.js';

// One function per API operation (named in apiRoutes), so each has its own metrics and logs.
for (const route of apiRoutes) {
  app.http(route.name, {
    route: route.path,
    methods: [route.method],
    // The API checks API keys and signed tokens itself; function keys would only add a second secret.
    authLevel: 'anonymous',
    handler: apiHttpHandler(route, apiRuntime),
  });
}
