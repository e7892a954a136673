import { afterAll, it } from 'vitest';
import { createLogger } from '../src/telemetry/logger.js';
import { compare, report } from './harness.js';

/**
 * What redaction costs per log record, against the same record serialized without it. Every
 * record the connector writes pays this, so the ratio should stay small.
 */

const fields = {
  customerId: 'acme',
  connectionId: 'c-0b1e4d1c',
  mailboxId: 'support@acme.example',
  attempt: 2,
  durationMs: 184,
  response: { status: 202, headers: { 'content-type': 'application/json', 'request-id': '5f0c8a2e-1d3b-4c6a' } },
};
const message = 'message handed to Microsoft Graph sendMail';
let written = 0;
const logger = createLogger({ level: 'info', sink: (record) => { written += JSON.stringify(record).length; } });

// Vitest only runs the measurement here: a benchmark reports ratios and asserts nothing about time.
it('measures one structured log record, redaction included, against plain serialization', async () => {
  await compare(
    'log record',
    {
      label: 'JSON.stringify of the record',
      run: () => { written += JSON.stringify({ timestamp: new Date().toISOString(), level: 'info', message, ...fields }).length; },
    },
    { label: 'connector logger', run: () => { logger.info(message, fields); } },
  );
});

afterAll(async () => {
  await report('logging');
  // Keeps the serialized output observable, so the work above cannot be optimized away.
  if (written < 0) console.log(written);
});
