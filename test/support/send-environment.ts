import tls from 'node:tls';
import { expect, inject } from 'vitest';
import { generateApiKey } from '../../src/api/auth/api-keys.js';
import { changeConnectionState } from '../../src/connections/connections.js';
import { signInWithPassword } from '../../src/connect/password-sign-in.js';
import type { Connection, Transports } from '../../src/domain/connection.js';
import { DEFAULT_GOVERNOR_LIMITS, type GovernorLimits } from '../../src/domain/send-governor.js';
import { messageRequestSchema, type OutboundMessage } from '../../src/domain/outbound-message.js';
import { graphSender } from '../../src/mail/graph-sender.js';
import type { MailSender } from '../../src/mail/mail-transport.js';
import { smtpSender } from '../../src/mail/smtp-sender.js';
import { OutboxContent } from '../../src/sending/outbox-content.js';
import { sendMessage, type SendDeps, type SendOutcome } from '../../src/sending/send-message.js';
import { SendGovernor } from '../../src/sending/send-governor.js';
import { submitMessage, type SendJob } from '../../src/sending/submit-message.js';
import { listMailboxes } from '../../src/connections/mailboxes.js';
import { PayloadStore } from '../../src/store/payload-store.js';
import { keys } from '../../src/store/repositories.js';
import { UNCHANGED } from '../../src/store/table-repository.js';
import { CONTAINERS } from '../../src/store/storage-layout.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { RecordingMetrics } from '../../src/telemetry/metrics.js';
import type { MailServerForTests } from '../integration/mail-server.global-setup.js';
import { startConnectEnvironment, type ConnectEnvironment, type ConnectEnvironmentOptions, type Directory } from './connect-environment.js';
import { mailHostSettings } from './test-mail-server.js';
import { waitFor } from './wait.js';

/**
 * What the send tests share on top of the connect environment: connections that can send (a user
 * signed in with a password, or an app the tenant consented to), the vendor API with a key, and
 * the send use-case run directly with a movable clock and senders a test can break.
 */

export const PASSWORD = 'correct horse battery staple';
const quiet = createLogger({ level: 'error', sink: () => undefined });

export interface SendTestKit {
  /** The Authorization header of the kit's API key. */
  authorization: string;
  api(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string>; raw?: Buffer; contentType?: string }): Promise<{ status: number; body: unknown; headers: Headers }>;
  /** A delegated connection of a new user of the tenant, with a mailbox, signed in with a password. */
  delegated(customerId: string, tenantId: string, domain: string, transports: Transports): Promise<{ connection: Connection; upn: string }>;
  /** An application connection of the tenant (as after admin consent), serving these mailboxes. */
  application(customerId: string, tenantId: string, transports: Transports, mailboxes: string[]): Promise<Connection>;
  message(customerId: string, messageId: string): Promise<OutboundMessage>;
  /** Waits until the message is sent or failed. */
  settled(customerId: string, messageId: string, timeoutMs?: number): Promise<OutboundMessage>;
  /** The send use-case with these parts replaced; queue messages it makes are kept in `queued`. */
  direct(options?: { now?: () => Date; graph?: (real: MailSender) => MailSender; smtp?: (real: MailSender) => MailSender; limits?: Partial<GovernorLimits> }): {
    send(job: SendJob): Promise<SendOutcome>;
    queued: { job: SendJob; delaySeconds: number }[];
    metrics: RecordingMetrics;
  };
  /** Submits through the API's service without queueing, for tests that run the use-case themselves. */
  submitUnqueued(connection: Connection, request: Record<string, unknown>): Promise<OutboundMessage>;
}

export async function sendTestKit(env: ConnectEnvironment, users: { count: number } = { count: 0 }): Promise<SendTestKit> {
  const { key, record } = generateApiKey('*', 'send tests', new Date());
  await env.services.repositories.apiKeys.create(keys.apiKey(record.prefix), record);
  const repositories = env.services.repositories;
  const content = new OutboxContent(new PayloadStore(env.services.storage.blobService, CONTAINERS.outbox), new PayloadStore(env.services.storage.blobService, CONTAINERS.uploads));

  const kit: SendTestKit = {
    authorization: `Bearer ${key}`,
    async api(path, init = {}) {
      const response = await fetch(`${env.baseUrl}/api/${path}`, {
        method: init.method ?? (init.body !== undefined || init.raw !== undefined ? 'POST' : 'GET'),
        headers: {
          authorization: `Bearer ${key}`,
          ...(init.body !== undefined && { 'content-type': 'application/json' }),
          ...(init.raw !== undefined && { 'content-type': init.contentType ?? 'application/octet-stream' }),
          ...init.headers,
        },
        ...(init.body !== undefined && { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
        ...(init.raw !== undefined && { body: init.raw }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? (JSON.parse(text) as unknown) : undefined, headers: response.headers };
    },

    async delegated(customerId, tenantId, domain, transports) {
      users.count += 1;
      const upn = `sender${String(users.count)}-${String(process.pid)}@${domain}`;
      await env.sandbox.control.createUser(tenantId, { userPrincipalName: upn, displayName: `Sender ${String(users.count)}`, password: PASSWORD });
      const created = await env.createConnection({ customerId, mode: 'delegated', transports });
      const report = await signInWithPassword(
        { flow: env.identity.connect, msal: env.identity.msal, links: env.identity.links, logger: quiet, allowRopc: true },
        created,
        { username: upn, password: () => Promise.resolve(PASSWORD) },
      );
      expect(report).toMatchObject({ kind: 'connected' });
      return { connection: await env.connection(created), upn };
    },

    async application(customerId, tenantId, transports, mailboxes) {
      const created = await env.createConnection({ customerId, mode: 'application', transports, mailboxes });
      await changeConnectionState(env.services.api.connections, customerId, created.id, 'connected', undefined);
      const updated = await repositories.connections.update(keys.connection(customerId, created.id), (current) => (current ? { ...current, tenantId } : UNCHANGED));
      if (!updated) throw new Error('the connection vanished');
      return updated.value;
    },

    async message(customerId, messageId) {
      const found = await repositories.outbox.get(keys.outboundMessage(customerId, messageId));
      if (!found) throw new Error(`no message ${messageId}`);
      return found.value;
    },

    async settled(customerId, messageId, timeoutMs = 30_000) {
      return waitFor(async () => {
        const message = await kit.message(customerId, messageId);
        return (message.status === 'sent' || message.status === 'failed') && message;
      }, timeoutMs);
    },

    direct(options = {}) {
      const queued: { job: SendJob; delaySeconds: number }[] = [];
      const metrics = new RecordingMetrics();
      const now = options.now ?? (() => new Date());
      const cloud = env.identity.msal.app('default').cloud;
      const realGraph = graphSender({ graphUrl: cloud.graphUrl });
      const realSmtp = smtpSender({ smtp: cloud.smtp, imap: cloud.imap, idleMs: 1_000 });
      const senders = { graph: options.graph ? options.graph(realGraph) : realGraph, smtp: options.smtp ? options.smtp(realSmtp) : realSmtp };
      const deps: SendDeps = {
        outbox: repositories.outbox,
        connections: repositories.connections,
        mailboxes: repositories.mailboxes,
        content,
        tokens: env.identity.accessTokens,
        senders: () => senders,
        governor: new SendGovernor({ state: repositories.sendGovernor, limits: { ...DEFAULT_GOVERNOR_LIMITS, perMinute: 1000, ...options.limits }, now }),
        async enqueue(job, delaySeconds) {
          queued.push({ job, delaySeconds });
          await Promise.resolve();
        },
        recordEvent: (event) => env.services.recordEvent(event),
        logger: quiet,
        metrics,
        now,
      };
      return { send: (job) => sendMessage(deps, job), queued, metrics };
    },

    async submitUnqueued(connection, request) {
      const { message } = await submitMessage(
        {
          outbox: repositories.outbox,
          idempotencyKeys: repositories.idempotencyKeys,
          mailboxes: (c) => listMailboxes({ mailboxes: repositories.mailboxes }, c),
          content,
          enqueue: () => Promise.resolve(),
          now: () => new Date(),
        },
        connection,
        messageRequestSchema.parse(request),
      );
      return message;
    },
  };
  return kit;
}

export interface MailServerEnvironment {
  env: ConnectEnvironment;
  kit: SendTestKit;
  /** A sandbox tenant whose tokens the test mail server trusts, with the connector's app consented. */
  directory: Directory;
  stop(): Promise<void>;
}

/**
 * The connect environment against the test Dovecot and Postfix: the sandbox signs with the key
 * the mail server trusts, the connector's mail hosts are the test server's and this process
 * trusts its CA (until `stop`), and the directory is the server's first tenant.
 */
export async function startMailServerEnvironment(
  mailServer: MailServerForTests,
  options: { directoryName: string; sandbox?: ConnectEnvironmentOptions['sandbox'] },
): Promise<MailServerEnvironment> {
  const defaultCas = tls.getCACertificates('default');
  const env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    signingKey: mailServer.sandboxSigningKey,
    env: { ALLOW_ROPC: 'true', ...mailHostSettings() },
    ...(options.sandbox && { sandbox: options.sandbox }),
  });
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), mailServer.caPem]);
  const kit = await sendTestKit(env);
  const directory = await env.createDirectory(options.directoryName, mailServer.tenants[0]);
  await env.sandbox.control.grantConsent(directory.tenant.id, { clientId: env.clientId });
  return {
    env,
    kit,
    directory,
    async stop() {
      await env.stop();
      tls.setDefaultCACertificates(defaultCas);
    },
  };
}
