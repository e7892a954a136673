import { z } from 'zod';
import { createConnection, disconnectConnection, updateConnectionTags } from '../../connections/connections.js';
import { addMailbox, removeMailbox } from '../../connections/mailboxes.js';
import { LINK_PURPOSES } from '../../domain/sign-in-state.js';
import { exchangeSetupSchema, ExchangeSetupUnavailable } from '../../connect/connection-exchange-setup.js';
import { connectionCheckSchema } from '../../domain/connection-check.js';
import { CONNECTION_MODES, CONNECTION_STATES, connectionView, connectionViewSchema, transportsSchema, type Connection } from '../../domain/connection.js';
import { customerIdSchema } from '../../domain/customer.js';
import { ID_PATTERN } from '../../domain/ids.js';
import { mailboxSchema, receiveSettingsSchema, type ReceiveSettings } from '../../domain/mailbox.js';
import { receivingStatus, receivingStatusSchema } from '../../domain/receiving-status.js';
import { tagsPatchSchema, tagsSchema } from '../../domain/tags.js';
import { keys } from '../../store/repositories.js';
import { UNCHANGED } from '../../store/table-repository.js';
import { decodeCursor, encodeCursor, pageQuery, pageSchema } from '../paging.js';
import { invalidTags, notFound, ProblemError } from '../problem.js';
import { optional } from '../../optional.js';
import { problems } from '../responses.js';
import { defineRoute } from '../route.js';
import { consentLinkSchema, type ApiServices } from '../services.js';

const route = defineRoute<ApiServices>();
const connectionParams = z.object({ customerId: customerIdSchema, connectionId: z.string().regex(ID_PATTERN.con) });
const mailboxView = mailboxSchema.meta({ id: 'Mailbox' });
const mailboxWithReceivingView = mailboxSchema.extend({ receiving: receivingStatusSchema.optional() }).meta({ id: 'MailboxWithReceiving' });
const newMailboxSchema = z
  .object({
    address: z.email().max(320),
    displayName: z.string().max(256).optional(),
    kind: z.enum(['user', 'shared']).default('shared').meta({ description: 'A person\'s mailbox, or a shared mailbox.' }),
    receive: receiveSettingsSchema.optional(),
  })
  .strict()
  .meta({ id: 'NewMailbox' });

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
        transports: transportsSchema.default({ send: 'graph', receive: 'graph' }),
        appId: z
          .string()
          .max(32)
          .optional()
          .meta({ description: 'Which of your app registrations to use: "default" (ENTRA_CLIENT_ID) unless ENTRA_APPS configures more, e.g. one per national cloud.' }),
        displayName: z.string().max(256).optional(),
        tags: tagsSchema.optional(),
        mailboxes: z.array(newMailboxSchema).max(100).optional().meta({
          description:
            'Application mode: the mailboxes the connection serves (they appear in the Exchange PowerShell the admin gets). ' +
            'Delegated mode: shared or other mailboxes the signing-in user has full access to; their own mailbox is added at sign-in.',
        }),
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
      const appId = body.appId ?? services.defaultAppId;
      if (body.appId !== undefined && !services.appIds.includes(body.appId)) {
        throw new ProblemError('validation-error', `No app registration "${body.appId}" is configured.`, {
          errors: [{ pointer: '/body/appId', detail: `must be one of: ${services.appIds.join(', ') || '(none configured)'}` }],
        });
      }
      for (const mailbox of body.mailboxes ?? []) assertReceiveSettingsFit(body.transports.receive, mailbox.receive);
      const connection = await createConnection(services.connections, {
        customerId: params.customerId,
        mode: body.mode,
        appId,
        transports: body.transports,
        tags: tags.data,
        ...optional('displayName', body.displayName),
      });
      for (const mailbox of body.mailboxes ?? []) {
        await addMailbox({ mailboxes: services.repositories.mailboxes, receiveState: services.repositories.receiveState, now: () => services.now() }, connection, {
          address: mailbox.address,
          kind: mailbox.kind,
          ...optional('displayName', mailbox.displayName),
          ...optional('receive', mailbox.receive),
        });
      }
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
      const views = await Promise.all(page.items.map(async (i) => connectionView(i.value, await services.appProblem(i.value.appId))));
      const items = views.filter((c) => query.state === undefined || c.state === query.state);
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
      return { status: 200, body: connectionView(found.value, await services.appProblem(found.value.appId)) };
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
      return { status: 200, body: connectionView(updated.connection, await services.appProblem(updated.connection.appId)) };
    },
  }),
  route({
    name: 'connections-disconnect',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/disconnect',
    tag: 'Connections',
    summary: 'Disconnect a connection',
    description:
      'Stops all mail for the connection, deletes its tokens from the secret store and emits connection.state_changed. ' +
      'Idempotent; a disconnected connection stays disconnected. The grant in the customer\'s tenant stays until their admin removes the app.',
    authenticated: true,
    params: connectionParams,
    responses: [{ status: 200, description: 'The disconnected connection.', schema: connectionViewSchema }, ...problems(401, 404, 409)],
    async handle({ params, services }) {
      const updated = await disconnectConnection({ ...services.connections, forgetTokens: (id: string) => services.forgetTokens(id) }, params.customerId, params.connectionId, {
        code: 'disconnected_by_vendor',
        message: 'The connection was disconnected through the API.',
        nextStep: 'Create a new connection to connect this tenant again.',
      });
      if (!updated) throw notFound('The connection');
      return { status: 200, body: connectionView(updated) };
    },
  }),
  route({
    name: 'connections-check',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/check',
    tag: 'Connections',
    summary: 'Check that mail can flow: tokens, Graph, IMAP, POP3 and SMTP, per mailbox',
    description:
      'Runs, for each mailbox of the connection and each transport it uses, the steps real traffic takes: an access token per ' +
      'resource, the Graph probe, IMAP login and SELECT INBOX, POP3 login, SMTP AUTH. Nothing is sent unless testMessageTo names ' +
      'an address: then each SMTP mailbox sends it one plain test message. A failed step names its cause (consent missing, ' +
      'Exchange service principal missing, mailbox permission missing, SMTP AUTH disabled, network unreachable, …) and the next step; ' +
      'steps that depend on it are skipped. A token failure also updates the connection\'s state, as any token request does.',
    authenticated: true,
    params: connectionParams,
    body: z
      .object({
        testMessageTo: z.email().optional().meta({ description: 'Send one test message to this address (SMTP mailboxes).' }),
        mailboxes: z.array(z.email()).max(100).optional().meta({ description: 'Only these mailboxes; all by default.' }),
      })
      .strict()
      .optional(),
    responses: [{ status: 200, description: 'What each step came to.', schema: connectionCheckSchema }, ...problems(400, 401, 404, 409, 503)],
    async handle({ params, body, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      if (found.value.state === 'pending' || found.value.state === 'disconnected') {
        throw new ProblemError('conflict', `The connection is ${found.value.state}: there is nothing to check until it is connected.`);
      }
      if (!services.checkConnection) throw connectFlowNotConfigured();
      const options = { ...optional('testMessageTo', body?.testMessageTo), ...optional('mailboxes', body?.mailboxes) };
      return { status: 200, body: await services.checkConnection(found.value, options) };
    },
  }),
  route({
    name: 'connections-consent-link',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/consent-link',
    tag: 'Connections',
    summary: 'Issue a consent link for a connection (reconnect, or admin approval)',
    description:
      '"connect" (the default) is the link for the customer\'s user (delegated) or admin (application); for a connection that was ' +
      'connected before it reconnects it, keeping its id, and must be completed by the same tenant (and, delegated, the same user). ' +
      '"admin-grant" is for a delegated connection whose users may not consent: an administrator approves its permissions for the ' +
      'organization, after which the user connects with a "connect" link. Every link expires (CONSENT_LINK_TTL, 7 days by default).',
    authenticated: true,
    params: connectionParams,
    body: z
      .object({ purpose: z.enum(LINK_PURPOSES).default('connect') })
      .strict()
      .optional(),
    responses: [{ status: 200, description: 'The link.', schema: consentLinkSchema }, ...problems(400, 401, 404, 409, 503)],
    async handle({ params, body, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      const purpose = body?.purpose ?? 'connect';
      if (found.value.state === 'disconnected') throw new ProblemError('conflict', 'The connection is disconnected; create a new one.');
      if (purpose === 'admin-grant' && found.value.mode !== 'delegated') {
        throw new ProblemError('conflict', 'An "admin-grant" link is for delegated connections; an application connection\'s "connect" link is already for an administrator.');
      }
      if (!services.consentLinks) throw connectFlowNotConfigured();
      return { status: 200, body: await services.consentLinks.issue(found.value, purpose) };
    },
  }),
  route({
    name: 'connections-exchange-setup',
    method: 'GET',
    path: 'v1/customers/{customerId}/connections/{connectionId}/exchange-setup',
    tag: 'Connections',
    summary: 'The Exchange Online PowerShell for an application connection that uses IMAP, POP or SMTP',
    description:
      'App-only IMAP, POP and SMTP also need the tenant\'s Exchange administrator to register the app\'s service principal and give ' +
      'it each mailbox. The admin sees these commands right after consenting; fetch them again after adding mailboxes.',
    authenticated: true,
    params: connectionParams,
    query: z.object({
      smtpScopeGroup: z
        .string()
        .trim()
        .min(1)
        .max(1024)
        .refine((value) => !/[\r\n]/.test(value), 'must be one line')
        .optional()
        .meta({
          description:
            'RBAC for Applications: limit SMTP sending to the members of this mail-enabled group (its distinguished name). Adds New-ManagementScope ' +
            'and New-ManagementRoleAssignment with the "Application SMTP.SendAsApp" role; Exchange offers no such role for IMAP or POP.',
        }),
    }),
    responses: [{ status: 200, description: 'The commands, per step and as one script.', schema: exchangeSetupSchema }, ...problems(401, 404, 409)],
    async handle({ params, query, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      try {
        return { status: 200, body: await services.exchangeSetup(found.value, query.smtpScopeGroup === undefined ? {} : { smtpScopeGroup: query.smtpScopeGroup }) };
      } catch (error) {
        if (error instanceof ExchangeSetupUnavailable) throw new ProblemError('conflict', error.message);
        throw error;
      }
    },
  }),
  route({
    name: 'mailboxes-add',
    method: 'POST',
    path: 'v1/customers/{customerId}/connections/{connectionId}/mailboxes',
    tag: 'Mailboxes',
    summary: 'Add a mailbox to a connection',
    description:
      'Delegated connections: a shared or other mailbox the signed-in user has full access to; mail for it uses that user\'s token ' +
      '(IMAP/POP/SMTP authenticate as the mailbox, Graph addresses /users/{address}). Application connections: any mailbox the app ' +
      'may use (for IMAP/POP/SMTP, after Add-MailboxPermission; see exchange-setup). Adding an address the connection has returns it.',
    authenticated: true,
    params: connectionParams,
    body: newMailboxSchema,
    responses: [
      { status: 201, description: 'The new mailbox.', schema: mailboxView },
      { status: 200, description: 'The connection already had this address.', schema: mailboxView },
      ...problems(400, 401, 404, 409),
    ],
    async handle({ params, body, services }) {
      const found = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!found) throw notFound('The connection');
      if (found.value.state === 'disconnected') throw new ProblemError('conflict', 'The connection is disconnected.');
      assertReceiveSettingsFit(found.value.transports.receive, body.receive);
      const { mailbox, created } = await addMailbox({ mailboxes: services.repositories.mailboxes, receiveState: services.repositories.receiveState, now: () => services.now() }, found.value, {
        address: body.address,
        kind: body.kind,
        ...optional('displayName', body.displayName),
        ...optional('receive', body.receive),
      });
      return {
        status: created ? 201 : 200,
        body: mailbox,
        headers: { location: `/api/v1/customers/${params.customerId}/connections/${params.connectionId}/mailboxes/${mailbox.id}` },
      };
    },
  }),
  route({
    name: 'mailboxes-remove',
    method: 'DELETE',
    path: 'v1/customers/{customerId}/connections/{connectionId}/mailboxes/{mailboxId}',
    tag: 'Mailboxes',
    summary: 'Remove a mailbox from a connection',
    description: 'The connection stops serving the address. Access in the customer\'s tenant is unchanged.',
    authenticated: true,
    params: connectionParams.extend({ mailboxId: z.string().regex(ID_PATTERN.mbx) }),
    responses: [{ status: 204, description: 'Removed.' }, ...problems(401, 404)],
    async handle({ params, services }) {
      if (!(await removeMailbox(services.repositories, params.customerId, params.connectionId, params.mailboxId))) throw notFound('The mailbox');
      return { status: 204 };
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
    description: 'With how receiving is going (`receiving`): the mode (Graph notifications, or polling and why), the last look, the next one, the last error.',
    responses: [{ status: 200, description: 'The mailbox.', schema: mailboxWithReceivingView }, ...problems(401, 404)],
    async handle({ params, services }) {
      const found = await services.repositories.mailboxes.get(keys.mailbox(params.customerId, params.connectionId, params.mailboxId));
      if (!found) throw notFound('The mailbox');
      const state = await services.repositories.receiveState.get(keys.receiveState(params.customerId, params.connectionId, params.mailboxId));
      return { status: 200, body: { ...found.value, ...(state && { receiving: receivingStatus(state.value) }) } };
    },
  }),
  route({
    name: 'mailboxes-update',
    method: 'PATCH',
    path: 'v1/customers/{customerId}/connections/{connectionId}/mailboxes/{mailboxId}',
    tag: 'Mailboxes',
    summary: 'Change how a mailbox is received',
    description: 'Folders to watch, how often it is polled, and (POP3) whether received messages are deleted from the server. Settings left out keep their value.',
    authenticated: true,
    params: connectionParams.extend({ mailboxId: z.string().regex(ID_PATTERN.mbx) }),
    body: z.object({ receive: receiveSettingsSchema }).strict().meta({ id: 'MailboxUpdate' }),
    responses: [{ status: 200, description: 'The mailbox.', schema: mailboxView }, ...problems(400, 401, 404)],
    async handle({ params, body, services }) {
      const connection = await services.repositories.connections.get(keys.connection(params.customerId, params.connectionId));
      if (!connection) throw notFound('The connection');
      assertReceiveSettingsFit(connection.value.transports.receive, body.receive);
      const updated = await services.repositories.mailboxes.update(keys.mailbox(params.customerId, params.connectionId, params.mailboxId), (current) =>
        current ? { ...current, receive: { ...current.receive, ...body.receive }, updatedAt: services.now().toISOString() } : UNCHANGED,
      );
      if (!updated) throw notFound('The mailbox');
      return { status: 200, body: updated.value };
    },
  }),
];

/** POP3 has one folder and IMAP/Graph never delete: settings that cannot apply are refused, not ignored. */
function assertReceiveSettingsFit(transport: Connection['transports']['receive'], settings: ReceiveSettings | undefined): void {
  if (!settings) return;
  const errors: { pointer: string; detail: string }[] = [];
  if (transport === 'pop3' && settings.folders?.some((folder) => folder.toLowerCase() !== 'inbox')) {
    errors.push({ pointer: '/body/receive/folders', detail: 'POP3 reads only the Inbox' });
  }
  if (transport !== 'pop3' && settings.deleteAfterReceive === true) {
    errors.push({ pointer: '/body/receive/deleteAfterReceive', detail: 'only POP3 connections can delete what they receive' });
  }
  if (errors.length > 0) throw new ProblemError('validation-error', 'The receive settings do not fit the connection\'s receive transport; see "errors".', { errors });
}

function connectFlowNotConfigured(): ProblemError {
  return new ProblemError('service-unavailable', 'The connect flow is not configured: set ENTRA_CLIENT_ID (and the app\'s credential) on the connector.');
}
