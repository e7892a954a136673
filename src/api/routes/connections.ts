import { z } from 'zod';
import { changeConnectionState, createConnection, updateConnectionTags } from '../../connections/connections.js';
import { CONNECTION_MODES, CONNECTION_STATES, connectionView, connectionViewSchema } from '../../domain/connection.js';
import { customerIdSchema } from '../../domain/customer.js';
import { ID_PATTERN } from '../../domain/ids.js';
import { mailboxSchema } from '../../domain/mailbox.js';
import { tagsPatchSchema, tagsSchema } from '../../domain/tags.js';
import { keys } from '../../store/repositories.js';
import { decodeCursor, encodeCursor, pageQuery, pageSchema } from '../paging.js';
import { invalidTags, notFound } from '../problem.js';
import { optional } from '../../optional.js';
import { problems } from '../responses.js';
import { defineRoute } from '../route.js';
import { consentLinkSchema, type ApiServices } from '../services.js';

const route = defineRoute<ApiServices>();
const connectionParams = z.object({ customerId: customerIdSchema, connectionId: z.string().regex(ID_PATTERN.con) });
const mailboxView = mailboxSchema.meta({ id: 'Mailbox' });

export const connectionRoutes = [
  route({
    name: 'connections-create',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections',
    tag: 'Connections',
    summary: 'Create a connection, in state pending',
    description:
      'The connection starts "pending"; it becomes "connected" when the customer\'s user or admin completes the consent link ' +
      '(the connect flow). Context claims of a signed token become tags; tags in the body win over them.',
    authenticated: true,
    params: z.object({ customerId: customerIdSchema }),
    body: z
      .object({
        mode: z.enum(CONNECTION_MODES),
        displayName: z.string().max(256).optional(),
        tags: tagsSchema.optional(),
      })
      .strict(),
    responses: [
      {
        status: 201,
        description: 'The new connection, with its consent link once the connect flow is configured.',
        schema: connectionViewSchema.extend({ consent: consentLinkSchema.optional() }).meta({ id: 'NewConnection' }),
        headers: { location: 'The connection\'s URL.' },
      },
      ...problems(400, 401, 404),
    ],
    async handle({ params, body, principal, services }) {
      if (!(await services.repositories.customers.get(keys.customer(params.customerId)))) throw notFound('The customer');
      const tags = tagsSchema.safeParse({ ...principal?.contextTags, ...body.tags });
      if (!tags.success) throw invalidTags('The tags, with the context claims of your token added, are not valid; see "errors".', tags.error.issues);
      const connection = await createConnection(services.connections, {
        customerId: params.customerId,
        mode: body.mode,
        tags: tags.data,
        ...optional('displayName', body.displayName),
      });
      const consent = await services.consentLinks?.issue(connection);
      return {
        status: 201,
        body: { ...connectionView(connection), ...optional('consent', consent) },
        headers: { location: `/api/v1/customers/${params.customerId}/connections/${connection.id}` },
      };
    },
  }),
  route({
    name: 'connections-list',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections',
    tag: 'Connections',
    summary: 'List a customer\'s connections, oldest first',
    authenticated: true,
    params: z.object({ customerId: customerIdSchema }),
    query: z.object({ ...pageQuery, state: z.enum(CONNECTION_STATES).optional().meta({ description: 'Only connections in this state.' }) }),
    responses: [
      { status: 200, description: 'A page of connections.', schema: pageSchema(connectionViewSchema, 'ConnectionPage') },
      ...problems(400, 401, 404),
    ],
    async handle({ params, query, services }) {
      if (!(await services.repositories.customers.get(keys.customer(params.customerId)))) throw notFound('The customer');
      const page = await services.repositories.connections.page(params.customerId, {
        pageSize: query.limit,
        ...optional('continuationToken', decodeCursor('connections', query.cursor)),
      });
      const items = page.items.map((i) => connectionView(i.value)).filter((c) => query.state === undefined || c.state === query.state);
      return { status: 200, body: { items, ...optional('nextCursor', encodeCursor('connections', page.continuationToken)) } };
    },
  }),
  route({
    name: 'connections-get',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}',
    tag: 'Connections',
    summary: 'Get a connection',
    authenticated: true,
    params: connectionParams,
    responses: [{ status: 200, description: 'The connection.', schema: connectionViewSchema }, ...problems(401, 404)],
    async handle({ params, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      return { status: 200, body: connectionView(found.value) };
    },
  }),
  route({
    name: 'connections-update',
    method: 'PATCH',
    path: 'v1/customers/{customerId}/connections/{connectionId}',
    tag: 'Connections',
    summary: 'Change a connection\'s tags',
    description: 'A JSON merge patch of tags: a string sets a tag, null removes it.',
    authenticated: true,
    params: connectionParams,
    body: z.object({ tags: tagsPatchSchema }).strict(),
    responses: [{ status: 200, description: 'The connection.', schema: connectionViewSchema }, ...problems(400, 401, 404, 409)],
    async handle({ params, body, services }) {
      const updated = await updateConnectionTags(services.connections, params.customerId, params.connectionId, body.tags);
      if (!updated) throw notFound('The connection');
      if ('issues' in updated) throw invalidTags('The tags, with this change applied, are not valid; see "errors".', updated.issues);
      return { status: 200, body: connectionView(updated.connection) };
    },
  }),
  route({
    name: 'connections-disconnect',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/disconnect',
    tag: 'Connections',
    summary: 'Disconnect a connection',
    description: 'Stops all mail for the connection and emits connection.state_changed. Idempotent; a disconnected connection stays disconnected.',
    authenticated: true,
    params: connectionParams,
    responses: [{ status: 200, description: 'The disconnected connection.', schema: connectionViewSchema }, ...problems(401, 404, 409)],
    async handle({ params, services }) {
      const updated = await changeConnectionState(services.connections, params.customerId, params.connectionId, 'disconnected', {
        code: 'disconnected_by_vendor',
        message: 'The connection was disconnected through the API.',
        nextStep: 'Create a new connection to connect this tenant again.',
      });
      if (!updated) throw notFound('The connection');
      return { status: 200, body: connectionView(updated) };
    },
  }),
  route({
    name: 'mailboxes-list',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}/mailboxes',
    tag: 'Mailboxes',
    summary: 'List the mailboxes of a connection',
    authenticated: true,
    params: connectionParams,
    query: z.object(pageQuery),
    responses: [{ status: 200, description: 'A page of mailboxes.', schema: pageSchema(mailboxView, 'MailboxPage') }, ...problems(400, 401, 404)],
    async handle({ params, query, services }) {
      if (!(await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId)))) {
        throw notFound('The connection');
      }
      const page = await services.repositories.mailboxes.page(params.customerId, {
        range: { prefix: keys.mailboxesOf(params.connectionId) },
        pageSize: query.limit,
        ...optional('continuationToken', decodeCursor('mailboxes', query.cursor)),
      });
      return { status: 200, body: { items: page.items.map((i) => i.value), ...optional('nextCursor', encodeCursor('mailboxes', page.continuationToken)) } };
    },
  }),
  route({
    name: 'mailboxes-get',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}/mailboxes/{mailboxId}',
    tag: 'Mailboxes',
    summary: 'Get a mailbox',
    authenticated: true,
    params: connectionParams.extend({ mailboxId: z.string().regex(ID_PATTERN.mbx) }),
    responses: [{ status: 200, description: 'The mailbox.', schema: mailboxView }, ...problems(401, 404)],
    async handle({ params, services }) {
      const found = await services.repositories.mailboxes.get(keys.mailbox(params.customerId, params.connectionId, params.mailboxId));
      if (!found) throw notFound('The mailbox');
      return { status: 200, body: found.value };
    },
  }),
];
