import { app } from '@azure/functions';
import { healthHandler } from '../src/health/health-http.js';

app.http('health', {
  route: 'health',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: healthHandler,
});
