import { z } from 'zod';
import { customerIdSchema, customerSchema, type Customer } from '../../domain/customer.js';
import { tagsSchema } from '../../domain/tags.js';
import { keys } from '../../store/repositories.js';
import { decodeCursor, encodeCursor, pageQuery, pageSchema } from '../paging.js';
import { invalidTags, notFound, ProblemError } from '../problem.js';
import { optional } from '../../optional.js';
import { problems } from '../responses.js';
import { defineRoute } from '../route.js';
import type { ApiServices } from '../services.js';

const route = defineRoute<ApiServices>();
const customerView = customerSchema.meta({ id: 'Customer' });
const customerParams = z.object({ customerId: customerIdSchema });

export const customerRoutes = [
  route({
    name: 'customers-put',
    method: 'PUT',
    path: 'v1/customers/{customerId}',
    tag: 'Customers',
    summary: 'Create or update a customer under your own id',
    description:
      'Idempotent: the first call creates the customer (with the context claims of a signed token as tags), later calls ' +
      'update its display name and, when given, replace its tags.',
    authenticated: true,
    params: customerParams,
    body: z.object({ displayName: z.string().max(256).optional(), tags: tagsSchema.optional() }).strict(),
    responses: [
      { status: 200, description: 'The customer, updated.', schema: customerView },
      { status: 201, description: 'The customer, created.', schema: customerView },
      ...problems(400, 401, 404, 409),
    ],
    async handle({ params, body, principal, services }) {
      const now = services.now().toISOString();
      const initialTags = tagsSchema.safeParse({ ...principal?.contextTags, ...body.tags });
      if (!initialTags.success) throw invalidTags('The tags, with the context claims of your token added, are not valid; see "errors".', initialTags.error.issues);
      // Set by the mutator, whose last run is the one that was saved.
      const outcome = { created: false };
      const saved = await services.repositories.customers.update(keys.customer(params.customerId), (current): Customer => {
        outcome.created = !current;
        const displayName = body.displayName ?? current?.displayName;
        return {
          id: params.customerId,
          tags: current ? (body.tags ?? current.tags) : initialTags.data,
          createdAt: current?.createdAt ?? now,
          updatedAt: now,
          ...(displayName !== undefined && { displayName }),
        };
      });
      if (!saved) throw new Error('customer was not saved');
      return { status: outcome.created ? 201 : 200, body: saved.value };
    },
  }),
  route({
    name: 'customers-get',
    method: 'GET',
    path: 'v1/customers/{customerId}',
    tag: 'Customers',
    summary: 'Get a customer',
    authenticated: true,
    params: customerParams,
    responses: [{ status: 200, description: 'The customer.', schema: customerView }, ...problems(401, 404)],
    async handle({ params, services }) {
      const found = await services.repositories.customers.get(keys.customer(params.customerId));
      if (!found) throw notFound('The customer');
      return { status: 200, body: found.value };
    },
  }),
  route({
    name: 'customers-list',
    method: 'GET',
    path: 'v1/customers',
    tag: 'Customers',
    summary: 'List the customers these credentials can see',
    description: 'Credentials for one customer list only that customer.',
    authenticated: true,
    query: z.object(pageQuery),
    responses: [{ status: 200, description: 'A page of customers.', schema: pageSchema(customerView, 'CustomerPage') }, ...problems(400, 401)],
    async handle({ query, principal, services }) {
      const scope = principal?.customerScope;
      if (scope !== undefined && scope !== '*') {
        const own = await services.repositories.customers.get(keys.customer(scope));
        return { status: 200, body: { items: own ? [own.value] : [] } };
      }
      const page = await services.repositories.customers.page(keys.customersPartition, {
        pageSize: query.limit,
        ...optional('continuationToken', decodeCursor('customers', query.cursor)),
      });
      return { status: 200, body: { items: page.items.map((i) => i.value), ...optional('nextCursor', encodeCursor('customers', page.continuationToken)) } };
    },
  }),
  route({
    name: 'customers-delete',
    method: 'DELETE',
    path: 'v1/customers/{customerId}',
    tag: 'Customers',
    summary: 'Delete a customer that has no active connections',
    description: 'Disconnect its connections first; their records and events stay until then.',
    authenticated: true,
    params: customerParams,
    responses: [{ status: 204, description: 'Deleted.' }, ...problems(401, 404, 409)],
    async handle({ params, services }) {
      const key = keys.customer(params.customerId);
      const found = await services.repositories.customers.get(key);
      if (!found) throw notFound('The customer');
      for await (const connection of services.repositories.connections.scan(params.customerId)) {
        if (connection.value.state !== 'disconnected') {
          throw new ProblemError('conflict', 'The customer still has connections that are not disconnected; disconnect them first.');
        }
      }
      await services.repositories.customers.delete(key, found.etag);
      return { status: 204 };
    },
  }),
];
