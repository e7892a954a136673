import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { getServices } from '../composition.js';

/** GET /api/health: 200 when every dependency answers, 503 with the failing ones otherwise. */
export async function healthHandler(_request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const services = await getServices();
  const report = await services.checkHealth();
  if (report.status !== 'healthy') {
    services.logFor(context).warn('health check failed', { checks: report.checks });
  }
  return {
    status: report.status === 'healthy' ? 200 : 503,
    jsonBody: report,
    headers: { 'cache-control': 'no-store' },
  };
}
