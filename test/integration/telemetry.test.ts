import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Connection } from '../../src/domain/connection.js';
import { newId } from '../../src/domain/ids.js';
import type { Mailbox } from '../../src/domain/mailbox.js';
import type { OutboundMessage } from '../../src/domain/outbound-message.js';
import { keys } from '../../src/store/repositories.js';
import { UNCHANGED } from '../../src/store/table-repository.js';
import { QUEUES } from '../../src/store/storage-layout.js';
import { allowedDimensions, METRIC_CATALOG, type MetricName } from '../../src/telemetry/metric-catalog.js';
import { captureTelemetry, type CapturedTelemetry, type MetricPoint } from '../support/captured-telemetry.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { mailboxOf } from '../support/receive-environment.js';
import { sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { waitFor } from '../support/wait.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * What ops get in Application Insights, captured where the Azure Monitor exporter would take it:
 * OpenTelemetry's global providers with in-memory exporters, the real function app in the local
 * host. One customer's mail goes through every path (a send through the API and the send-mail
 * queue, a look at the mailbox through the poll-mailbox queue, a token refresh through the
 * refresh-connection queue, a webhook delivery through the deliver-event queue); the test then
 * checks the metrics' names and dimensions against the catalog, that the work's spans and log
 * records sit in the invocation's trace, and that no credential left the process.
 */

let telemetry: CapturedTelemetry;
let env: ConnectEnvironment;
let kit: SendTestKit;
let contoso: Directory;
let receiver: WebhookReceiver;
let connection: Connection;
let mailbox: Mailbox;
let sent: OutboundMessage;
let webhookSecret: string;
const CUSTOMER = 'telemetry-customer';

beforeAll(async () => {
  telemetry = captureTelemetry();
  env = await startConnectEnvironment({ storageConnectionString: inject('storageConnectionString'), env: { ALLOW_PRIVATE_NETWORK_URLS: 'true', LOG_LEVEL: 'info' } });
  kit = await sendTestKit(env);

  // The endpoint first: the connector reads its endpoints once per 30 s.
  const endpointId = newId('whk');
  webhookSecret = await env.services.webhookSecrets.createEndpointSecret(endpointId);
  receiver = await startWebhookReceiver({ secrets: [webhookSecret] });
  await env.services.repositories.webhookEndpoints.create(keys.webhookEndpoint(endpointId), {
    id: endpointId,
    url: receiver.url,
    customerScope: CUSTOMER,
    eventTypes: ['message.sent', 'message.received'],
    enabled: true,
    createdAt: new Date().toISOString(),
  });

  contoso = await env.createDirectory('Contoso Telemetry');
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
  const address = `desk@${contoso.domain}`;
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: address, displayName: 'Service Desk' });
  await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: `adele@${contoso.domain}`, displayName: 'Adele Vance' });
  connection = await kit.application(CUSTOMER, contoso.tenant.id, { send: 'graph', receive: 'graph' }, [address]);
  mailbox = await mailboxOf(env, connection, address);

  // A send, through the API and the send-mail queue.
  const response = await kit.api(`v1/customers/${CUSTOMER}/connections/${connection.id}/messages`, {
    body: { to: [{ address: `adele@${contoso.domain}` }], subject: 'Telemetry', text: 'Hello' },
  });
  expect(response.status).toBe(202);
  sent = await kit.settled(CUSTOMER, (response.body as OutboundMessage).id);
  expect(sent.status).toBe('sent');

  // A look at the mailbox with a new message in it, through the poll-mailbox queue.
  const internetMessageId = `<${randomUUID()}@customer.example>`;
  await env.sandbox.control.injectMessage({ address, from: 'customer@fabrikam.example', subject: 'Help', text: 'Please', internetMessageId });
  await env.services.queues.publish(QUEUES.pollMailbox, { customerId: CUSTOMER, connectionId: connection.id, mailboxId: mailbox.id, reason: 'manual' });
  await waitFor(async () => {
    const events = await env.services.repositories.events.all(CUSTOMER);
    return events.some((event) => event.type === 'message.received' && event.data.internetMessageId === internetMessageId);
  }, 30_000);

  // A token refresh, through the refresh-connection queue: the connection's refresh made due now.
  await env.identity.health.ensure(connection);
  await env.services.repositories.connectionHealth.update(keys.connectionHealth(CUSTOMER, connection.id), (current) =>
    current ? { ...current, dueAt: new Date(Date.now() - 60_000).toISOString() } : UNCHANGED,
  );
  await env.services.queues.publish(QUEUES.refreshConnection, { customerId: CUSTOMER, connectionId: connection.id });

  // Both events reach the webhook endpoint through the deliver-event queue.
  await waitFor(() => receiver.requests.length >= 2, 30_000);
  await waitFor(async () => (await telemetry.metricPoints()).some((point) => point.name === 'refresh.attempts'), 30_000);
}, 120_000);

afterAll(async () => {
  await receiver.close();
  await env.stop();
  await telemetry.stop();
});

const pointsOf = (points: MetricPoint[], name: MetricName) => points.filter((point) => point.name === name);

describe('telemetry (OpenTelemetry, as exported to Application Insights)', () => {
  it('every metric is in the catalog, with its unit and only the dimensions the catalog allows', async () => {
    const points = await telemetry.metricPoints();
    expect(points.length).toBeGreaterThan(0);
    for (const point of points) {
      expect(Object.keys(METRIC_CATALOG), point.name).toContain(point.name);
      const name = point.name as MetricName;
      expect(point.unit, name).toBe(METRIC_CATALOG[name].unit);
      const allowed = allowedDimensions(name);
      for (const key of Object.keys(point.attributes)) expect(allowed.has(key), `${name} carries ${key}`).toBe(true);
    }
  });

  it('sends, looks, refreshes and deliveries are counted with the customer, connection, mailbox and tenant', async () => {
    const points = await telemetry.metricPoints();
    const who = { customerId: CUSTOMER, connectionId: connection.id, tenantId: contoso.tenant.id };
    expect(pointsOf(points, 'send.attempts')).toContainEqual(
      expect.objectContaining({ value: 1, attributes: { ...who, mailboxId: mailbox.id, transport: 'graph', outcome: 'sent' } }),
    );
    expect(pointsOf(points, 'send.duration')).toContainEqual(expect.objectContaining({ count: 1, attributes: { ...who, mailboxId: mailbox.id, transport: 'graph', outcome: 'sent' } }));
    expect(pointsOf(points, 'receive.polls')).toContainEqual(
      expect.objectContaining({ attributes: { ...who, mailboxId: mailbox.id, transport: 'graph', outcome: 'ok', reason: 'manual' } }),
    );
    expect(pointsOf(points, 'receive.messages')).toContainEqual(expect.objectContaining({ value: 1, attributes: { ...who, mailboxId: mailbox.id, transport: 'graph' } }));
    expect(pointsOf(points, 'receive.poll_duration').length).toBeGreaterThan(0);
    expect(pointsOf(points, 'refresh.attempts')).toContainEqual(expect.objectContaining({ value: 1, attributes: { ...who, mode: 'application', outcome: 'success' } }));
    expect(pointsOf(points, 'token.requests').some((point) => point.attributes.source === 'microsoft' && point.attributes.connectionId === connection.id)).toBe(true);
    const deliveries = pointsOf(points, 'webhook.deliveries').filter((point) => point.attributes.customerId === CUSTOMER);
    expect(deliveries.reduce((sum, point) => sum + point.value, 0)).toBeGreaterThanOrEqual(2);
    expect(deliveries.every((point) => point.attributes.outcome === 'delivered' && point.attributes.status === 204 && point.attributes.connectionId === connection.id)).toBe(true);
    expect(pointsOf(points, 'webhook.delivery_duration').length).toBeGreaterThan(0);
    // The state change to connected was counted when the test connected it.
    expect(pointsOf(points, 'connection.state_transitions')).toContainEqual(expect.objectContaining({ attributes: expect.objectContaining({ connectionId: connection.id, to: 'connected' }) as unknown }));
  });

  it('each unit of work is a span in the trace of the invocation that ran it, and its log records carry that trace', () => {
    const spans = telemetry.spans();
    const send = spans.find((span) => span.name === 'send message' && span.attributes.messageId === sent.id);
    expect(send).toBeDefined();
    expect(send?.attributes).toMatchObject({ customerId: CUSTOMER, outcome: 'sent' });
    // Its parent is the Functions host's invocation (remote to the worker), as in Azure.
    expect(send?.parentSpanContext?.isRemote).toBe(true);
    const traceId = send?.spanContext().traceId;
    const invocationLines = telemetry.logRecords().filter((record) => record.body === 'send: attempt done' && record.attributes.messageId === sent.id);
    expect(invocationLines).toHaveLength(1);
    expect(invocationLines[0]?.attributes).toMatchObject({ functionName: 'send-mail', customerId: CUSTOMER });
    expect(invocationLines[0]?.spanContext?.traceId).toBe(traceId);

    for (const name of ['look at mailbox', 'refresh connection', 'deliver webhook']) {
      const span = spans.find((candidate) => candidate.name === name && candidate.attributes.customerId === CUSTOMER);
      expect(span, name).toBeDefined();
      expect(span?.parentSpanContext?.isRemote, name).toBe(true);
      expect(span?.attributes.outcome, name).toBeDefined();
    }
    // Each invocation has a trace of its own.
    const traces = new Set(spans.filter((span) => span.attributes.customerId === CUSTOMER).map((span) => span.spanContext().traceId));
    expect(traces.size).toBeGreaterThanOrEqual(4);
  });

  it('log records are structured: the message as the body, the fields as attributes, with a severity', () => {
    const records = telemetry.logRecords();
    const refreshed = records.find((record) => record.body === 'tokens refreshed' && record.attributes.connectionId === connection.id);
    expect(refreshed).toMatchObject({ severityText: 'INFO', attributes: { customerId: CUSTOMER } });
    expect(typeof refreshed?.attributes.expiresOn).toBe('string');
  });

  it('no credential leaves the process: no token, client secret, API key, webhook secret or XOAUTH2 string', async () => {
    const clientSecret = (await env.services.secrets.get('entra-client-secret'))?.value;
    expect(clientSecret).toBeTruthy();
    const tokenCache = await env.tokenCache(connection.id);
    const exported = JSON.stringify({
      metrics: await telemetry.metricPoints(),
      logs: telemetry.logRecords().map((record) => ({ body: record.body, attributes: record.attributes })),
      spans: telemetry.spans().map((span) => ({ name: span.name, attributes: span.attributes, events: span.events, status: span.status })),
    });
    expect(exported.length).toBeGreaterThan(1000);
    const apiKeySecret = kit.authorization.replace(/^Bearer m365c_[a-z0-9]{12}_/, '');
    for (const secret of [clientSecret, apiKeySecret, webhookSecret, webhookSecret.replace(/^whsec_/, '')]) {
      expect(exported.includes(secret ?? '')).toBe(false);
    }
    if (tokenCache) expect(exported.includes(tokenCache.slice(0, 40))).toBe(false);
    expect(exported).not.toMatch(/eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\./);
    expect(exported).not.toMatch(/Bearer\s+[A-Za-z0-9\-._~+/]{16,}/);
    expect(exported).not.toMatch(/user=[^\s"]*\\u0001auth=/);
  });
});
