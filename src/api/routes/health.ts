import { z } from 'zod';
import { defineRoute } from '../route.js';
import type { ApiServices } from '../services.js';

const check = z.object({ status: z.enum(['ok', 'failed']), durationMs: z.int(), reason: z.string().optional() });
const healthReport = z
  .object({
    status: z.enum(['healthy', 'unhealthy']),
    checkedAt: z.iso.datetime(),
    checks: z.object({ tableStorage: check, queueStorage: check, blobStorage: check, secretStore: check }),
  })
  .meta({ id: 'HealthReport' });

export const healthRoute = defineRoute<ApiServices>()({
  name: 'health',
  method: 'GET',
  path: 'health',
  tag: 'Operations',
  summary: 'Whether storage and the secret store answer',
  description: 'Anonymous, for probes. One check runs at a time and its report is reused for 10 s. Failures name the kind and status code only.',
  authenticated: false,
  responses: [
    { status: 200, description: 'Every dependency answers.', schema: healthReport },
    { status: 503, description: 'At least one dependency does not answer.', schema: healthReport },
  ],
  async handle({ services }) {
    const report = await services.checkHealth();
    return { status: report.status === 'healthy' ? 200 : 503, body: report, headers: { 'cache-control': 'no-store' } };
  },
});
