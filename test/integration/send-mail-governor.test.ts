import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { messageRequestSchema } from '../../src/domain/outbound-message.js';
import { startConnectEnvironment, type ConnectEnvironment } from '../support/connect-environment.js';
import { sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { waitFor } from '../support/wait.js';

/**
 * The governor against the sandbox's enforcement of Microsoft's per-mailbox limits: 200 messages
 * queued at once from one mailbox go out through the local host's queue trigger, as fast as the
 * message rate allows and no faster. The rate is 100 a minute here (30 in Exchange Online) so the
 * test takes one minute, not six; the rule is the same.
 */

const RATE = 100;
const MESSAGES = 200;
let env: ConnectEnvironment;
let kit: SendTestKit;

beforeAll(async () => {
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    env: { SEND_RATE_PER_MINUTE: String(RATE), SEND_CONCURRENCY: '4' },
  });
  kit = await sendTestKit(env);
  await env.sandbox.control.setMailboxLimits({ sendsPerMinute: RATE, concurrent: 4 });
}, 60_000);

afterAll(async () => {
  await env.stop();
});

describe('the send governor', () => {
  it(`${String(MESSAGES)} messages to one mailbox: none fails, none over the rate`, async () => {
    const directory = await env.createDirectory('Contoso Bulk');
    await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
    const sender = directory.user.userPrincipalName;
    const recipient = directory.admin.userPrincipalName;
    const connection = await kit.application('bulk', directory.tenant.id, { send: 'graph', receive: 'graph' }, [sender]);
    const request = (n: number) => messageRequestSchema.parse({ to: [recipient], subject: `Bulk ${String(n)}`, text: `message ${String(n)}` });
    const ids: string[] = [];
    for (let n = 0; n < MESSAGES; n++) ids.push((await env.services.api.sending.submit(connection, request(n), undefined)).message.id);

    const settled = await waitFor(
      async () => {
        const rows = (await env.services.repositories.outbox.all('bulk')).filter((m) => ids.includes(m.id));
        return rows.every((m) => m.status === 'sent' || m.status === 'failed') && rows;
      },
      180_000,
    );
    expect(settled.filter((m) => m.status === 'failed')).toEqual([]);
    expect(settled).toHaveLength(MESSAGES);

    const stats = await env.sandbox.control.graphStats();
    const mailbox = stats.mailboxes.find((m) => m.address.toLowerCase() === sender.toLowerCase());
    expect(mailbox?.sends).toBe(MESSAGES);
    // The governor kept the rate: Microsoft never had to refuse a send for it.
    expect(mailbox?.throttled.sendRate).toBe(0);

    // When Microsoft took each message (its Sent Items copy), oldest first.
    const times = (await env.sandbox.control.messages(sender, 'sentitems')).map((m) => Date.parse(m.sentDateTime ?? '')).sort((a, b) => a - b);
    expect(times).toHaveLength(MESSAGES);
    for (let i = RATE; i < times.length; i++) expect((times[i] ?? 0) - (times[i - RATE] ?? 0)).toBeGreaterThanOrEqual(60_000);
    // How close to the rate it gets depends on the machine's load: a throughput figure, measured in bench/, not asserted here.
  }, 240_000);
});
