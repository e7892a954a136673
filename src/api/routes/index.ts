import { EVENT_TYPES, webhookPayloadSchema } from '../../domain/events.js';
import { messageReceivedDataSchema } from '../../domain/inbound-message.js';
import { buildOpenApiDocument, type OpenApiDocument } from '../openapi.js';
import { defineRoute, type ApiRoute } from '../route.js';
import type { ApiServices } from '../services.js';
import { connectionRoutes } from './connections.js';
import { customerRoutes } from './customers.js';
import { eventRoutes } from './events.js';
import { healthRoute } from './health.js';
import { messageRoutes } from './messages.js';

const EVENT_SUMMARIES: Record<(typeof EVENT_TYPES)[number], string> = {
  'connection.created': 'A connection was created (data.connection).',
  'connection.state_changed': 'A connection changed state (data.from, data.to, data.reason).',
  'connection.reconnected': 'A connected connection was connected again through a reconnect link (data.tenantId, data.account).',
  'app.misconfigured':
    'Microsoft refuses one of your app registrations\' credentials, so every connection of the app is failing (data.appId, data.code, data.explanation, data.nextStep). Sent once per app, to endpoints of every customer ("*").',
  'app.recovered': 'An app registration works again (data.appId).',
  'app.credential_expiring':
    'An app registration\'s secret or certificate expires soon: from 30 days before, again from 7 days, and once expired (data.appId, data.level, data.expiresAt, data.daysLeft).',
  'message.sent':
    'Microsoft accepted a message (data.messageId, data.internetMessageId, data.mailbox, data.attempts). Accepted is not delivered: a bounce comes to the mailbox later.',
  'message.deferred':
    'An attempt to send did not succeed and the message will be tried again (data.reason: class, code, message, nextStep; data.nextAttemptAt).',
  'message.failed': 'A message will not be sent (data.reason: class, code, message, nextStep).',
  'message.received':
    'A message arrived in a watched mailbox (data: messageId, mailbox, from, to, cc, subject, date, size, internetMessageId, inReplyTo, references, preview, attachments, raw.url). Sent once per message, whichever way it was found.',
};

const messageReceivedPayloadSchema = webhookPayloadSchema.extend({ data: messageReceivedDataSchema }).meta({ id: 'MessageReceivedWebhookPayload' });

/** The contract version of the v1 API, as the OpenAPI document states it. */
export const API_VERSION = '1.0.0';

let document: OpenApiDocument | undefined;

const openApiRoute: ApiRoute<ApiServices> = defineRoute<ApiServices>()({
  name: 'openapi',
  method: 'GET',
  path: 'openapi.json',
  tag: 'Operations',
  summary: 'This API\'s OpenAPI 3.1 document',
  authenticated: false,
  responses: [{ status: 200, description: 'The OpenAPI document.' }],
  handle() {
    document ??= buildOpenApiDocument(
      apiRoutes,
      EVENT_TYPES.map((type) => ({ name: type, summary: EVENT_SUMMARIES[type], schema: type === 'message.received' ? messageReceivedPayloadSchema : webhookPayloadSchema })),
      API_VERSION,
    );
    return Promise.resolve({ status: 200, body: document });
  },
});

/** Every HTTP operation of the connector, each registered as one function. */
export const apiRoutes: readonly ApiRoute<ApiServices>[] = [healthRoute, openApiRoute, ...customerRoutes, ...connectionRoutes, ...messageRoutes, ...eventRoutes];
